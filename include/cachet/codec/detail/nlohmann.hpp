#pragma once
// Shared by the nlohmann-based codecs: what they need of a value type, and
// turning nlohmann's exceptions (and a from_json that throws something else)
// into cachet's typed errors.

#include <cachet/codec/errors.hpp>

#include <nlohmann/json.hpp>

#include <concepts>
#include <exception>
#include <new>
#include <string>

namespace cachet::detail {

// What the nlohmann-based codecs need of a value type: nlohmann can convert it
// both ways (a to_json/from_json pair found by ADL, or an adl_serializer).
template <class V>
concept JsonModel = std::constructible_from<nlohmann::json, const V&> && requires(const nlohmann::json& j) {
  j.template get<V>();
};

// Called in a static_assert by each codec, so that this message is the first
// error a user sees for a type that is not a JsonModel, before nlohmann's own.
template <class V>
consteval bool assert_json_model() {
  static_assert(JsonModel<V>,
                "cachet's JsonCodec/MsgPackCodec/CborCodec<V>: V has no to_json/from_json. Define them, e.g. "
                "NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(V, field1, field2, ...) beside V, or choose another codec "
                "such as cachet::StringCodec");
  return JsonModel<V>;
}

template <class F>
auto encode_with(const char* format, F&& encode) {
  try {
    return encode();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {  // nlohmann's, or a user's to_json's own
    throw EncodeError(std::string("cannot encode value as ") + format + ": " + e.what());
  }
}

// Parses with `parse()`, then converts with from_json. Any failure is a DecodeError.
template <class V, class F>
V decode_with(const char* format, F&& parse) {
  try {
    return parse().template get<V>();
  } catch (const nlohmann::json::exception& e) {
    throw DecodeError(std::string("invalid ") + format + " value: " + e.what());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {  // a user's from_json may throw its own
    throw DecodeError(std::string("invalid ") + format + " value: " + e.what());
  }
}

}  // namespace cachet::detail
