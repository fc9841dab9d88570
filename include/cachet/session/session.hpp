#pragma once
// What SessionStore::load() returns: a snapshot of one session as Redis held it
// when read. Changing it changes nothing in Redis; writes go through the store,
// one attribute at a time, so concurrent requests do not undo each other's.

#include <cachet/codec/concepts.hpp>
#include <cachet/session/detail/binding.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace cachet {

using SessionAttributes = std::map<std::string, std::string, std::less<>>;

class Session {
 public:
  using time_point = std::chrono::system_clock::time_point;

  Session(std::string id, SessionAttributes attributes, std::string user, std::uint64_t version, time_point created,
          time_point absolute_deadline, std::chrono::milliseconds idle_left)
      : id_(std::move(id)), attributes_(std::move(attributes)), user_(std::move(user)), version_(version),
        created_(created), absolute_deadline_(absolute_deadline), idle_left_(idle_left) {}

  const std::string& id() const noexcept { return id_; }
  const std::string& user() const noexcept { return user_; }  // empty: nobody logged in
  // Grows with every write; SessionStore::replace() can require it unchanged.
  std::uint64_t version() const noexcept { return version_; }
  time_point created() const noexcept { return created_; }
  time_point absolute_deadline() const noexcept { return absolute_deadline_; }
  std::chrono::milliseconds idle_left() const noexcept { return idle_left_; }  // as of the read

  const SessionAttributes& attributes() const noexcept { return attributes_; }
  std::optional<std::string_view> get(std::string_view name) const {
    const auto it = attributes_.find(name);
    if (it == attributes_.end()) return std::nullopt;
    return std::string_view(it->second);
  }
  // An attribute written by SessionStore::set_as with the same codec; throws DecodeError on foreign bytes
  // (for a keyed codec such as Encrypted, also bytes copied from another session or attribute).
  template <Codec C>
  std::optional<typename C::value_type> get_as(std::string_view name, const C& codec = C{}) const {
    const auto bytes = get(name);
    if (!bytes) return std::nullopt;
    if constexpr (KeyedCodec<C>) return codec.decode(*bytes, detail::attribute_binding(id_, name));
    else return codec.decode(*bytes);
  }

 private:
  std::string id_;
  SessionAttributes attributes_;
  std::string user_;
  std::uint64_t version_;
  time_point created_, absolute_deadline_;
  std::chrono::milliseconds idle_left_;
};

// One of a user's sessions as SessionStore::list() sees it. The handle names it
// in Redis but is not its id: it cannot be used as a cookie.
struct SessionInfo {
  std::string handle;
  std::chrono::system_clock::time_point expires_by;  // at the latest (the absolute deadline)
  std::chrono::milliseconds idle_left;
};

}  // namespace cachet
