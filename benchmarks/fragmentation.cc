// fragmentation: does freed memory get reused, and given back? BLOCKS slots are
// filled, then all but KEEP percent are freed in random order, ROUNDS times. Each
// round draws sizes from a two-octave window that slides through [MIN, MAX] and wraps
// around, so survivors of earlier rounds pin memory of sizes no longer asked for.
// Reports the peak RSS, the RSS with the last survivors live (final_rss_kb), their
// requested bytes (live_bytes), the RSS once everything is freed (freed_rss_kb), and
// the RSS after QUIET_MS more milliseconds without a call to the allocator
// (quiet_rss_kb): what a program that goes quiet after freeing its heap keeps.
#include <thread>
#include <utility>
#include <vector>

#include "benchmarks/bench_util.h"

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"BLOCKS", "slots", 100000, 1, 1e9},
      {"ROUNDS", "fill/free rounds", 12, 1, 1e6},
      {"KEEP", "percent of the blocks that survive each free phase", 10, 0, 100},
      {"MIN", "smallest block size", 16, 1, 1 << 30},
      {"MAX", "largest block size", 4096, 1, 1 << 30},
      {"SEED", "xorshift32 seed", 42, 0, 4294967295.0},
      {"QUIET_MS", "milliseconds without allocator calls before quiet_rss_kb", 1000, 0, 6e5},
  };
  bench::ParseArgs(argc, argv, "fragmentation",
                   "Fill, free most blocks at random, refill with other sizes; RSS vs live.", args);
  const size_t blocks = args[0].u();
  const uint64_t rounds = args[1].u();
  const size_t keep = blocks * args[2].u() / 100;
  const size_t min = args[3].u();
  const size_t max = args[4].u();
  if (min > max) bench::UsageError("MIN must not exceed MAX");
  bench::Xorshift32 rng(static_cast<uint32_t>(args[5].u()));

  const uint64_t start_rss_kb = bench::CurrentRssKb();
  std::vector<void*> slot(blocks, nullptr);
  std::vector<size_t> size(blocks, 0);
  std::vector<uint8_t> tag(blocks);
  std::vector<size_t> order(blocks);
  for (size_t i = 0; i < blocks; ++i) order[i] = i;

  const unsigned lo = 63 - __builtin_clzll(min);
  const unsigned octaves = 63 - __builtin_clzll(max) - lo + 1;
  uint64_t ops = 0;
  bench::Stopwatch watch;
  for (uint64_t round = 0; round < rounds; ++round) {
    size_t wmin = min;
    size_t wmax = max;
    if (octaves > 2) {
      const unsigned shift = lo + round % (octaves - 1);
      wmin = bench::Clamp(size_t{1} << shift, min, max);
      wmax = bench::Clamp((size_t{4} << shift) - 1, min, max);
    }
    for (size_t i = 0; i < blocks; ++i) {
      if (slot[i] != nullptr) continue;
      const uint32_t r = rng.Next();
      size[i] = bench::LogUniformSize(r, wmin, wmax);
      slot[i] = bench::MallocOrDie(size[i]);
      bench::TouchPages(slot[i], size[i], 0);
      tag[i] = static_cast<uint8_t>(r >> 24);
      bench::SetTag(slot[i], tag[i]);
      ++ops;
    }
    // Free all but `keep`, in an order shuffled afresh each round (Fisher-Yates).
    for (size_t i = blocks; i > 1; --i) std::swap(order[i - 1], order[rng.Next() % i]);
    for (size_t i = keep; i < blocks; ++i) {
      const size_t s = order[i];
      bench::CheckTag(slot[s], tag[s]);
      free(slot[s]);
      slot[s] = nullptr;
      ++ops;
    }
  }
  const double seconds = watch.Seconds();

  const uint64_t final_rss_kb = bench::CurrentRssKb();
  uint64_t live_bytes = 0;
  for (size_t i = 0; i < blocks; ++i) {
    if (slot[i] == nullptr) continue;
    live_bytes += size[i];
    bench::CheckTag(slot[i], tag[i]);
    free(slot[i]);
  }
  const uint64_t freed_rss_kb = bench::CurrentRssKb();
  std::this_thread::sleep_for(std::chrono::milliseconds(args[6].u()));
  bench::PrintResult(ops, seconds,
                     {{"start_rss_kb", start_rss_kb},
                      {"final_rss_kb", final_rss_kb},
                      {"live_bytes", live_bytes},
                      {"freed_rss_kb", freed_rss_kb},
                      {"quiet_rss_kb", bench::CurrentRssKb()}});
  return 0;
}
