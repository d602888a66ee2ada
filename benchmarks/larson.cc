// larson: Larson & Krishnan's server simulation, with the classic argument order
// (larson SECONDS MIN MAX BLOCKS ROUNDS SEED THREADS). Each of THREADS lanes owns
// BLOCKS blocks of random sizes in [MIN, MAX]. A generation is a new thread that
// replaces ROUNDS * BLOCKS random blocks (free + malloc) of its lane and exits; the
// next generation inherits the array, so its frees hit memory of a thread that is
// gone. Lanes run generations until SECONDS have passed.
#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "benchmarks/bench_util.h"

namespace {

// Each lane on cache lines of its own: the lanes sit in one vector, and two
// threads writing `rng` and `ops` on a shared line made the run measure where the
// allocator happened to place that vector (a 2x swing between two hakmem builds
// whose only difference was where a slab's tail sits) instead of the allocator.
struct alignas(64) Lane {
  std::vector<void*> blocks;
  std::vector<uint8_t> tags;
  bench::Xorshift32 rng{1};
  uint64_t ops = 0;
  uint64_t generations = 0;
};

struct Params {
  size_t min;
  size_t max;
  uint64_t replacements;  // per generation
};

void Replace(Lane& lane, size_t i, const Params& p) {
  const uint32_t r = lane.rng.Next();
  const size_t size = p.min + r % (p.max - p.min + 1);
  lane.blocks[i] = bench::MallocOrDie(size);
  lane.tags[i] = static_cast<uint8_t>(r >> 24);
  bench::SetTag(lane.blocks[i], lane.tags[i]);
}

void Generation(Lane& lane, const Params& p, const std::atomic<bool>& stop) {
  const size_t n = lane.blocks.size();
  for (uint64_t i = 0; i < p.replacements; ++i) {
    // A generation can outlast the run; look at the clock's flag now and then.
    if ((i & 1023) == 0 && stop.load(std::memory_order_relaxed)) break;
    const size_t victim = lane.rng.Next() % n;
    bench::CheckTag(lane.blocks[victim], lane.tags[victim]);
    free(lane.blocks[victim]);
    Replace(lane, victim, p);
    lane.ops += 2;
  }
  ++lane.generations;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"SECONDS", "run time", 1, 0.01, 3600, false},
      {"MIN", "smallest block size", 8, 1, 1 << 30},
      {"MAX", "largest block size", 1000, 1, 1 << 30},
      {"BLOCKS", "blocks per lane", 5000, 1, 1e8},
      {"ROUNDS", "a generation replaces ROUNDS * BLOCKS blocks", 10, 1, 1e6},
      {"SEED", "xorshift32 seed; lane t uses SEED ^ (t + 1) * 2654435761", 4141, 0, 4294967295.0},
      {"THREADS", "lanes (threads alive at once)", 2, 1, 1024},
  };
  bench::ParseArgs(argc, argv, "larson",
                   "Larson server simulation: blocks outlive their thread, frees are remote.",
                   args);
  const Params params{args[1].u(), args[2].u(), args[4].u() * args[3].u()};
  if (params.min > params.max) bench::UsageError("MIN must not exceed MAX");
  const size_t blocks = args[3].u();
  const unsigned threads = static_cast<unsigned>(args[6].u());

  // The first arrays are filled by the main thread, before the clock starts.
  std::vector<Lane> lanes(threads);
  for (unsigned t = 0; t < threads; ++t) {
    Lane& lane = lanes[t];
    lane.rng = bench::Xorshift32(bench::ThreadSeed(static_cast<uint32_t>(args[5].u()), t));
    lane.blocks.resize(blocks);
    lane.tags.resize(blocks);
    for (size_t i = 0; i < blocks; ++i) Replace(lane, i, params);
  }

  std::atomic<bool> stop{false};
  bench::Stopwatch watch;
  // A driver per lane starts each generation and waits for it, so at most THREADS
  // generations allocate at once and each runs on a thread of its own.
  std::vector<std::thread> drivers;
  for (Lane& lane : lanes) {
    drivers.emplace_back([&lane, &params, &stop] {
      while (!stop.load(std::memory_order_relaxed)) {
        std::thread(Generation, std::ref(lane), std::cref(params), std::cref(stop)).join();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(args[0].value));
  stop.store(true, std::memory_order_relaxed);
  for (std::thread& d : drivers) d.join();
  const double seconds = watch.Seconds();

  uint64_t ops = 0;
  uint64_t generations = 0;
  for (Lane& lane : lanes) {
    ops += lane.ops;
    generations += lane.generations;
    for (size_t i = 0; i < blocks; ++i) {
      bench::CheckTag(lane.blocks[i], lane.tags[i]);
      free(lane.blocks[i]);
    }
  }
  bench::PrintResult(ops, seconds, {{"generations", generations}});
  return 0;
}
