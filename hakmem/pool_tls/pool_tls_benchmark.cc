// Pool lane alloc/free pairs through the thread cache, at several sizes.
#include "benchmark/benchmark.h"
#include "hakmem/pool_tls/pool_tls.h"

namespace hakmem::pool_tls {
namespace {

void BM_PoolAllocFreePair(benchmark::State& state) {
  Heap* heap = HasHeap() ? tls_heap : AttachHeap();
  const int cls = PoolClass(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    bool zeroed;
    void* p = TryAlloc(cls);
    if (p == nullptr) p = Refill(heap, cls, &zeroed);
    benchmark::DoNotOptimize(p);
    if (!TryFree(cls, p)) Flush(heap, cls, p);
  }
}
BENCHMARK(BM_PoolAllocFreePair)->Arg(2048)->Arg(8192)->Arg(33000)->Arg(131072);

}  // namespace
}  // namespace hakmem::pool_tls

BENCHMARK_MAIN();
