#pragma once
// Single-flight: concurrent misses for one key in this process run the load
// once; the callers that arrive while it runs wait for it and receive its value
// (a copy) or its exception. Keys are independent: a slow load of one key holds
// up nobody else's, and the map of loads in flight is sharded so that misses on
// different keys rarely meet on one lock. Hits never reach a guard.
//
// One flight serves callers expecting the same result type; a caller expecting
// another (a loader returning V where the flight's returns std::optional<V>)
// runs its own load rather than share. In a write-through cache a caller that
// read another write version of the key than the load's (a put came between
// them) runs its own load too: the running one may have read the old row.

#include <cachet/guard/detail/outcome.hpp>
#include <cachet/guard/concepts.hpp>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeindex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cachet {

class SingleFlight {
 public:
  SingleFlight() : SingleFlight(16) {}
  explicit SingleFlight(std::size_t shards) : shards_(std::max<std::size_t>(shards, 1)) {}
  SingleFlight(const SingleFlight&) = delete;
  SingleFlight& operator=(const SingleFlight&) = delete;
  // Policies hold their guard by value, so it moves into them before any use.
  SingleFlight(SingleFlight&& o) noexcept : shards_(std::move(o.shards_)) {}

  // The guard: the first caller for a key runs the rest of the stack. A
  // background refresh that finds a load of its key running is not needed.
  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    using R = decltype(next(task));
    auto load = [&] { return next(task); };
    const std::string key = task.flight_key();
    if (task.refresh_only()) return share(key, load, [&](Flight<R>&) { return task.skip(); });
    return share(key, load);
  }

  // Runs `load` once for the callers that ask for `key` while it runs.
  template <class Load>
  auto share(std::string_view key, Load&& load) -> std::invoke_result_t<Load&> {
    return share(key, load, [](auto& flight) { return flight.get(); });
  }

  // Loads in flight right now (for tests and diagnostics).
  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const Shard& s : shards_) {
      std::lock_guard lock(s.mutex);
      n += s.flights.size();
    }
    return n;
  }

  // Callers waiting on the load of `key` that is in flight (0: none in flight).
  // A caller counted here gets that load's outcome: tests wait on it to know
  // that everyone has joined before they let the load finish.
  std::size_t followers(std::string_view key) const {
    const Shard& shard = shard_of(key);
    std::lock_guard lock(shard.mutex);
    const auto it = shard.flights.find(std::string(key));
    return it == shard.flights.end() ? 0 : it->second.followers;
  }

 private:
  using FlightBase = detail::OutcomeBase;
  template <class R>
  using Flight = detail::Outcome<R>;
  struct Entry {
    Entry(std::type_index t, std::nullptr_t) : type(t) {}
    std::type_index type;
    std::shared_ptr<FlightBase> flight;
    std::size_t followers = 0;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Entry> flights;
  };

  // Leads a new flight for `key`, or hands the running one to `follow`.
  template <class Load, class Follow>
  auto share(std::string_view key, Load& load, Follow&& follow) -> std::invoke_result_t<Load&> {
    using R = std::invoke_result_t<Load&>;
    Shard& shard = shard_of(key);
    std::shared_ptr<Flight<R>> flight;
    bool leader = false;
    {
      std::lock_guard lock(shard.mutex);
      auto [it, inserted] = shard.flights.try_emplace(std::string(key), typeid(R), nullptr);
      if (inserted) {
        it->second.flight = flight = std::make_shared<Flight<R>>();
        leader = true;
      } else if (it->second.type == typeid(R)) {
        flight = std::static_pointer_cast<Flight<R>>(it->second.flight);
        ++it->second.followers;
      }
    }
    if (!flight) return load();  // another result type is in flight for this key
    if (!leader) return follow(*flight);
    lead(shard, key, *flight, load);
    return flight->get();
  }

  // Runs the load, then publishes its outcome. The flight leaves the map first,
  // so a caller arriving after the outcome starts a fresh load.
  template <class R, class Load>
  static void lead(Shard& shard, std::string_view key, Flight<R>& flight, Load& load) {
    auto [value, error] = Flight<R>::attempt(load);
    {
      std::lock_guard lock(shard.mutex);
      shard.flights.erase(std::string(key));
    }
    flight.publish(std::move(value), std::move(error));
  }

  Shard& shard_of(std::string_view key) { return shards_[std::hash<std::string_view>{}(key) % shards_.size()]; }
  const Shard& shard_of(std::string_view key) const {
    return shards_[std::hash<std::string_view>{}(key) % shards_.size()];
  }

  std::vector<Shard> shards_;
};

static_assert(Guard<SingleFlight>);

}  // namespace cachet
