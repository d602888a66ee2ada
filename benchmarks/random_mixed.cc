// random_mixed: the original HAKMEM reports' tiny-lane workload. One thread, WS slots; each
// iteration frees an occupied slot or fills an empty one with 16..1039 bytes.
#include "benchmarks/bench_util.h"

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"CYCLES", "iterations, one malloc or free each", 50e6, 1, 1e12},
      {"WS", "slots in the working set", 256, 1, 1e8},
      {"SEED", "xorshift32 seed", 42, 0, 4294967295.0},
      {"MIN", "sizes (16 + (r & 0x3FF)) are clamped to [MIN, MAX]", 16, 1, 1 << 30},
      {"MAX", "see MIN", 1040, 1, 1 << 30},
  };
  bench::ParseArgs(argc, argv, "random_mixed",
                   "Single-threaded random malloc/free of tiny blocks over a slot table.", args);
  const uint64_t cycles = args[0].u();
  const size_t min = args[3].u();
  const size_t max = args[4].u();
  if (min > max) bench::UsageError("MIN must not exceed MAX");

  bench::Stopwatch watch;
  bench::SlotLoop(
      cycles, args[1].u(), static_cast<uint32_t>(args[2].u()),
      [=](uint32_t r) { return bench::Clamp(16 + (r & 0x3FF), min, max); }, [](void*, size_t) {});
  bench::PrintResult(cycles, watch.Seconds());
  return 0;
}
