#pragma once
// Web sessions in Redis: one hash per session, written one attribute at a time;
// an idle timeout renewed by reads only once a fraction of it has passed; an
// absolute timeout that caps every renewal; logout that wins over requests still
// running (a tombstone every write checks); id regeneration in one slot; a
// per-user index for listing and "log out everywhere". See docs/sessions.md.

#include <cachet/codec/concepts.hpp>
#include <cachet/detail/one_slot.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/pipeline_by_node.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/session/detail/scripts.hpp>
#include <cachet/session/detail/token.hpp>
#include <cachet/session/errors.hpp>
#include <cachet/session/options.hpp>
#include <cachet/session/session.hpp>

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet {

class SessionStore {
 public:
  using Attributes = std::vector<std::pair<std::string, std::string>>;

  // Throws SessionError for options that cannot work (a zero timeout, an empty secret).
  explicit SessionStore(Pool& pool, SessionOptions options = {})
      : pool_(&pool), options_(std::move(options)), tokens_(options_.secrets) {
    if (options_.idle.count() <= 0 || options_.absolute.count() <= 0 || options_.tombstone.count() <= 0)
      throw SessionError("SessionOptions: idle, absolute and tombstone must be positive");
    if (!(options_.renew_after >= 0 && options_.renew_after <= 1))
      throw SessionError("SessionOptions::renew_after must be within [0, 1]");
  }

  // A new session, its id to hand to the client. With a user, it is listed under
  // that user (and the user's oldest sessions beyond max_per_user are ended).
  std::string create(std::string_view user = {}, const Attributes& attributes = {}) {
    check_names(attributes);
    const std::string token = tokens_.draw();
    const detail::SessionRef ref = tokens_.parse(token);
    std::vector<std::string> args{ms(options_.idle), ms(options_.absolute), std::string(user)};
    append(args, attributes);
    const std::vector<std::string> k = keys(ref.handle);
    if (!user.empty()) index_add(user, ref.handle);  // first: a session is never missing from its user's index
    const long long created = on(k[0], [&](Connection& c) { return scripts().create.run(c, k, args).as_integer(); });
    if (created < 0) throw_for(created, "create");
    if (!user.empty()) enforce_max(user);
    return token;
  }

  // The session, or nullopt when it expired, ended or never existed. Throws
  // InvalidSessionId for a malformed or forged id (Redis is not asked).
  std::optional<Session> load(std::string_view id) {
    const detail::SessionRef ref = tokens_.parse(id);
    const std::string k = key(ref.handle);
    const Reply reply = on(k, [&](Connection& c) {  // renews the TTL the same way if sent twice
      return scripts().read.run(c, {k}, {ms_count(options_.idle), renew_after_ms()});
    }, Idempotent::yes);
    if (reply.is_nil()) return std::nullopt;
    return to_session(std::string(id), reply);
  }

  // Writes attributes, keeping every other one (a concurrent request's too); the
  // new version. Throws SessionNotFound, or SessionEnded after a logout.
  std::uint64_t set(std::string_view id, const Attributes& attributes) {
    check_names(attributes);
    std::vector<std::string> args{ms(options_.idle), "", "set"};
    append(args, attributes);
    return static_cast<std::uint64_t>(write(id, args));
  }
  std::uint64_t set(std::string_view id, std::string_view name, std::string_view value) {
    return set(id, Attributes{{std::string(name), std::string(value)}});
  }
  // An attribute through a codec; Session::get_as reads it back. A keyed codec
  // (Encrypted) binds it to this session (its anchor, kept by regenerate) and name.
  template <Codec C>
  std::uint64_t set_as(std::string_view id, std::string_view name, const typename C::value_type& value,
                       const C& codec = C{}) {
    if constexpr (KeyedCodec<C>) {
      const std::string binding = detail::attribute_binding(tokens_.parse(id).anchor, name);
      return set(id, name, codec.encode(value, binding));
    }
    return set(id, name, codec.encode(value));
  }

  std::uint64_t erase(std::string_view id, std::string_view name) {
    check_name(name);
    return static_cast<std::uint64_t>(write(id, {ms(options_.idle), "", "del", std::string(name)}));
  }

  // Replaces all attributes at once. With `expected_version` (Session::version()),
  // only if no write came since: false when one did, and nothing changes.
  bool replace(std::string_view id, const Attributes& attributes, std::optional<std::uint64_t> expected_version = {}) {
    check_names(attributes);
    std::vector<std::string> args{ms(options_.idle), expected_version ? std::to_string(*expected_version) : "",
                                  "replace"};
    append(args, attributes);
    return write(id, args) != conflict;
  }

  // A new id for the session (call it on login, against fixation): same data,
  // same TTL, same slot; the old id is ended. With `user`, the session becomes
  // that user's. Requests still using the old id get SessionEnded / nullopt.
  std::string regenerate(std::string_view id, std::optional<std::string_view> user = std::nullopt) {
    const detail::SessionRef from = tokens_.parse(id);
    const std::string token = tokens_.draw(from.anchor);
    const detail::SessionRef to = tokens_.parse(token);
    std::vector<std::string> k = keys(from.handle), nk = keys(to.handle);
    k.insert(k.end(), nk.begin(), nk.end());
    detail::require_one_slot_on_cluster(*pool_, k, "cachet::SessionStore::regenerate");
    for (int attempt = 1;; ++attempt) {
      // The new handle joins the user's index before it exists (see create()); the
      // script checks the user read here is still the session's (-5 otherwise).
      const std::string owner = user ? std::string(*user) : stored_user(from.handle);
      if (!owner.empty()) index_add(owner, to.handle);
      const Reply r = on(k[0], [&](Connection& c) {
        return scripts().regenerate.run(c, k, std::vector<std::string>{ms(options_.tombstone), user ? "1" : "0", owner});
      });
      if (r.is_integer()) {
        if (!owner.empty()) index_remove(owner, {to.handle});
        if (r.as_integer() == owner_changed && attempt < 3) continue;
        throw_for(r.as_integer(), "regenerate");
      }
      const std::string previous(r[0].as_optional_string().value_or(""));
      if (!previous.empty()) index_remove(previous, {from.handle});
      if (!owner.empty() && owner != previous) enforce_max(owner);
      return token;
    }
  }

  // Logout: ends the session now; a request still running cannot bring it back.
  // False when it had already gone.
  bool destroy(std::string_view id) {
    const detail::SessionRef ref = tokens_.parse(id);
    return end(ref.handle, std::nullopt);
  }

  // The user's live sessions, oldest first (forgets the ones found gone).
  std::vector<SessionInfo> list(std::string_view user);

  // Ends one of the user's sessions by the handle list() gave; false when it is
  // not (or no longer) that user's.
  bool destroy_listed(std::string_view user, std::string_view handle) {
    if (!detail::is_handle(handle)) throw InvalidSessionId("session handle: malformed");
    return end(handle, user);
  }

  // "Log out everywhere": ends every session of the user; how many were live.
  std::size_t destroy_all(std::string_view user) {
    const std::string index = index_key(user);
    std::vector<std::string> handles;
    on(index, [&](Connection& c) {
      handles.clear();
      for (ReplyView h : c.command({"ZRANGE", index, 0, -1})) handles.emplace_back(h.as_string());
    }, Idempotent::yes);
    if (handles.empty()) return 0;
    std::size_t live = 0;
    for (const Reply& r : destroy_each(handles, user)) {
      r.throw_if_error();
      live += r.is_string() ? 1 : 0;
    }
    index_remove(user, handles);  // only these: a login meanwhile keeps its entry
    return live;
  }

  const SessionOptions& options() const noexcept { return options_; }

 private:
  static constexpr long long conflict = -3;
  static constexpr long long owner_changed = -5;  // regenerate: the user changed between its read and the script

  static detail::SessionScripts& scripts() { return detail::SessionScripts::shared(); }

  std::string key(std::string_view handle) const { return fmt::format("{}:{}", options_.prefix, handle); }
  std::string tomb(std::string_view handle) const { return fmt::format("{}:{}:ended", options_.prefix, handle); }
  // A session's keys, which its scripts take together: one slot on a cluster
  // (its handle's {anchor} tag), else CrossSlotError.
  std::vector<std::string> keys(std::string_view handle) const {
    std::vector<std::string> k{key(handle), tomb(handle)};
    detail::require_one_slot_on_cluster(*pool_, k, "cachet::SessionStore");
    return k;
  }
  std::string index_key(std::string_view user) const { return fmt::format("{}:user:{{{}}}", options_.prefix, user); }

  static std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()); }
  long long ms_count(std::chrono::milliseconds d) const { return static_cast<long long>(d.count()); }
  long long renew_after_ms() const {
    return static_cast<long long>(static_cast<double>(options_.idle.count()) * options_.renew_after);
  }

  static void check_name(std::string_view name) {
    if (name.empty() || name.front() == ':')
      throw InvalidAttribute(fmt::format("session attribute '{}': empty, or starts with ':' (the store's own)", name));
  }
  static void check_names(const Attributes& attributes) {
    for (const auto& [name, value] : attributes) check_name(name);
  }
  static void append(std::vector<std::string>& args, const Attributes& attributes) {
    for (const auto& [name, value] : attributes) args.push_back(name), args.push_back(value);
  }

  [[noreturn]] static void throw_for(long long code, std::string_view what) {
    if (code == -1) throw SessionEnded(fmt::format("session {}: the session was ended (logout or a new id)", what));
    if (code == -2) throw SessionNotFound(fmt::format("session {}: no such session (expired?)", what));
    if (code == owner_changed) throw SessionError(fmt::format("session {}: its user kept changing meanwhile", what));
    throw SessionError(fmt::format("session {}: the new id is taken (the random generator repeats itself)", what));
  }

  // Runs the write script; the new version, or `conflict`; throws when the session is gone.
  long long write(std::string_view id, const std::vector<std::string>& args) {
    const detail::SessionRef ref = tokens_.parse(id);
    const std::vector<std::string> k = keys(ref.handle);
    const long long r = on(k[0], [&](Connection& c) { return scripts().write.run(c, k, args).as_integer(); });
    if (r < 0 && r != conflict) throw_for(r, "write");
    return r;
  }

  // f(Connection&) on the node of `key` (a session's or a user index's).
  template <class F>
  std::invoke_result_t<F&, Connection&> on(std::string_view key, F&& f, Idempotent again = Idempotent::no) {
    return pool_->run(key, std::forward<F>(f), again);
  }

  bool end(std::string_view handle, std::optional<std::string_view> owner) {
    const std::vector<std::string> k = keys(handle);
    const Reply r = on(k[0], [&](Connection& c) {
      return scripts().destroy.run(c, k, std::vector<std::string>{ms(options_.tombstone), owner ? "1" : "0",
                                                                  std::string(owner.value_or(""))});
    });
    if (r.is_nil()) return false;
    if (!r.as_string().empty()) index_remove(r.as_string(), {std::string(handle)});
    return true;
  }

  // The destroy script for each of the user's `handles`, pipelined (one
  // pipeline per node on a cluster: each session is in its own slot).
  std::vector<Reply> destroy_each(const std::vector<std::string>& handles, std::string_view user) {
    std::vector<std::string> session_keys;
    session_keys.reserve(handles.size());
    for (const auto& h : handles) session_keys.push_back(keys(h)[0]);
    const std::vector<std::string_view> routed(session_keys.begin(), session_keys.end());
    const std::string tombstone = ms(options_.tombstone);
    const Script& script = scripts().destroy;
    const auto send = [&](Connection& c, std::span<const std::size_t> at, bool eval) {
      const std::string_view body = eval ? std::string_view(script.source()) : std::string_view(script.sha(c));
      for (std::size_t i : at)
        c.append({eval ? "EVAL" : "EVALSHA", body, "2", routed[i], tomb(handles[i]), tombstone, "1", user});
    };
    return pipeline_by_node(*pool_, routed, 1, send, Idempotent::no);
  }

  std::string stored_user(std::string_view handle) {
    // Gone: the script says whether it ended (SessionEnded) or expired.
    const std::string k = key(handle);
    return on(k, [&](Connection& c) {
      return c.command({"HGET", k, ":user"}).as_optional_string().value_or("");
    }, Idempotent::yes);
  }

  void index_add(std::string_view user, std::string_view handle) {
    const std::string index = index_key(user);
    on(index, [&](Connection& c) { scripts().index_add.run(c, {index}, {handle, ms_count(options_.absolute)}); });
  }
  void index_remove(std::string_view user, const std::vector<std::string>& handles) {
    std::vector<std::string_view> argv{"ZREM"};
    const std::string index = index_key(user);
    argv.push_back(index);
    argv.insert(argv.end(), handles.begin(), handles.end());
    on(index, [&](Connection& c) { c.command(argv); }, Idempotent::yes);
  }

  // Beyond max_per_user: forget the user's gone sessions, then end the oldest
  // live ones (the trim script takes them out of the index in one step).
  void enforce_max(std::string_view user) {
    if (options_.max_per_user == 0) return;
    const std::string index = index_key(user);
    const auto count = on(index, [&](Connection& c) { return c.command({"ZCARD", index}).as_integer(); }, Idempotent::yes);
    if (static_cast<std::size_t>(count) <= options_.max_per_user) return;
    list(user);
    const Reply evicted = on(index, [&](Connection& c) {
      return scripts().index_trim.run(c, {index}, {options_.max_per_user});
    });
    for (ReplyView h : evicted) end(h.as_string(), user);
  }

  // The PTTL of each listed session (entries: ZRANGE ... WITHSCORES), pipelined.
  std::vector<Reply> session_ttls(const Reply& entries) const;
  Session to_session(std::string id, const Reply& reply) const;

  Pool* pool_;
  SessionOptions options_;
  detail::SessionTokens tokens_;
};

