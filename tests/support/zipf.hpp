#pragma once
// Skewed traffic for tests and benchmarks: a Zipf key stream, and a plain LRU
// as the reference an eviction policy must beat on it.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <list>
#include <random>
#include <unordered_map>
#include <vector>

namespace cachet::test {

// Key indices drawn from Zipf(s) over n keys: index i has weight 1 / (i + 1)^s.
inline std::vector<std::uint32_t> zipf_stream(std::size_t n, double s, std::size_t length, std::uint64_t seed) {
  std::vector<double> cdf(n);
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) cdf[i] = sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, sum);
  std::vector<std::uint32_t> stream(length);
  for (auto& k : stream) k = static_cast<std::uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
  return stream;
}

// The reference policy: a plain LRU of `capacity` entries.
class Lru {
 public:
  explicit Lru(std::size_t capacity) : capacity_(capacity) {}
  bool access(std::uint32_t key) {  // true on a hit; a miss inserts the key
    if (auto it = where_.find(key); it != where_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return true;
    }
    if (where_.size() == capacity_) {
      where_.erase(order_.back());
      order_.pop_back();
    }
    order_.push_front(key);
    where_[key] = order_.begin();
    return false;
  }

 private:
  std::size_t capacity_;
  std::list<std::uint32_t> order_;  // most recent first
  std::unordered_map<std::uint32_t, std::list<std::uint32_t>::iterator> where_;
};

}  // namespace cachet::test
