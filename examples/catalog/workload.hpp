#pragma once
// The request stream: product ids drawn from Zipf(s) over popularity ranks,
// the ranks dealt onto ids in a seeded shuffled order (so popular products are
// spread over every category), and a share of price updates.

#include "../common/random.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace catalog {

class Popularity {
 public:
  Popularity(std::int64_t products, double s, std::uint64_t seed) : id_of_rank_(static_cast<std::size_t>(products)) {
    example::SplitMix64 rng(seed);
    for (std::size_t r = 0; r < id_of_rank_.size(); ++r) id_of_rank_[r] = static_cast<std::int64_t>(r) + 1;
    for (std::size_t r = id_of_rank_.size(); r > 1; --r) std::swap(id_of_rank_[r - 1], id_of_rank_[rng.below(r)]);
    cdf_.resize(id_of_rank_.size());
    double total = 0;
    for (std::size_t r = 0; r < cdf_.size(); ++r) cdf_[r] = total += 1.0 / std::pow(static_cast<double>(r + 1), s);
    for (double& c : cdf_) c /= total;
  }

  // The id of a product drawn by popularity; `u` uniform in [0, 1).
  std::int64_t draw(double u) const {
    const auto at = static_cast<std::size_t>(std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
    return id_of_rank_[std::min(at, cdf_.size() - 1)];
  }

  // The ids of the `n` most popular products, most popular first.
  std::vector<std::int64_t> top(std::size_t n) const {
    n = std::min(n, id_of_rank_.size());
    return {id_of_rank_.begin(), id_of_rank_.begin() + static_cast<std::ptrdiff_t>(n)};
  }

  // The share of requests that go to the `n` most popular products.
  double mass_of_top(std::size_t n) const { return n == 0 ? 0 : cdf_[std::min(n, cdf_.size()) - 1]; }

 private:
  std::vector<std::int64_t> id_of_rank_;
  std::vector<double> cdf_;  // normalised: cdf_.back() == 1
};

struct Request {
  std::int64_t id = 0;
  bool update = false;
  double price = 0;  // the new price of an update
};

// One thread's requests: its own seeded generator over the shared popularity.
class RequestStream {
 public:
  RequestStream(const Popularity& popularity, double update_share, std::uint64_t seed)
      : popularity_(&popularity), update_share_(update_share), rng_(seed) {}

  Request next() {
    Request r;
    r.id = popularity_->draw(rng_.unit());
    r.update = rng_.unit() < update_share_;
    if (r.update) r.price = static_cast<double>(199 + rng_.below(99'800)) / 100.0;
    return r;
  }

 private:
  const Popularity* popularity_;
  double update_share_;
  example::SplitMix64 rng_;
};

}  // namespace catalog