namespace detail {
inline std::uint64_t to_u64(std::string_view s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}
inline std::chrono::system_clock::time_point from_ms(std::uint64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}
}  // namespace detail

inline std::vector<SessionInfo> SessionStore::list(std::string_view user) {
  const std::string index = index_key(user);
  const Reply entries = on(index, [&](Connection& c) {
    return c.command({"ZRANGE", index, 0, -1, "WITHSCORES"});
  }, Idempotent::yes);
  if (entries.size() == 0) return {};
  std::vector<SessionInfo> live;
  std::vector<std::string> gone{ms(options_.absolute), "60000"};  // a login's entry may precede its session by a minute
  const std::vector<Reply> ttls = session_ttls(entries);
  for (std::size_t i = 0; i < ttls.size(); ++i) {
    const std::string_view handle = entries[2 * i].as_string();
    const auto score = static_cast<std::uint64_t>(std::stod(std::string(entries[2 * i + 1].as_string())));
    const long long ttl = ttls[i].as_integer();
    if (ttl == -2) gone.emplace_back(handle);
    else live.push_back({std::string(handle), detail::from_ms(score), std::chrono::milliseconds(ttl)});
  }
  if (gone.size() > 2)
    on(index, [&](Connection& c) { scripts().index_prune.run(c, std::vector<std::string>{index}, gone); });
  return live;
}

