#pragma once
// A CacheAside's loads: the Task a guard is given for one key (the protocol is
// in guard/concepts.hpp), the loader call (counted and timed), and the write
// version a load notes first in a write-through cache (WriteMark), so its
// write is refused if a write came meanwhile.

#include <cachet/policy/detail/write_back.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace cachet::detail {

template <class V, Codec C, Guard G, Store S, Clock Clk>
class CacheLoad : public CacheWriteBack<V, C, G, S, Clk> {
  using Base = CacheWriteBack<V, C, G, S, Clk>;

 public:
  using Base::Base;
  using typename Base::Lookup;
  using typename Base::Held;
  using typename Base::Watch;
  using typename Base::Seen;
  using Base::keys_, Base::clock_, Base::metrics_, Base::executor_, Base::watch_writes_, Base::tags_for_;
  using Base::read_seen, Base::read_epoch, Base::store_entry;

  // A key's write version before a load (see watch_writes), read at most once
  // per task, with the tag epoch of a tagged load in the same round trip.
  struct WriteMark {
    enum { unread, known, unknown } state = unread;  // unknown: Redis was not reached
    std::string key;                                 // the write version's key, once read
    std::optional<std::string> version;              // nullopt: no put yet
    typename Base::Epoch epoch;                      // see read_seen
    bool epoch_unknown = false;                      // flight_key could not read it: not asked again
  };

  // One guarded load: what a guard is given (the protocol is in guard/concepts.hpp).
  // L is the caller's loader by reference, or a copy for a background job.
  template <class L>
  class Task {
   public:
    using result_type = std::invoke_result_t<std::remove_cvref_t<L>&, std::string_view>;

    Task(CacheLoad& cache, std::string key, std::string id, L loader, Lookup found, Why why, bool refresh_only,
         WriteMark mark = {})
        : cache_(&cache), key_(std::move(key)), id_(std::move(id)), loader_(std::forward<L>(loader)),
          found_(std::move(found)), why_(why), refresh_only_(refresh_only), mark_(std::move(mark)) {}

    result_type load() { return cache_->load(key_, id_, loader_, reachable(), held_, mark_); }
    const std::string& key() const noexcept { return key_; }
    // In a write-through cache, the key's write version as this task first read
    // it: a caller that comes after a put reads another, so a load begun before
    // the put (which may have read the old row) is never shared with it.
    std::string flight_key() { return cache_->flight_key(key_, mark_, reachable()); }
    std::string lock_key() const { return cache_->keys_.lock(key_); }
    Why why() const noexcept { return why_; }
    const V* current() const noexcept {
      return why_ != Why::miss && found_.entry.value ? &*found_.entry.value : nullptr;
    }
    std::chrono::nanoseconds age() const { return now() - found_.entry.meta.created_at; }
    bool reachable() const noexcept { return found_.reachable; }
    bool refresh_only() const noexcept { return refresh_only_; }
    // Newer than the value in hand (if any): a refresh is not done by finding its own input.
    std::optional<result_type> reread() {
      return cache_->template reread<result_type>(key_, current() ? found_.entry.meta.created_at
                                                                   : EntryMeta::time_point::min());
    }
    result_type serve_current() {
      if (why_ == Why::stale && !refresh_only_) count(Event::stale_hit);  // a caller got it
      return skip();
    }
    result_type skip() const {
      if (!current()) throw std::logic_error("cachet: a guard served the value in hand of a task that has none");
      return result_type(*current());
    }
    void hold(const LockCheck* check) noexcept {
      if (check) held_.sent = false;
      held_.check = check;
    }
    bool hold_sent() const noexcept { return held_.sent; }
    // A write mark read in full goes along (read before the copy's loader runs,
    // so still safe to check against); one that failed is read again there. The
    // held lock does not go: it is this task's holder's.
    Task<std::remove_cvref_t<L>> detach(bool refresh_only) const {
      static_assert(std::is_copy_constructible_v<std::remove_cvref_t<L>>,
                    "cachet: a background load runs a copy of the loader, which must be copyable");
      const bool whole = mark_.state == WriteMark::known && !mark_.epoch_unknown;
      return {*cache_, key_, id_, loader_, found_, why_, refresh_only, whole ? mark_ : WriteMark{}};
    }
    Executor& executor() noexcept { return cache_->executor_; }
    EntryMeta::time_point now() const { return cache_->clock_.now(); }
    void count(Event e) { cache_->metrics_->count(e); }

