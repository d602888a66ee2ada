// mid_large_mt: the original HAKMEM reports' mid-size workload (bench_mid_large_mt). THREADS
// threads, each with its own WS slots and seed, allocate 8..34 KiB blocks
// ((1 << (13 + r % 3)) + (r & 0x7FF)) or free them; every free is local.
#include <thread>
#include <vector>

#include "benchmarks/bench_util.h"

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"THREADS", "worker threads", 2, 1, 1024},
      {"CYCLES", "iterations per thread, one malloc or free each", 5e6, 1, 1e12},
      {"WS", "slots per thread", 2048, 1, 1e8},
      {"SEED", "xorshift32 seed; thread t uses SEED ^ (t + 1) * 2654435761", 42, 0, 4294967295.0},
  };
  bench::ParseArgs(argc, argv, "mid_large_mt",
                   "Multi-threaded random malloc/free of 8..34 KiB blocks, thread-local slots.",
                   args);
  const unsigned threads = static_cast<unsigned>(args[0].u());
  const uint64_t cycles = args[1].u();
  const size_t ws = args[2].u();
  const uint32_t seed = static_cast<uint32_t>(args[3].u());

  bench::Stopwatch watch;
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([=] {
      bench::SlotLoop(
          cycles, ws, bench::ThreadSeed(seed, t),
          [](uint32_t r) { return (size_t{1} << (13 + r % 3)) + (r & 0x7FF); },
          [](void*, size_t) {});
    });
  }
  for (std::thread& w : workers) w.join();
  bench::PrintResult(threads * cycles, watch.Seconds());
  return 0;
}
