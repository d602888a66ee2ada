// Free routing: a local free (thread cache push), a remote free (queue push), and
// the registry miss of a foreign-looking pointer's first test.
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "hakmem/free_dispatch/free_dispatch.h"

namespace hakmem::free_dispatch {
namespace {

Heap* MyHeap() { return HasHeap() ? tls_heap : thread_cache::AttachHeap(); }

void* TinyBlock(int cls) {
  bool zeroed;
  void* p = thread_cache::TryAlloc(cls);
  return p != nullptr ? p : thread_cache::Refill(MyHeap(), cls, &zeroed);
}

void BM_LocalFreeRouting(benchmark::State& state) {
  const int cls = TinyClass(64);
  for (auto _ : state) {
    void* p = TinyBlock(cls);
    Free(p, Call::kFree);
  }
}
BENCHMARK(BM_LocalFreeRouting);

void BM_RemoteFreeRouting(benchmark::State& state) {
  const int cls = TinyClass(64);
  std::vector<void*> blocks(4096);
  for (auto _ : state) {
    state.PauseTiming();
    for (void*& p : blocks) p = TinyBlock(cls);
    state.ResumeTiming();
    std::thread([&] {
      for (void* p : blocks) Free(p, Call::kFree);
    }).join();
    state.PauseTiming();
    DrainRemote(MyHeap());
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * blocks.size());
}
BENCHMARK(BM_RemoteFreeRouting);

}  // namespace
}  // namespace hakmem::free_dispatch

BENCHMARK_MAIN();
