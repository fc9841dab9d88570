#pragma once
// Writes the Prometheus text exposition format, version 0.0.4: "# HELP" and
// "# TYPE" lines, then samples `name{label="value",...} number`. Label values
// are escaped (backslash, double quote, newline); numbers are written by fmt,
// whose "{}" ignores the process's locale (a double is its shortest round trip).

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
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

// Appends `v` in decimal: fmt's format_int, with no format string to parse.
inline void append_int(std::string& out, std::uint64_t v) {
  const fmt::format_int text(v);
  out.append(text.data(), text.size());
}

// Exact decimal seconds from nanoseconds, without exponent: 2500 -> "0.0000025".
inline void append_seconds(std::string& out, std::uint64_t ns) {
  constexpr std::uint64_t per_second = 1'000'000'000;
  append_int(out, ns / per_second);
  std::uint64_t fraction = ns % per_second;
  if (fraction == 0) return;
  std::size_t digits = 9;
  while (fraction % 10 == 0) {  // trailing zeros say nothing
    fraction /= 10;
    --digits;
  }
  const fmt::format_int tail(fraction);
  out.append(1, '.').append(digits - tail.size(), '0').append(tail.data(), tail.size());
}

inline std::string seconds_text(std::uint64_t ns) {
  std::string text;
  append_seconds(text, ns);
  return text;
}

// Appends `name="value"` with the value escaped; runs with nothing to escape are copied whole.
inline void append_label(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append("=\"");
  std::size_t run = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '\\' && c != '"' && c != '\n') continue;
    out.append(value.substr(run, i - run)).append(c == '\n' ? "\\n" : c == '"' ? "\\\"" : "\\\\");
    run = i + 1;
  }
  out.append(value.substr(run)).append(1, '"');
}

class PrometheusWriter {
 public:
  // The header of a metric family; write it once, before all of its samples.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }

  // Starts a sample; add labels, then end it with value().
  PrometheusWriter& sample(std::string_view name, std::string_view suffix = {}) {
    out_.append(name).append(suffix);
    labels_ = 0;
    return *this;
  }

  PrometheusWriter& label(std::string_view name, std::string_view value) {
    out_ += labels_++ == 0 ? '{' : ',';
    append_label(out_, name, value);
    return *this;
  }
  // Labels escaped beforehand (append_label, comma-separated): a series' fixed
  // labels are escaped once per scrape, not once per sample.
  PrometheusWriter& escaped_labels(std::string_view list) {
    out_ += labels_++ == 0 ? '{' : ',';
    out_.append(list);
    return *this;
  }

  void value(std::uint64_t v) {
    close_labels();
    append_int(out_, v);
    out_ += '\n';
  }
  void value(double v) {  // the shortest text that reads back as v
    close_labels();
    fmt::format_to(std::back_inserter(out_), "{}\n", v);
  }
  void value_seconds(std::uint64_t ns) {
    close_labels();
    append_seconds(out_, ns);
    out_ += '\n';
  }

  void reserve(std::size_t bytes) { out_.reserve(bytes); }
  std::string take() && { return std::move(out_); }

 private:
  void close_labels() { out_.append(labels_ == 0 ? " " : "} "); }

  std::string out_;
  int labels_ = 0;  // labels written in the current sample
};

}  // namespace cachet::detail
