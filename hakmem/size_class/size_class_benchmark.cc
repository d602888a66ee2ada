// Size -> class lookup, for sizes drawn like random_mixed's tiny requests and
// across the pool lane.
#include <cstddef>
#include <vector>

#include "benchmark/benchmark.h"
#include "hakmem/size_class/size_class.h"

namespace hakmem {
namespace {

std::vector<size_t> Sizes(size_t min, size_t max) {
  std::vector<size_t> sizes(4096);
  uint32_t r = 2463534242u;
  for (size_t& s : sizes) {
    r ^= r << 13;
    r ^= r >> 17;
    r ^= r << 5;
    s = min + r % (max - min + 1);
  }
  return sizes;
}

void BM_TinyClass(benchmark::State& state) {
  const std::vector<size_t> sizes = Sizes(0, kTinyMax);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(TinyClass(sizes[i++ & 4095]));
  }
}
BENCHMARK(BM_TinyClass);

void BM_PoolClass(benchmark::State& state) {
  const std::vector<size_t> sizes = Sizes(kTinyMax + 1, kPoolMax);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(PoolClass(sizes[i++ & 4095]));
  }
}
BENCHMARK(BM_PoolClass);

void BM_SizeClassMixed(benchmark::State& state) {
  const std::vector<size_t> sizes = Sizes(0, kPoolMax / 8);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(SizeClass(sizes[i++ & 4095]));
  }
}
BENCHMARK(BM_SizeClassMixed);

}  // namespace
}  // namespace hakmem

BENCHMARK_MAIN();