   private:
    CacheLoad* cache_;
    std::string key_, id_;
    L loader_;
    Lookup found_;
    Why why_;
    bool refresh_only_;
    Held held_;               // the lock guard's check, while it holds the lock
    WriteMark mark_;          // read once, by flight_key() or load(), whichever comes first
  };

  // One loader call (a batch load is one): counted, timed, and counted again as
  // an error if it throws. A throwing load is never cached: the next call loads again.
  template <class F>
  auto call_loader(F&& f) -> decltype(f()) {
    const auto started = std::chrono::steady_clock::now();
    metrics_->count(Event::load);
    try {
      auto result = f();
      metrics_->load_latency().observe(std::chrono::steady_clock::now() - started);
      return result;
    } catch (...) {
      metrics_->load_latency().observe(std::chrono::steady_clock::now() - started);
      metrics_->count(Event::load_error);
      throw;
    }
  }

 private:
  template <class L>
  auto load(const std::string& k, std::string_view id, L& loader, bool write, Held& held, WriteMark& mark)
      -> std::invoke_result_t<L&, std::string_view> {
    if (write && watch_writes_ && !marked(k, mark)) write = false;  // nothing may be stored unwatched
    const Watch w{mark.key, mark.state == WriteMark::known ? &mark.version : nullptr};  // key empty: unwatched
    // Before the loader (see TagVersions); read with the write version when watched.
    if (write && (mark.epoch_unknown || !read_epoch(mark.epoch))) write = false;
    const std::string* e = mark.epoch.get();
    const auto started = std::chrono::steady_clock::now();
    auto result = call_loader([&] { return loader(id); });
    if (write) {
      if constexpr (is_optional<decltype(result)>::value) store_entry(k, result ? &*result : nullptr, started, held, w, e);
      else store_entry(k, &result, started, held, w, e);
    }
    return result;
  }

  // Reads `k`'s write version into `mark` unless it was read; false when it could not be.
  bool marked(const std::string& k, WriteMark& mark) {
    if (mark.state == WriteMark::unread) {
      mark.key = keys_.write_version(k);
      std::optional<Seen> seen = read_seen(std::span<const std::string>(&mark.key, 1), &mark.epoch);
      mark.state = seen ? WriteMark::known : WriteMark::unknown;
      if (seen) mark.version = std::move((*seen)[0]);
    }
    return mark.state == WriteMark::known;
  }

  // Task::flight_key: the key, prefixed (unambiguously: a cache's prefixes all
  // have one form) by its write version when watched and by the tag epoch when
  // its loads are tagged, so a reader that came after a write or a tag
  // invalidation never joins a load of older data. A lookup that did not reach
  // Redis does not ask it again.
  std::string flight_key(const std::string& k, WriteMark& mark, bool reachable) {
    if (!watch_writes_ && !tags_for_) return k;
    if (!reachable && mark.state == WriteMark::unread) mark.state = WriteMark::unknown;
    std::string prefix;
    if (watch_writes_) {
      if (!marked(k, mark)) return "?" + k;
      prefix = mark.version ? sized(*mark.version) : "-";
    }
    if (tags_for_) {
      if (!(reachable || mark.epoch.value) || !read_epoch(mark.epoch)) {
        mark.epoch_unknown = true;  // one timeout per miss, not two: load() stores nothing
        return "?" + k;
      }
      prefix += "e" + sized(*mark.epoch.value);
    }
    return prefix + k;
  }
  static std::string sized(const std::string& s) { return std::to_string(s.size()) + ":" + s; }
};

}  // namespace cachet::detail
