// tiny_hot: the fast path alone. Each cycle mallocs BATCH blocks of SIZE bytes and
// frees them in reverse order, so an allocator with a thread cache never leaves it.
#include <vector>

#include "benchmarks/bench_util.h"

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"SIZE", "block size in bytes", 64, 1, 1 << 30},
      {"BATCH", "blocks live at once", 100, 1, 1e8},
      {"CYCLES", "batches; each is BATCH mallocs and BATCH frees", 600000, 1, 1e12},
  };
  bench::ParseArgs(argc, argv, "tiny_hot",
                   "Single-threaded LIFO malloc/free of one size in batches.", args);
  const size_t size = args[0].u();
  const size_t batch = args[1].u();
  const uint64_t cycles = args[2].u();

  std::vector<void*> blocks(batch);
  bench::Stopwatch watch;
  for (uint64_t c = 0; c < cycles; ++c) {
    for (size_t i = 0; i < batch; ++i) {
      blocks[i] = bench::MallocOrDie(size);
      bench::SetTag(blocks[i], static_cast<uint8_t>(i));
    }
    for (size_t i = batch; i-- > 0;) {
      bench::CheckTag(blocks[i], static_cast<uint8_t>(i));
      free(blocks[i]);
    }
  }
  bench::PrintResult(2 * batch * cycles, watch.Seconds());
  return 0;
}
