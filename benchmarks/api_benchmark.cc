// malloc/free pairs through hakmem's public API (hak_malloc/hak_free), across the
// sizes of every lane, beside the C library's malloc/free in the same binary.
#include <stdlib.h>

#include <vector>

#include "benchmark/benchmark.h"
#include "hakmem/hakmem.h"

namespace {

void BM_HakMallocFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = hak_malloc(size);
    benchmark::DoNotOptimize(p);
    hak_free(p);
  }
}

void BM_LibcMallocFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = malloc(size);
    benchmark::DoNotOptimize(p);
    free(p);
  }
}

// 64 live blocks of mixed sizes replaced round-robin: not only the hottest block.
void BM_HakMixedWorkingSet(benchmark::State& state) {
  std::vector<void*> live(64, nullptr);
  uint32_t r = 2463534242u;
  size_t i = 0;
  for (auto _ : state) {
    r ^= r << 13;
    r ^= r >> 17;
    r ^= r << 5;
    void*& slot = live[i++ & 63];
    hak_free(slot);
    slot = hak_malloc(16 + (r & 0x3FF));
    benchmark::DoNotOptimize(slot);
  }
  for (void* p : live) hak_free(p);
}

#define HAKMEM_SIZES \
  ->Arg(16)->Arg(256)->Arg(1024)->Arg(4096)->Arg(32768)->Arg(262144)->Arg(4 << 20)
BENCHMARK(BM_HakMallocFree) HAKMEM_SIZES;
BENCHMARK(BM_LibcMallocFree) HAKMEM_SIZES;
BENCHMARK(BM_HakMixedWorkingSet);

}  // namespace

BENCHMARK_MAIN();
