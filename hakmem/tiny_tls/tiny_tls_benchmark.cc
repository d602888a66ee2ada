// The tiny lane's size lookup (the malloc fast path's first load): the
// per-thread table read %fs-relative, against size_class's shared TinyClass.
#include <cstddef>
#include <vector>

#include "benchmark/benchmark.h"
#include "hakmem/tiny_tls/tiny_tls.h"

namespace hakmem::tiny_tls {
namespace {

struct BenchBlock {
  SizeTable table;
};
ABSL_CONST_INIT __thread BenchBlock tls_bench HAKMEM_TLS = {kSizeTable};

std::vector<size_t> Sizes() {
  std::vector<size_t> sizes;
  for (size_t i = 0; i < 4096; ++i) sizes.push_back((i * 2654435761u) % (kTinyMax + 1));
  return sizes;
}

void BM_ListOffsetAt(benchmark::State& state) {
  const std::vector<size_t> sizes = Sizes();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ListOffsetAt<0>(tls_bench, sizes[i++ & 4095]));
  }
}
BENCHMARK(BM_ListOffsetAt);

void BM_SharedTinyClass(benchmark::State& state) {
  const std::vector<size_t> sizes = Sizes();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ListOffset(static_cast<uint32_t>(TinyClass(sizes[i++ & 4095]))));
  }
}
BENCHMARK(BM_SharedTinyClass);

}  // namespace
}  // namespace hakmem::tiny_tls

BENCHMARK_MAIN();
