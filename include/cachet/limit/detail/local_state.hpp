#pragma once
// In-process state of a limiter: the deny cache (identities known to be
// blocked, until when) and the fallback GCRA used while Redis is down. Both are
// maps bounded by `max_entries`: past it, expired entries are dropped, then all.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace cachet::detail {

using steady = std::chrono::steady_clock;

template <class Entry>
void bound(std::unordered_map<std::string, Entry>& map, std::size_t max_entries, steady::time_point now) {
  if (map.size() < max_entries) return;
  std::erase_if(map, [&](const auto& kv) { return kv.second.until <= now; });
  if (map.size() >= max_entries) map.clear();
}

// Identities denied until a time for a cost: a call of at least that cost
// before then is denied without asking Redis (a smaller one may pass sooner).
class DenyCache {
 public:
  explicit DenyCache(std::size_t max_entries) : max_(max_entries) {}

  std::optional<steady::duration> blocked(std::string_view id, std::uint64_t cost, steady::time_point now) {
    std::lock_guard lock(mutex_);
    const auto it = map_.find(std::string(id));
    if (it == map_.end()) return std::nullopt;
    if (it->second.until <= now) {
      map_.erase(it);
      return std::nullopt;
    }
    if (cost < it->second.cost) return std::nullopt;
    return it->second.until - now;
  }

  void deny(std::string_view id, std::uint64_t cost, steady::time_point until, steady::time_point now) {
    std::lock_guard lock(mutex_);
    bound(map_, max_, now);
    map_[std::string(id)] = {until, cost};
  }

  void forget(std::string_view id) {
    std::lock_guard lock(mutex_);
    map_.erase(std::string(id));
  }

 private:
  struct Entry {
    steady::time_point until;
    std::uint64_t cost;
  };
  std::size_t max_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> map_;
};

// GCRA in process, on the steady clock: what each process allows on its own
// while Redis is down (so N processes together allow up to N times the limit).
class LocalGcra {
 public:
  struct Decision {
    bool allowed;
    std::uint64_t remaining;
    steady::duration retry_after, reset_after;
    bool never;
  };

  LocalGcra(std::chrono::microseconds interval, std::uint64_t burst, std::size_t max_entries)
      : t_(interval), tau_(interval * static_cast<std::int64_t>(burst)), max_(max_entries) {}

  std::uint64_t burst() const noexcept { return static_cast<std::uint64_t>(tau_ / t_); }

  Decision decide(std::string_view id, std::uint64_t cost, steady::time_point now) {
    std::lock_guard lock(mutex_);
    const auto it = map_.find(std::string(id));
    steady::time_point tat = it == map_.end() ? now : std::max(now, it->second.until);
    const std::uint64_t c = cost ? cost : 1;
    const auto left = [&](steady::time_point at) { return static_cast<std::uint64_t>((now - (at - tau_)) / t_); };
    // Over the burst can never pass; checked before t_ * c, which would overflow for a huge cost.
    if (c > burst()) return {false, left(tat), {}, tat - now, true};
    const steady::duration need = t_ * static_cast<std::int64_t>(c);
    const steady::time_point new_tat = tat + need;
    if (new_tat - tau_ > now) return {false, left(tat), new_tat - tau_ - now, tat - now, false};
    if (cost == 0) return {true, left(tat), {}, tat - now, false};
    bound(map_, max_, now);
    map_[std::string(id)] = {new_tat};
    return {true, left(new_tat), {}, new_tat - now, false};
  }

  void forget(std::string_view id) {
    std::lock_guard lock(mutex_);
    map_.erase(std::string(id));
  }

 private:
  struct Entry {
    steady::time_point until;  // the theoretical arrival time
  };
  steady::duration t_, tau_;
  std::size_t max_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> map_;
};

}  // namespace cachet::detail
