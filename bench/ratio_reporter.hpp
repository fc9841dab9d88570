#pragma once
// A console reporter that also remembers each benchmark's time (the median when
// run with repetitions), so a suite can print "cachet / baseline" ratios from
// figures taken in the same run. A run with threads is named "function/threads:N".

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cachet::bench {

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      // Threaded runs are "function/threads:N", so the 1- and 2-thread figures get a ratio each.
      const std::string name =
          r.run_name.function_name + (r.run_name.threads.empty() ? "" : "/" + r.run_name.threads);
      if (median || single) times_[name] = r.GetAdjustedRealTime();
    }
  }

  // Prints subject/baseline for each pair whose both figures were measured.
  void print_ratios(const std::vector<std::pair<std::string, std::string>>& pairs,
                    const char* title = "ratios (same run; < 1.03 is the target)") const {
    std::printf("\n%s:\n", title);
    for (const auto& [subject, baseline] : pairs) {
      const auto s = times_.find(subject), b = times_.find(baseline);
      if (s == times_.end() || b == times_.end()) continue;
      std::printf("  %-28s / %-28s = %.3f\n", subject.c_str(), baseline.c_str(), s->second / b->second);
    }
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace cachet::bench
