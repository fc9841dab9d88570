#pragma once
// The demo's results: a table of latency percentiles, throughput, hit ratio
// and database queries per mode with the reduction against no cache, and
// optionally a PNG of the latency distributions drawn by gnuplot.

#include "../common/cli.hpp"
#include "runner.hpp"

#include <cstdio>
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
  char buf[32];
  if (us >= 1000) std::snprintf(buf, sizeof buf, "%.2f ms", us / 1000);
  else if (us >= 10) std::snprintf(buf, sizeof buf, "%.0f us", us);
  else std::snprintf(buf, sizeof buf, "%.1f us", us);
  return buf;
}

inline std::string percent(double ratio) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f %%", ratio * 100);
  return buf;
}

// `now` against `before`, signed: -98.8 % is a fall, +12.0 % a rise.
inline std::string change(double now, double before) {
  if (before == 0) return "-";
  char buf[24];
  std::snprintf(buf, sizeof buf, "%+.1f %%", (now / before - 1) * 100);
  return buf;
}

// Markdown, so the README can hold it as printed.
inline void print_table(std::vector<RunResult>& runs) {
  std::vector<Summary> s;
  for (auto& r : runs) s.push_back(summarize(r));
  std::printf("\n| mode | p50 | p95 | p99 | requests/s | hit ratio | product hit ratio | db queries | p50 vs no cache | "
              "queries vs no cache |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunResult& r = runs[i];
    const double queries_per_request = r.requests ? static_cast<double>(r.queries) / static_cast<double>(r.requests) : 0;
    const double base_qpr = runs[0].requests ? static_cast<double>(runs[0].queries) / static_cast<double>(runs[0].requests) : 0;
    std::printf("| %s | %s | %s | %s | %.0f | %s | %s | %lld | %s | %s |\n", r.mode.c_str(), micros(s[i].p50).c_str(),
                micros(s[i].p95).c_str(), micros(s[i].p99).c_str(), s[i].throughput,
                r.cache ? percent(r.cache->hit_ratio()).c_str() : "-",
                r.cache ? percent(r.cache->products.ratio()).c_str() : "-", r.queries,
                i == 0 ? "-" : change(s[i].p50, s[0].p50).c_str(),
                i == 0 ? "-" : change(queries_per_request, base_qpr).c_str());
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
    std::printf("target (p50 -90 %%, product hit ratio 90 %%), %s: p50 %s, product hit ratio %s: %s\n",
                runs[i].mode.c_str(), change(p50, base_p50).c_str(), percent(ratio).c_str(), met ? "met" : "not met");
  }
}

// Latency CDFs, one line per mode, on a log scale.
inline void draw_png(const std::string& path, std::vector<RunResult>& runs) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("cachet-plot-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string plot = "set terminal pngcairo size 1000,600\nset output '" + path +
                     "'\nset logscale x\nset xlabel 'latency (us)'\nset ylabel 'share of requests'\n"
                     "set key bottom right\nset grid\nplot ";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::vector<double> v = runs[i].latency_us;
    std::sort(v.begin(), v.end());
    const std::filesystem::path data = dir / ("mode" + std::to_string(i) + ".dat");
    std::ofstream out(data);
    const std::size_t step = std::max<std::size_t>(1, v.size() / 2000);  // about 2000 points a line
    for (std::size_t k = 0; k < v.size(); k += step) out << v[k] << ' ' << static_cast<double>(k + 1) / static_cast<double>(v.size()) << '\n';
    if (!v.empty()) out << v.back() << " 1\n";
    plot += (i ? ", '" : "'") + data.string() + "' with lines linewidth 2 title '" + runs[i].mode + "'";
  }
  std::ofstream(dir / "plot.gp") << plot << '\n';
  const std::string command = "gnuplot '" + (dir / "plot.gp").string() + "'";
  const int rc = std::system(command.c_str());
  std::filesystem::remove_all(dir);
  if (rc != 0)
    throw std::runtime_error("gnuplot failed (is it installed? `sudo apt-get install gnuplot-nox`, which ./run demo does)");
}

}  // namespace catalog
