// realloc_grow: BUFFERS buffers grow side by side by realloc from a few bytes to
// MAX bytes (mostly +1/8 steps, sometimes doubling), then are freed; ROUNDS times.
// Neighbours block in-place growth now and then, so both the in-place and the
// moving path run. Sampled bytes (one per 4 KiB and the last) are checked after
// every realloc.
#include <vector>

#include "benchmarks/bench_util.h"

namespace {

// Expected byte at `offset` of buffer `id`.
uint8_t Pattern(size_t offset, size_t id) {
  return static_cast<uint8_t>(offset * 131 + (offset >> 12) + id * 17 + 1);
}

void WriteSamples(uint8_t* p, size_t from, size_t to, size_t id) {
  for (size_t off = (from + 4095) & ~size_t{4095}; off < to; off += 4096) {
    p[off] = Pattern(off, id);
  }
  p[to - 1] = Pattern(to - 1, id);
}

void CheckSamples(const uint8_t* p, size_t size, size_t id) {
  for (size_t off = 0; off < size; off += 4096) {
    if (p[off] != Pattern(off, id)) bench::Fail("realloc lost byte %zu of %zu", off, size);
  }
  if (p[size - 1] != Pattern(size - 1, id)) bench::Fail("realloc lost the last byte of %zu", size);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"ROUNDS", "times the buffers grow from small to MAX", 30, 1, 1e9},
      {"BUFFERS", "buffers growing side by side", 8, 1, 1e6},
      {"MAX", "final size of each buffer in bytes", 4 * 1024 * 1024, 2, 1ull << 34},
      {"SEED", "xorshift32 seed", 42, 0, 4294967295.0},
  };
  bench::ParseArgs(argc, argv, "realloc_grow",
                   "Buffers grown by realloc from a few bytes to MAX; contents checked.", args);
  const uint64_t rounds = args[0].u();
  const size_t buffers = args[1].u();
  const size_t max = args[2].u();
  bench::Xorshift32 rng(static_cast<uint32_t>(args[3].u()));

  std::vector<uint8_t*> buf(buffers);
  std::vector<size_t> size(buffers);
  uint64_t ops = 0;
  bench::Stopwatch watch;
  for (uint64_t round = 0; round < rounds; ++round) {
    for (size_t b = 0; b < buffers; ++b) {
      size[b] = bench::Clamp(1 + rng.Next() % 64, 1, max);
      buf[b] = static_cast<uint8_t*>(bench::MallocOrDie(size[b]));
      WriteSamples(buf[b], 0, size[b], b);
    }
    ops += buffers;
    for (bool growing = true; growing;) {
      growing = false;
      for (size_t b = 0; b < buffers; ++b) {
        if (size[b] == max) continue;
        const uint32_t r = rng.Next();
        const size_t step = (r & 3) == 0 ? size[b] : size[b] / 8 + 1 + (r >> 26);
        const size_t next = bench::Clamp(size[b] + step, 0, max);
        uint8_t* p = static_cast<uint8_t*>(realloc(buf[b], next));
        if (p == nullptr) bench::Fail("realloc(%zu) returned NULL", next);
        CheckSamples(p, size[b], b);
        WriteSamples(p, size[b], next, b);
        buf[b] = p;
        size[b] = next;
        ++ops;
        growing = true;
      }
    }
    for (size_t b = 0; b < buffers; ++b) {
      CheckSamples(buf[b], size[b], b);
      free(buf[b]);
    }
    ops += buffers;
  }
  bench::PrintResult(ops, watch.Seconds());
  return 0;
}
