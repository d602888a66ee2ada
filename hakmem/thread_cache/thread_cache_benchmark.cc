// Alloc/free pairs through the thread cache (the box's hot path), tiny and pool
// classes alike.
#include "benchmark/benchmark.h"
#include "hakmem/thread_cache/thread_cache.h"

namespace hakmem::thread_cache {
namespace {

void BM_AllocFreePair(benchmark::State& state) {
  Heap* heap = HasHeap() ? tls_heap : thread_cache::AttachHeap();
  const int cls = SizeClass(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    bool zeroed;
    void* p = TryAlloc(cls);
    if (p == nullptr) p = Refill(heap, cls, &zeroed);
    benchmark::DoNotOptimize(p);
    if (!TryFree(cls, p)) Flush(heap, cls, p);
  }
}
BENCHMARK(BM_AllocFreePair)
    ->Arg(16)
    ->Arg(64)
    ->Arg(256)
    ->Arg(1024)
    ->Arg(2048)
    ->Arg(8192)
    ->Arg(33000)
    ->Arg(131072);

void BM_Batch100(benchmark::State& state) {
  Heap* heap = HasHeap() ? tls_heap : thread_cache::AttachHeap();
  const int cls = SizeClass(64);
  void* blocks[100];
  bool zeroed;
  for (auto _ : state) {
    for (void*& p : blocks) {
      p = TryAlloc(cls);
      if (p == nullptr) p = Refill(heap, cls, &zeroed);
    }
    for (int i = 99; i >= 0; --i) {
      if (!TryFree(cls, blocks[i])) Flush(heap, cls, blocks[i]);
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_Batch100);

}  // namespace
}  // namespace hakmem::thread_cache

BENCHMARK_MAIN();
