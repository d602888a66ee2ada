// large_huge: big blocks, 64 KiB .. 64 MiB (log-uniform), over a small working set.
// Every page of a new block is written, so an allocator that hands back fresh
// mappings pays the page faults and one that reuses warm memory does not.
#include "benchmarks/bench_util.h"

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"CYCLES", "iterations, one malloc (with touch) or free each", 400, 1, 1e12},
      {"WS", "slots in the working set", 4, 1, 1e6},
      {"MIN", "smallest size in bytes", 64 * 1024, 1, 1ull << 32},
      {"MAX", "largest size in bytes", 64 * 1024 * 1024, 1, 1ull << 32},
      {"SEED", "xorshift32 seed", 42, 0, 4294967295.0},
  };
  bench::ParseArgs(argc, argv, "large_huge",
                   "Single-threaded malloc/touch/free of large and huge blocks.", args);
  const uint64_t cycles = args[0].u();
  const size_t min = args[2].u();
  const size_t max = args[3].u();
  if (min > max) bench::UsageError("MIN must not exceed MAX");

  bench::Stopwatch watch;
  bench::SlotLoop(
      cycles, args[1].u(), static_cast<uint32_t>(args[4].u()),
      [=](uint32_t r) { return bench::LogUniformSize(r, min, max); },
      [](void* p, size_t size) { bench::TouchPages(p, size, 0x5a); });
  bench::PrintResult(cycles, watch.Seconds());
  return 0;
}
