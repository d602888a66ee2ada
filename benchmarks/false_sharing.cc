// false_sharing: do blocks that different threads keep writing share a cache line?
// (Hoard's cache-thrash and cache-scratch.) THREADS threads each malloc a block of
// SIZE bytes, write every byte of it WRITES times and free it, ITERATIONS times.
// With PASSIVE=1 the main thread first mallocs one block per thread, all in a row
// (neighbours in one line, under most allocators), and each thread starts by
// freeing its own: an allocator that hands a freed block to the thread that freed
// it gives each thread a block beside the others'. Besides the time, it reports
// shared_lines: how many of the 64-byte lines the threads' blocks touched were
// touched by more than one thread (0 means no false sharing, whatever the timing).
#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "benchmarks/bench_util.h"

namespace {

constexpr uintptr_t kLine = 64;

struct Worker {
  size_t size = 0;
  uint64_t iterations = 0;
  uint64_t writes = 0;
  void* first = nullptr;         // PASSIVE: the main thread's block, freed first
  std::vector<uintptr_t> lines;  // every line a block of this thread covered

  void Run() {
    if (first != nullptr) free(first);
    for (uint64_t i = 0; i < iterations; ++i) {
      auto* p = static_cast<volatile unsigned char*>(bench::MallocOrDie(size));
      for (uint64_t w = 0; w < writes; ++w) {
        for (size_t k = 0; k < size; ++k) p[k] = static_cast<unsigned char>(p[k] + k + w);
      }
      const auto start = reinterpret_cast<uintptr_t>(p);
      for (uintptr_t line = start / kLine; line <= (start + size - 1) / kLine; ++line) {
        lines.push_back(line);
      }
      free(const_cast<unsigned char*>(p));
    }
    std::sort(lines.begin(), lines.end());
    lines.erase(std::unique(lines.begin(), lines.end()), lines.end());
  }
};

}  // namespace

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"THREADS", "threads writing blocks", 2, 1, 256},
      {"ITERATIONS", "blocks each thread mallocs, writes and frees", 1000, 1, 1e9},
      {"SIZE", "block size in bytes", 8, 1, 1 << 20},
      {"WRITES", "times each byte of a block is written", 100000, 1, 1e12},
      {"PASSIVE", "1: each thread first frees a block the main thread allocated", 1, 0, 1},
  };
  bench::ParseArgs(argc, argv, "false_sharing",
                   "Threads write their own small blocks; counts lines shared between threads.",
                   args);
  const size_t threads = args[0].u();
  std::vector<Worker> workers(threads);
  for (Worker& w : workers) {
    w.size = args[2].u();
    w.iterations = args[1].u();
    w.writes = args[3].u();
  }
  if (args[4].u() == 1) {
    for (Worker& w : workers) w.first = bench::MallocOrDie(w.size);
  }

  bench::Stopwatch watch;
  std::vector<std::thread> running;
  for (Worker& w : workers) running.emplace_back([&w] { w.Run(); });
  for (std::thread& t : running) t.join();
  const double seconds = watch.Seconds();

  // A line is shared when two threads' blocks covered it (at any time: a line one
  // thread wrote and then another is a line the cache moved between cores).
  std::vector<std::pair<uintptr_t, size_t>> owners;
  for (size_t t = 0; t < threads; ++t) {
    for (uintptr_t line : workers[t].lines) owners.emplace_back(line, t);
  }
  std::sort(owners.begin(), owners.end());
  uint64_t shared = 0;
  for (size_t i = 0; i < owners.size();) {
    size_t j = i;
    while (j < owners.size() && owners[j].first == owners[i].first) ++j;
    if (j - i > 1) ++shared;
    i = j;
  }
  bench::PrintResult(threads * args[1].u() * 2, seconds, {{"shared_lines", shared}});
  return 0;
}
