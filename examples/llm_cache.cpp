// Caching a slow model's answers. The cache key is the whole request — model,
// parameters and prompt — as canonical JSON; cachet hashes ids that are long
// (SHA-256), so a 10 kB prompt makes a short key. The "model" is a fake that
// takes --latency ms per call. Concurrent identical requests share one call
// (single-flight in process, a Redis lock across processes).
//
//   llm_cache [--socket PATH | --host H --port P] [--password PW] [--latency MS] [--threads N]
//
// Exits 1 if the model was called more often than once per distinct request.

#include "common/cli.hpp"

#include <cachet/cachet.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Request {
  std::string model;
  double temperature = 0;
  int max_tokens = 256;
  std::string prompt;
};

// Canonical: nlohmann::json orders object keys, so equal requests give equal ids.
std::string id_of(const Request& r) {
  return nlohmann::json{{"model", r.model}, {"temperature", r.temperature}, {"max_tokens", r.max_tokens}, {"prompt", r.prompt}}
      .dump();
}

class FakeModel {
 public:
  explicit FakeModel(std::chrono::milliseconds latency) : latency_(latency) {}
  std::string complete(std::string_view request_json) {
    calls_.fetch_add(1);
    std::this_thread::sleep_for(latency_);
    const auto r = nlohmann::json::parse(request_json);
    return "(" + r.at("model").get<std::string>() + ") an answer to a " +
           std::to_string(r.at("prompt").get<std::string>().size()) + "-byte prompt";
  }
  int calls() const { return calls_.load(); }

 private:
  std::chrono::milliseconds latency_;
  std::atomic<int> calls_{0};
};

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  example::Cli cli("llm_cache", "LLM completions cached by a hash of the whole request, behind a stampede guard.");
  int latency_ms = 300, threads = 8;
  cli.positive("--latency", latency_ms, "the fake model's latency, ms");
  cli.positive("--threads", threads, "concurrent identical requests");
  cli.parse(argc, argv);
  try {
    cachet::Pool pool(cli.redis(), {.size = static_cast<std::size_t>(threads) + 2});
    auto cache = cachet::make_cache<std::string, cachet::StringCodec>(
        pool, {.ns = "llm", .name = "completion", .ttl = cachet::TtlPolicy({.fresh = std::chrono::hours(24)})});
    FakeModel model{std::chrono::milliseconds(latency_ms)};
    auto ask = [&](const Request& r) {
      return cache.get_or_load(id_of(r), [&model](std::string_view id) { return model.complete(id); });
    };

    const Request question{"tiny-7b", 0.0, 256, "What is a cache stampede? " + std::string(10'000, '.')};
    Request warmer = question;
    warmer.temperature = 0.7;
    for (const Request* r : {&question, static_cast<const Request*>(&warmer)}) cache.invalidate(id_of(*r));  // a server given may hold an earlier run's
    std::printf("key for a %zu-byte prompt: %s\n", question.prompt.size(), cache.key(id_of(question)).c_str());

    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool_of_askers;
    std::atomic<int> failed{0};
    for (int i = 0; i < threads; ++i)
      pool_of_askers.emplace_back([&] {
        try {  // a thread's exception would end the process: a request that failed is reported instead
          ask(question);
        } catch (const std::exception& e) {
          failed.fetch_add(1);
          std::fprintf(stderr, "llm_cache: a request failed: %s\n", e.what());
        }
      });
    for (auto& t : pool_of_askers) t.join();
    if (failed.load() != 0) {
      std::fprintf(stderr, "llm_cache: FAILED: %d of %d requests failed\n", failed.load(), threads);
      return 1;
    }
    std::printf("%d concurrent identical requests: %.0f ms, model calls %d\n", threads, ms_since(t0), model.calls());

    t0 = std::chrono::steady_clock::now();
    const std::string again = ask(question);
    std::printf("the same request again: %.2f ms (cached), model calls %d: \"%s\"\n", ms_since(t0), model.calls(), again.c_str());

    t0 = std::chrono::steady_clock::now();
    ask(warmer);
    std::printf("temperature 0.7 is another request: %.0f ms, model calls %d\n", ms_since(t0), model.calls());

    if (model.calls() != 2) {
      std::fprintf(stderr, "llm_cache: FAILED: expected 2 model calls, got %d\n", model.calls());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llm_cache: %s\n", e.what());
    return 1;
  }
}
