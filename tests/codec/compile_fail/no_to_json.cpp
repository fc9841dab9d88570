// Must not compile: a value type without to_json/from_json in a JSON-model codec.
// tests/codec/compile_fail/expect_error.cmake checks that cachet's message naming
// the fix is the compiler's first error. CODEC is JsonCodec, MsgPackCodec or CborCodec.
#include <cachet/codec/json.hpp>
#include <cachet/codec/msgpack.hpp>

#include <string>

struct Plain {
  int id = 0;
};

int main() {
  const cachet::CODEC<Plain> codec;
  const std::string bytes = codec.encode(Plain{});
  return codec.decode(bytes).id;
}
