#pragma once
// Commands in RESP (an array of bulk strings), appended to a buffer the
// Connection keeps, so a command allocates nothing once the buffer has grown.

#include <cachet/redis/detail/argv.hpp>

#include <charconv>
#include <cstddef>
#include <string>

namespace cachet::detail {

inline void append_resp_header(std::string& out, char type, std::size_t n) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.push_back(type);
  out.append(digits, end);
  out.append("\r\n", 2);
}

// "*<argc>\r\n" then "$<len>\r\n<bytes>\r\n" per argument.
inline void format_command(std::string& out, const Argv& argv) {
  append_resp_header(out, '*', argv.size());
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string_view arg = argv[i];
    append_resp_header(out, '$', arg.size());
    out.append(arg.data(), arg.size());
    out.append("\r\n", 2);
  }
}

}  // namespace cachet::detail