inline std::vector<Reply> SessionStore::session_ttls(const Reply& entries) const {
  std::vector<std::string> session_keys;
  session_keys.reserve(entries.size() / 2);
  for (std::size_t i = 0; i < entries.size(); i += 2) session_keys.push_back(key(entries[i].as_string()));
  const std::vector<std::string_view> routed(session_keys.begin(), session_keys.end());
  const auto send = [&](Connection& c, std::span<const std::size_t> at, bool /*eval*/) {
    for (std::size_t i : at) c.append({"PTTL", routed[i]});
  };
  return pipeline_by_node(*pool_, routed, 1, send, Idempotent::yes);
}

inline Session SessionStore::to_session(std::string id, const Reply& reply) const {
  const ReplyView fields = reply[1];
  SessionAttributes attributes;
  std::string user;
  std::uint64_t ver = 0, created = 0, deadline = 0;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    const std::string_view name = fields[i].as_string(), value = fields[i + 1].as_string();
    if (name == ":user") user = value;
    else if (name == ":ver") ver = detail::to_u64(value);
    else if (name == ":created") created = detail::to_u64(value);
    else if (name == ":abs") deadline = detail::to_u64(value);
    else if (!name.starts_with(':')) attributes.emplace(name, value);
  }
  return Session(std::move(id), std::move(attributes), std::move(user), ver, detail::from_ms(created),
                 detail::from_ms(deadline), std::chrono::milliseconds(reply[0].as_integer()));
}

// spdlog-style one-liner: `auto sessions = cachet::make_session_store(pool, {.idle = 30min, .absolute = 12h});`
inline SessionStore make_session_store(Pool& pool, SessionOptions options = {}) {
  return SessionStore(pool, std::move(options));
}

}  // namespace cachet
