#pragma once
// Bytes kept as they are: for values the application already serialised.

#include <cachet/codec/concepts.hpp>

#include <string>
#include <string_view>

namespace cachet {

struct StringCodec {
  using value_type = std::string;
  static constexpr std::uint8_t id = codec_id::string;

  std::string encode(const std::string& value) const { return value; }
  std::string decode(std::string_view bytes) const { return std::string(bytes); }
};

}  // namespace cachet
