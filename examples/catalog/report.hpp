#pragma once
// The demo's results: a table of latency percentiles, throughput, hit ratio
// and database queries per mode with the reduction against no cache, and
// optionally a PNG of the latency distributions drawn by gnuplot.

#include "../common/cli.hpp"
#include "runner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace catalog {

struct Summary {
  double p50 = 0, p95 = 0, p99 = 0, throughput = 0;
};

inline Summary summarize(RunResult& r) {
  Summary s;
  s.p50 = example::percentile(r.latency_us, 0.50);
  s.p95 = example::percentile(r.latency_us, 0.95);
  s.p99 = example::percentile(r.latency_us, 0.99);
  s.throughput = r.seconds > 0 ? static_cast<double>(r.requests) / r.seconds : 0;
  return s;
}

inline std::string micros(double us) {
  if (us >= 1000) return fmt::format("{:.2f} ms", us / 1000);
  if (us >= 10) return fmt::format("{:.0f} us", us);
  return fmt::format("{:.1f} us", us);
}

inline std::string percent(double ratio) { return fmt::format("{:.1f} %", ratio * 100); }

// `now` against `before`, signed: -98.8 % is a fall, +12.0 % a rise.
inline std::string change(double now, double before) {
  return before == 0 ? "-" : fmt::format("{:+.1f} %", (now / before - 1) * 100);
}

inline double queries_per_request(const RunResult& r) {
  return r.requests ? static_cast<double>(r.queries) / static_cast<double>(r.requests) : 0;
}

// Markdown, so the README can hold it as printed.
inline void print_table(std::vector<RunResult>& runs) {
  std::vector<Summary> s;
  for (auto& r : runs) s.push_back(summarize(r));
  fmt::print("\n| mode | p50 | p95 | p99 | requests/s | hit ratio | product hit ratio | db queries | p50 vs no cache | "
             "queries vs no cache |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunResult& r = runs[i];
    fmt::print("| {} | {} | {} | {} | {:.0f} | {} | {} | {} | {} | {} |\n", r.mode, micros(s[i].p50), micros(s[i].p95),
               micros(s[i].p99), s[i].throughput, r.cache ? percent(r.cache->hit_ratio()) : "-",
               r.cache ? percent(r.cache->products.ratio()) : "-", r.queries,
               i == 0 ? "-" : change(s[i].p50, s[0].p50),
               i == 0 ? "-" : change(queries_per_request(r), queries_per_request(runs[0])));
  }
}

// The articles' headline, per cached mode: p50 at least 90 % below no cache,
// and at least 90 % of product lookups answered by the cache.
inline void print_targets(std::vector<RunResult>& runs) {
  const double base_p50 = summarize(runs[0]).p50;
  for (std::size_t i = 1; i < runs.size(); ++i) {
    if (!runs[i].cache) continue;
    const double p50 = summarize(runs[i]).p50, ratio = runs[i].cache->products.ratio();
    const bool met = base_p50 > 0 && p50 <= 0.1 * base_p50 && ratio >= 0.9;
    fmt::print("target (p50 -90 %, product hit ratio 90 %), {}: p50 {}, product hit ratio {}: {}\n", runs[i].mode,
               change(p50, base_p50), percent(ratio), met ? "met" : "not met");
  }
}

// Latency CDFs, one line per mode, on a log scale.
inline void draw_png(const std::string& path, std::vector<RunResult>& runs) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("cachet-plot-{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::string plot = fmt::format(
      "set terminal pngcairo size 1000,600\nset output '{}'\nset logscale x\nset xlabel 'latency (us)'\n"
      "set ylabel 'share of requests'\nset key bottom right\nset grid\nplot ", path);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::vector<double> v = runs[i].latency_us;
    std::sort(v.begin(), v.end());
    const std::filesystem::path data = dir / fmt::format("mode{}.dat", i);
    std::string points;
    const std::size_t step = std::max<std::size_t>(1, v.size() / 2000);  // about 2000 points a line
    for (std::size_t k = 0; k < v.size(); k += step)
      fmt::format_to(std::back_inserter(points), "{} {}\n", v[k], static_cast<double>(k + 1) / static_cast<double>(v.size()));
    if (!v.empty()) fmt::format_to(std::back_inserter(points), "{} 1\n", v.back());
    std::ofstream(data) << points;
    plot += fmt::format("{}'{}' with lines linewidth 2 title '{}'", i ? ", " : "", data.string(), runs[i].mode);
  }
  std::ofstream(dir / "plot.gp") << plot << '\n';
  const std::string command = fmt::format("gnuplot '{}'", (dir / "plot.gp").string());
  const int rc = std::system(command.c_str());
  std::filesystem::remove_all(dir);
  if (rc != 0)
    throw std::runtime_error("gnuplot failed (is it installed? `sudo apt-get install gnuplot-nox`, which ./run demo does)");
}

}  // namespace catalog
