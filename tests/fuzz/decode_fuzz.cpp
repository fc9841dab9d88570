// libFuzzer target for every decoder of stored bytes: the envelope, each codec,
// zstd frames and the entry formats. The first input byte picks the decoder.
// The only exception a decoder may throw is DecodeError; anything else (another
// exception, a sanitizer report, a crash, a hang) is a finding.
#include <cachet/codec/entry.hpp>
#include <cachet/codec/envelope.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/codec/msgpack.hpp>
#include <cachet/codec/string.hpp>
#ifdef CACHET_HAS_ZSTD
#include <cachet/codec/compressed.hpp>
#endif

#include <support/product.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

using cachet::test::Product;
using Json = nlohmann::json;

template <class Decoder>
void run(Decoder&& decode, std::string_view bytes) {
  try {
    decode(bytes);
  } catch (const cachet::DecodeError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 10) {
    case 0: run([](auto b) { (void)cachet::envelope::decode(b); }, bytes); break;
    case 1: run([](auto b) { (void)cachet::JsonCodec<Json>{}.decode(b); }, bytes); break;
    case 2: run([](auto b) { (void)cachet::MsgPackCodec<Json>{}.decode(b); }, bytes); break;
    case 3: run([](auto b) { (void)cachet::CborCodec<Json>{}.decode(b); }, bytes); break;
    case 4: run([](auto b) { (void)cachet::JsonCodec<Product>{}.decode(b); }, bytes); break;
    case 5: run([](auto b) { (void)cachet::MsgPackCodec<Product>{}.decode(b); }, bytes); break;
    case 6: run([](auto b) { (void)cachet::EntryCodec<cachet::JsonCodec<Product>>{}.decode(b); }, bytes); break;
    case 7:
      run([](auto b) { (void)cachet::EntryCodec<cachet::CborCodec<Json>>(cachet::Format::plain).decode(b); }, bytes);
      break;
#ifdef CACHET_HAS_ZSTD
    case 8:
      run([](auto b) { (void)cachet::Compressed<cachet::JsonCodec<Json>>({.max_decompressed = 1 << 20}).decode(b); },
          bytes);
      break;
    case 9: {
      using Codec = cachet::Compressed<cachet::MsgPackCodec<Product>>;
      run([](auto b) { (void)cachet::EntryCodec<Codec>({}, Codec({.max_decompressed = 1 << 20})).decode(b); }, bytes);
      break;
    }
#endif
    default: break;
  }
  return 0;
}
