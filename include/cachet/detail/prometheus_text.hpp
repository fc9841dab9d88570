#pragma once
// Writes the Prometheus text exposition format, version 0.0.4: "# HELP" and
// "# TYPE" lines, then samples `name{label="value",...} number`. Label values
// are escaped (backslash, double quote, newline); numbers go through
// std::to_chars, so the text does not depend on the process's locale.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace cachet::detail {

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates, or code
// points past U+10FFFF): a Prometheus scraper rejects the whole text otherwise.
inline bool valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const std::size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    std::uint32_t cp = n == 1 ? b : b & (0x7Fu >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    constexpr std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};  // below these: overlong
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

// Exact decimal seconds from nanoseconds, without exponent: 2500 -> "0.0000025".
inline std::string seconds_text(std::uint64_t ns) {
  constexpr std::uint64_t per_second = 1'000'000'000;
  std::string text = std::to_string(ns / per_second);
  std::uint64_t fraction = ns % per_second;
  if (fraction == 0) return text;
  int digits = 9;
  while (fraction % 10 == 0) {  // trailing zeros say nothing
    fraction /= 10;
    --digits;
  }
  const std::string tail = std::to_string(fraction);
  return text + "." + std::string(static_cast<std::size_t>(digits) - tail.size(), '0') + tail;
}

class PrometheusWriter {
 public:
  // The header of a metric family; write it once, before all of its samples.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }

  // Starts a sample; add labels, then end it with value().
  PrometheusWriter& sample(std::string_view name, std::string_view suffix = {}) {
    out_.append(name).append(suffix);
    labels_ = 0;
    return *this;
  }

  PrometheusWriter& label(std::string_view name, std::string_view value) {
    out_ += labels_++ == 0 ? '{' : ',';
    out_.append(name).append("=\"");
    for (char c : value) {
      if (c == '\\') out_ += "\\\\";
      else if (c == '"') out_ += "\\\"";
      else if (c == '\n') out_ += "\\n";
      else out_ += c;
    }
    out_ += '"';
    return *this;
  }

  void value(std::uint64_t v) { end(v); }
  void value(double v) { end(v); }  // shortest text that reads back as v
  void value_seconds(std::uint64_t ns) {
    close_labels();
    out_.append(seconds_text(ns)).append("\n");
  }

  std::string take() && { return std::move(out_); }

 private:
  template <class Number>
  void end(Number v) {
    close_labels();
    char buf[32];
    const auto [last, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, ec == std::errc{} ? last : buf).append("\n");
  }

  void close_labels() { out_.append(labels_ == 0 ? " " : "} "); }

  std::string out_;
  int labels_ = 0;  // labels written in the current sample
};

}  // namespace cachet::detail
