// Remote queue: push from one thread while another drains (the cross-thread free
// path), and the uncontended push + take pair.
#include <atomic>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "hakmem/remote_queue/remote_queue.h"

namespace hakmem {
namespace {

void BM_PushTakeUncontended(benchmark::State& state) {
  RemoteQueue queue;
  void* block[2];
  for (auto _ : state) {
    queue.Push(block);
    benchmark::DoNotOptimize(queue.TakeAll());
  }
}
BENCHMARK(BM_PushTakeUncontended);

void BM_PushWhileOwnerDrains(benchmark::State& state) {
  RemoteQueue queue;
  std::atomic<bool> stop{false};
  std::thread owner([&] {
    while (!stop.load(std::memory_order_relaxed)) benchmark::DoNotOptimize(queue.TakeAll());
  });
  std::vector<void*> blocks(4096 * 2);
  size_t i = 0;
  for (auto _ : state) {
    queue.Push(&blocks[(i++ & 4095) * 2]);
  }
  stop = true;
  owner.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PushWhileOwnerDrains)->UseRealTime();

}  // namespace
}  // namespace hakmem

BENCHMARK_MAIN();
