#include <cachet/metrics/cache_metrics.hpp>
#include <cachet/metrics/label.hpp>
#include <cachet/metrics/registry.hpp>

#include <catch2/catch.hpp>

#include <string>

using cachet::CacheMetrics;

TEST_CASE("a label that is not valid UTF-8 is refused when the metrics are made, naming it, and valid ones are kept whole") {
  for (const std::string& bad : {std::string("caf\xE9"), std::string("\xC0\xAF"), std::string("\xED\xA0\x80"),
                                std::string("\xF4\x90\x80\x80"), std::string("ok\xE2\x82")}) {
    INFO(bad);
    CHECK_THROWS_AS(CacheMetrics(bad, "p"), cachet::MetricsLabelError);
    CHECK_THROWS_WITH(CacheMetrics("c", bad), Catch::Contains("label prefix=") && Catch::Contains("not valid UTF-8"));
  }
  CHECK_THROWS_WITH(CacheMetrics("caf\xE9", "p"), Catch::Contains("cache=\"caf\\xe9\""));
  cachet::MetricsRegistry registry;
  CHECK_THROWS_AS(registry.add("bad\xFF", "p"), cachet::MetricsLabelError);
  CHECK(registry.metrics().empty());  // nothing left behind

  // Valid UTF-8 goes out as is; backslash, quote and newline are escaped.
  const auto m = registry.add("caf\xC3\xA9 \xF0\x9F\x98\x80", "a\\b\"c\nd");
  CHECK(registry.prometheus().find("cachet_hits_total{cache=\"caf\xC3\xA9 \xF0\x9F\x98\x80\",prefix=\"a\\\\b\\\"c\\nd\"} 0\n") !=
        std::string::npos);
  registry.remove(m);
}
