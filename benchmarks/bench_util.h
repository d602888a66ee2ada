// What every workload shares: positional arguments, the xorshift32 generator, block
// tags, timing, RSS and the one RESULT line that tools/compare.py and tools/ab.py
// parse. Workloads call only malloc/free/realloc, so any allocator can sit under
// them (LD_PRELOAD, or cc_binary(malloc = ...)).
#ifndef BENCHMARKS_BENCH_UTIL_H_
#define BENCHMARKS_BENCH_UTIL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <vector>

namespace bench {

// One positional argument. `value` holds the default until ParseArgs replaces it.
struct Arg {
  const char* name;
  const char* help;
  double value;
  double min;
  double max;
  bool integer = true;

  uint64_t u() const { return static_cast<uint64_t>(value); }
};

// Parses argv[1..] into `args` in order; missing trailing ones keep their defaults.
// Integers take a K/M/G (binary) suffix. -h/--help prints the usage and exits 0; a
// bad, out-of-range or extra argument prints it to stderr and exits 2. Records the
// workload's name and values for PrintResult and Fail.
void ParseArgs(int argc, char** argv, const char* bench, const char* what, Arg* args, size_t count);
template <size_t N>
void ParseArgs(int argc, char** argv, const char* bench, const char* what, Arg (&args)[N]) {
  ParseArgs(argc, argv, bench, what, args, N);
}

// For checks across arguments (MIN <= MAX): prints `message` and the usage, exits 2.
[[noreturn]] void UsageError(const char* message);

// Reports a broken allocator contract (corruption, NULL) on stderr and aborts, so
// a harness sees a crash instead of a number.
[[noreturn]] void Fail(const char* format, ...) __attribute__((format(printf, 1, 2)));

// One extra integer field of the RESULT line.
struct Field {
  const char* key;
  uint64_t value;
};

// Prints `RESULT bench=... ops=... seconds=... ops_per_sec=... peak_rss_kb=...
// malloc=... <extra> args=v1,v2,...` on stdout. `ops` counts allocator calls
// (malloc, free, realloc); `malloc` names the object that serves malloc.
void PrintResult(uint64_t ops, double seconds, std::initializer_list<Field> extra = {});

// Peak resident set of this program, in KiB: VmHWM, not ru_maxrss, which keeps the
// peak of the process before exec (a harness that forked it) when that was larger.
uint64_t PeakRssKb();
// Resident set now (/proc/self/statm), in KiB; read without allocating.
uint64_t CurrentRssKb();

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// The original HAKMEM reports' generator (r ^= r<<13; r ^= r>>17; r ^= r<<5); a zero seed,
// which would stay zero, is replaced.
class Xorshift32 {
 public:
  explicit Xorshift32(uint32_t seed) : r_(seed != 0 ? seed : 2463534242u) {}
  uint32_t Next() {
    r_ ^= r_ << 13;
    r_ ^= r_ >> 17;
    r_ ^= r_ << 5;
    return r_;
  }

 private:
  uint32_t r_;
};

// Seed of thread `t` of a multi-threaded workload, as in the original HAKMEM's mid_large_mt.
inline uint32_t ThreadSeed(uint32_t seed, unsigned t) {
  return seed ^ static_cast<uint32_t>((t + 1) * 2654435761u);
}

inline size_t Clamp(size_t size, size_t min, size_t max) {
  return size < min ? min : (size > max ? max : size);
}

// A size in [min, max] drawn from `r`: a power-of-two octave uniformly, then a
// uniform offset inside it, so small and large sizes are equally frequent.
size_t LogUniformSize(uint32_t r, size_t min, size_t max);

inline void* MallocOrDie(size_t size) {
  void* p = malloc(size);
  if (p == nullptr) Fail("malloc(%zu) returned NULL", size);
  return p;
}

// A block's first byte carries a tag chosen at malloc time; a different byte at free
// time means the allocator handed the block out twice or overwrote it.
inline void SetTag(void* p, uint8_t tag) { *static_cast<volatile uint8_t*>(p) = tag; }
inline void CheckTag(const void* p, uint8_t tag) {
  const uint8_t got = *static_cast<const volatile uint8_t*>(p);
  if (got != tag) Fail("block %p: first byte is 0x%02x, wrote 0x%02x", p, got, tag);
}

// Writes one byte in every 4 KiB page of [p, p+size), so the memory is resident.
void TouchPages(void* p, size_t size, uint8_t value);

// The loop of random_mixed, mid_large_mt and large_huge: each step draws r, takes
// slot r % ws, and frees the block there (tag checked) or, if the slot is empty,
// mallocs size_of(r) bytes, hands them to on_alloc and tags them. Frees what is left
// at the end.
template <typename SizeOf, typename OnAlloc>
void SlotLoop(uint64_t cycles, size_t ws, uint32_t seed, SizeOf size_of, OnAlloc on_alloc) {
  std::vector<void*> slot(ws, nullptr);
  std::vector<uint8_t> tag(ws);
  Xorshift32 rng(seed);
  for (uint64_t i = 0; i < cycles; ++i) {
    const uint32_t r = rng.Next();
    const size_t s = r % ws;
    if (slot[s] != nullptr) {
      CheckTag(slot[s], tag[s]);
      free(slot[s]);
      slot[s] = nullptr;
    } else {
      const size_t size = size_of(r);
      void* p = MallocOrDie(size);
      on_alloc(p, size);
      tag[s] = static_cast<uint8_t>(r >> 24);
      SetTag(p, tag[s]);
      slot[s] = p;
    }
  }
  for (size_t s = 0; s < ws; ++s) {
    if (slot[s] != nullptr) CheckTag(slot[s], tag[s]);
    free(slot[s]);
  }
}

}  // namespace bench

#endif  // BENCHMARKS_BENCH_UTIL_H_
