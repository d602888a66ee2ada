// The cost of an ACE decision (an event of a refill or flush slow path): a class
// climbing to its cap, a steady class at its cap, and events spread over many
// classes under a full budget (the steal searches).
#include "benchmark/benchmark.h"
#include "hakmem/ace/ace.h"

namespace hakmem::ace {
namespace {

void BM_EventAtCap(benchmark::State& state) {
  State s{};
  Configure(&s, uint64_t{4} << 20);
  for (auto _ : state) benchmark::DoNotOptimize(OnEvent(&s, 72, Event::kRefill));
}
BENCHMARK(BM_EventAtCap);

void BM_EventsOverPoolClassesFullBudget(benchmark::State& state) {
  State s{};
  Configure(&s, static_cast<uint64_t>(state.range(0)) << 10);
  uint32_t x = 1;
  for (auto _ : state) {
    x = x * 1103515245u + 12345u;
    const int cls = kFirstPoolClass + static_cast<int>((x >> 16) % 40);
    benchmark::DoNotOptimize(OnEvent(&s, cls, Event::kRefill));
    if (HasTrims(s)) s.trims[0] = s.trims[1] = 0;  // no lists to take them
  }
}
BENCHMARK(BM_EventsOverPoolClassesFullBudget)->Arg(1024)->Arg(4096);

}  // namespace
}  // namespace hakmem::ace

BENCHMARK_MAIN();
