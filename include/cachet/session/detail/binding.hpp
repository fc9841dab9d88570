#pragma once
// What an attribute sealed by a keyed codec (Encrypted) is bound to: the
// session's anchor, which regeneration keeps (the handle changes), and the
// attribute's name. Bytes copied to another session or attribute do not open.

#include <cachet/session/detail/token.hpp>

#include <string>
#include <string_view>

namespace cachet::detail {

// `id_or_anchor` starts with the anchor (a session id does); the anchor has a fixed length, so this is unambiguous.
inline std::string attribute_binding(std::string_view id_or_anchor, std::string_view name) {
  std::string binding = "session attribute {";
  binding += id_or_anchor.substr(0, anchor_hex);
  binding += "}:";
  binding += name;
  binding += '\x02';  // a cache entry's binding ends in 0x00 or 0x01 (EntryCodec): the two never meet
  return binding;
}

}  // namespace cachet::detail
