// Encode + decode of a ~1 KB product for each codec, plain and in the envelope,
// next to raw nlohmann::json dump/parse in the same run; and what the depth
// check costs within a decode. Pinned, as in
// bench/README.md: taskset -c 0 build/bench/bench/bench_codec --benchmark_repetitions=10
// --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true

#include "ratio_reporter.hpp"

#include <cachet/codec/entry.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/codec/msgpack.hpp>
#include <support/product.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <string_view>

namespace {

using cachet::test::Product;
const Product product = cachet::test::sample_product();

cachet::EntryMeta meta() {
  cachet::EntryMeta m;
  m.created_at = std::chrono::system_clock::now();
  m.fresh_until = m.created_at + std::chrono::minutes(5);
  m.compute_time = std::chrono::milliseconds(3);
  return m;
}

void raw_nlohmann_json(benchmark::State& state) {
  for (auto _ : state) {
    std::string bytes = nlohmann::json(product).dump();
    Product back = nlohmann::json::parse(bytes).get<Product>();
    benchmark::DoNotOptimize(back);
  }
  state.counters["bytes"] = static_cast<double>(nlohmann::json(product).dump().size());
}

void raw_nlohmann_msgpack(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<std::uint8_t> bytes = nlohmann::json::to_msgpack(nlohmann::json(product));
    Product back = nlohmann::json::from_msgpack(bytes).get<Product>();
    benchmark::DoNotOptimize(back);
  }
}

template <class Codec>
void codec_plain(benchmark::State& state) {
  const Codec codec;
  for (auto _ : state) {
    std::string bytes = codec.encode(product);
    Product back = codec.decode(bytes);
    benchmark::DoNotOptimize(back);
  }
}

template <class Codec>
void codec_envelope(benchmark::State& state) {
  const cachet::EntryCodec<Codec> codec(cachet::Format::envelope);
  const cachet::EntryMeta m = meta();
  for (auto _ : state) {
    std::string bytes = codec.encode(product, m);
    auto back = codec.decode(bytes);
    benchmark::DoNotOptimize(back);
  }
}

// Decode alone, and the depth check that decode runs first (codec/depth.hpp).
template <class Codec>
void codec_decode(benchmark::State& state) {
  const Codec codec;
  const std::string bytes = codec.encode(product);
  for (auto _ : state) {
    Product back = codec.decode(bytes);
    benchmark::DoNotOptimize(back);
  }
}

template <class Codec, void (*check)(std::string_view, std::size_t)>
void depth_check(benchmark::State& state) {
  const std::string bytes = Codec{}.encode(product);
  for (auto _ : state) {
    check(bytes, cachet::default_max_depth);
    benchmark::ClobberMemory();
  }
}

}  // namespace

BENCHMARK(raw_nlohmann_json);
BENCHMARK(raw_nlohmann_msgpack);
BENCHMARK(codec_plain<cachet::JsonCodec<Product>>)->Name("json_plain");
BENCHMARK(codec_envelope<cachet::JsonCodec<Product>>)->Name("json_envelope");
BENCHMARK(codec_plain<cachet::MsgPackCodec<Product>>)->Name("msgpack_plain");
BENCHMARK(codec_envelope<cachet::MsgPackCodec<Product>>)->Name("msgpack_envelope");
BENCHMARK(codec_plain<cachet::CborCodec<Product>>)->Name("cbor_plain");
BENCHMARK(codec_envelope<cachet::CborCodec<Product>>)->Name("cbor_envelope");
BENCHMARK(codec_decode<cachet::JsonCodec<Product>>)->Name("json_decode");
BENCHMARK(codec_decode<cachet::MsgPackCodec<Product>>)->Name("msgpack_decode");
BENCHMARK(codec_decode<cachet::CborCodec<Product>>)->Name("cbor_decode");
BENCHMARK(depth_check<cachet::JsonCodec<Product>, cachet::detail::check_json_depth>)->Name("json_depth_check");
BENCHMARK(depth_check<cachet::MsgPackCodec<Product>, cachet::detail::check_msgpack_depth>)->Name("msgpack_depth_check");
BENCHMARK(depth_check<cachet::CborCodec<Product>, cachet::detail::check_cbor_depth>)->Name("cbor_depth_check");

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"json_plain", "raw_nlohmann_json"},
                         {"json_envelope", "raw_nlohmann_json"},
                         {"json_envelope", "json_plain"},
                         {"msgpack_plain", "raw_nlohmann_msgpack"},
                         {"msgpack_envelope", "msgpack_plain"},
                         {"cbor_envelope", "cbor_plain"},
                         {"msgpack_plain", "raw_nlohmann_json"},
                         {"cbor_plain", "raw_nlohmann_json"},
                         {"json_depth_check", "json_decode"},
                         {"msgpack_depth_check", "msgpack_decode"},
                         {"cbor_depth_check", "cbor_decode"}});
  benchmark::Shutdown();
}
