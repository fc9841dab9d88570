#pragma once
// Shared by the nlohmann-based codecs: turn nlohmann's exceptions (and a
// from_json that throws something else) into cachet's typed errors.

#include <cachet/codec/errors.hpp>

#include <nlohmann/json.hpp>

#include <exception>
#include <new>
#include <string>

namespace cachet::detail {

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
