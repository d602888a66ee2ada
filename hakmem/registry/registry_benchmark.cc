// Registry lookups: a hit (a registered chunk) and a miss (a stack address).
#include "benchmark/benchmark.h"
#include "hakmem/platform/platform.h"
#include "hakmem/registry/registry.h"

namespace hakmem::registry {
namespace {

void BM_LookupHit(benchmark::State& state) {
  char* base = static_cast<char*>(platform::Reserve(kChunkSize, kChunkSize));
  static int header;
  Register(base, kChunkSize, &header);
  size_t offset = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(Lookup(base + (offset += 4096) % kChunkSize));
  }
  Unregister(base, kChunkSize);
  platform::Release(base, kChunkSize);
}
BENCHMARK(BM_LookupHit);

void BM_LookupMiss(benchmark::State& state) {
  int on_stack = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(&on_stack);
    benchmark::DoNotOptimize(Lookup(&on_stack));
  }
}
BENCHMARK(BM_LookupMiss);

}  // namespace
}  // namespace hakmem::registry

BENCHMARK_MAIN();
