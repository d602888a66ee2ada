// Tiny lane alloc/free pairs through the thread cache (the box's hot path).
#include "benchmark/benchmark.h"
#include "hakmem/tiny_tls/tiny_tls.h"

namespace hakmem::tiny_tls {
namespace {

void BM_TinyAllocFreePair(benchmark::State& state) {
  Heap* heap = HasHeap() ? tls_heap : AttachHeap();
  const int cls = TinyClass(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    bool zeroed;
    void* p = TryAlloc(cls);
    if (p == nullptr) p = Refill(heap, cls, &zeroed);
    benchmark::DoNotOptimize(p);
    if (!TryFree(cls, p)) Flush(heap, cls, p);
  }
}
BENCHMARK(BM_TinyAllocFreePair)->Arg(16)->Arg(64)->Arg(256)->Arg(1024);

void BM_TinyBatch100(benchmark::State& state) {
  Heap* heap = HasHeap() ? tls_heap : AttachHeap();
  const int cls = TinyClass(64);
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
BENCHMARK(BM_TinyBatch100);

}  // namespace
}  // namespace hakmem::tiny_tls

BENCHMARK_MAIN();
