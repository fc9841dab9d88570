#pragma once
// Metrics labels are checked when the metrics are made, not at each scrape.

#include <cachet/metrics/detail/prometheus_text.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace cachet {

// A metrics label value that is not valid UTF-8, refused when the metrics are
// made: one such label would make a scraper reject the whole exposition.
class MetricsLabelError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {
// Returns `value` if it is valid UTF-8; else throws MetricsLabelError naming the label.
inline std::string checked_label(std::string_view label, std::string value) {
  if (valid_utf8(value)) return value;
  std::string shown;  // printable ASCII as is, any other byte as \xHH
  for (const char c : value) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7F) shown += c;
    else shown += "\\x", shown += "0123456789abcdef"[b >> 4], shown += "0123456789abcdef"[b & 0xF];
  }
  throw MetricsLabelError("cachet: the metrics label " + std::string(label) + "=\"" + shown + "\" is not valid UTF-8");
}
}  // namespace detail

}  // namespace cachet
