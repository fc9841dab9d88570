// zstd vs lz4 on product JSON of growing size: the measurement behind choosing
// zstd for cachet::Compressed. Ratios: compressed size and decode time of zstd
// relative to lz4, and each decode relative to parsing the JSON it yields.

#include "ratio_reporter.hpp"

#include <cachet/codec/json.hpp>
#include <support/product.hpp>

#include <benchmark/benchmark.h>
#include <lz4.h>
#include <zstd.h>

#include <string>

namespace {

// A product with `n` extra images: 1 KB, 4 KB, 16 KB of JSON.
std::string product_json(int n) {
  auto p = cachet::test::sample_product();
  for (int i = 0; i < n; ++i)
    p.images.push_back("https://img.example.com/products/42/gallery/" + std::to_string(i * 7919) + "-large.jpg");
  return nlohmann::json(p).dump();
}

void zstd_decode(benchmark::State& state) {
  const std::string in = product_json(static_cast<int>(state.range(0)));
  std::string frame(ZSTD_compressBound(in.size()), '\0');
  frame.resize(ZSTD_compress(frame.data(), frame.size(), in.data(), in.size(), 1));
  std::string out(in.size(), '\0');
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  for (auto _ : state) benchmark::DoNotOptimize(ZSTD_decompressDCtx(ctx, out.data(), out.size(), frame.data(), frame.size()));
  ZSTD_freeDCtx(ctx);
  state.counters["ratio_pct"] = 100.0 * static_cast<double>(frame.size()) / static_cast<double>(in.size());
}

void lz4_decode(benchmark::State& state) {
  const std::string in = product_json(static_cast<int>(state.range(0)));
  std::string block(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(in.size()))), '\0');
  block.resize(static_cast<std::size_t>(
      LZ4_compress_default(in.data(), block.data(), static_cast<int>(in.size()), static_cast<int>(block.size()))));
  std::string out(in.size(), '\0');
  for (auto _ : state)
    benchmark::DoNotOptimize(LZ4_decompress_safe(block.data(), out.data(), static_cast<int>(block.size()),
                                                 static_cast<int>(out.size())));
  state.counters["ratio_pct"] = 100.0 * static_cast<double>(block.size()) / static_cast<double>(in.size());
}

void json_parse(benchmark::State& state) {
  const std::string in = product_json(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(nlohmann::json::parse(in));
  state.counters["bytes"] = static_cast<double>(in.size());
}

}  // namespace

BENCHMARK(zstd_decode)->Arg(0)->Arg(40)->Arg(200);
BENCHMARK(lz4_decode)->Arg(0)->Arg(40)->Arg(200);
BENCHMARK(json_parse)->Arg(0)->Arg(40)->Arg(200);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
}
