#include "hakmem/profiler/profiler.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>

#include "absl/base/optimization.h"
#include "hakmem/config/options.h"
#include "hakmem/platform/platform.h"
#include "hakmem/platform/spin_lock.h"

// The bounds of the section of HAKMEM_ALLOC_ENTRY functions (the linker defines
// them; OnAlloc is in it, so it always exists where the profiler is linked).
extern "C" {
extern const char __start_hakmem_alloc_entry[] __attribute__((visibility("hidden")));
extern const char __stop_hakmem_alloc_entry[] __attribute__((visibility("hidden")));
// The top of the main thread's stack (glibc's dynamic loader).
extern void* __libc_stack_end;
}

namespace hakmem::profiler {

ABSL_CONST_INIT std::atomic<bool> g_enabled{false};

namespace {

constexpr int kMaxDepth = 64;

// One distinct stack and what was sampled there. Never freed.
// The estimates of a stack's allocations and frees: a sampled block with k
// sample points stands for k x rate bytes and k x rate / size blocks (kept in
// 1/kObjectUnit blocks), the inverse of its probability (profiler.h).
inline constexpr uint64_t kObjectUnit = 1024;
struct Bucket {
  uint64_t hash;
  Bucket* chain;                 // same hash slot
  Bucket* next_all;              // every bucket, newest first
  std::atomic<uint64_t> allocs;  // sampled blocks
  std::atomic<uint64_t> alloc_bytes;
  std::atomic<uint64_t> frees;
  std::atomic<uint64_t> free_bytes;
  std::atomic<uint64_t> alloc_objects_estimate;  // in 1/kObjectUnit blocks
  std::atomic<uint64_t> alloc_bytes_estimate;
  std::atomic<uint64_t> free_objects_estimate;
  std::atomic<uint64_t> free_bytes_estimate;
  int depth;
  uintptr_t pcs[kMaxDepth];
};

// A live sampled block. addr == 0: an empty slot.
struct Sample {
  uintptr_t addr;
  uint64_t size;
  Bucket* bucket;
  uint64_t objects_estimate;  // what it added to its bucket's estimates
  uint64_t bytes_estimate;
};

// The live table: shards of open addressing with linear probing, each under its
// own lock (a free takes one shard's lock, not a global one).
constexpr int kShardBits = 6;
constexpr int kShards = 1 << kShardBits;
constexpr size_t kSlots = 8192;                // per shard, a power of two
constexpr uint32_t kMaxLive = kSlots * 3 / 4;  // per shard; beyond, drop
struct Shard {
  platform::SpinLock lock;
  // Written under the lock; read without it by OnFree, so that a free in a
  // shard with no sample takes no lock. A sampled block was inserted before the
  // program could hand it to the thread that frees it: that thread sees count > 0.
  std::atomic<uint32_t> count{0};
  Sample* slots = nullptr;
};
ABSL_CONST_INIT Shard g_shards[kShards];

constexpr size_t kBucketSlots = 1 << 14;
ABSL_CONST_INIT platform::SpinLock g_bucket_lock;
ABSL_CONST_INIT Bucket** g_bucket_table = nullptr;            // under g_bucket_lock
ABSL_CONST_INIT std::atomic<Bucket*> g_all_buckets{nullptr};  // published list
ABSL_CONST_INIT char* g_arena = nullptr;                      // under g_bucket_lock
ABSL_CONST_INIT char* g_arena_end = nullptr;

ABSL_CONST_INIT std::atomic<uint64_t> g_samples{0};
ABSL_CONST_INIT std::atomic<uint64_t> g_stacks{0};
ABSL_CONST_INIT std::atomic<uint64_t> g_dropped{0};
ABSL_CONST_INIT std::atomic<uint64_t> g_recursive{0};

ABSL_CONST_INIT uint64_t g_rate = 256 * 1024;
ABSL_CONST_INIT uint64_t g_seed = 0;
ABSL_CONST_INIT std::atomic<int> g_init_state{0};  // 0 no, 1 running, 2 done
ABSL_CONST_INIT char g_prefix[4096] = {};          // "" : no file at exit

// The sampler of one thread: bytes left until the next sample.
struct Sampler {
  int64_t bytes_until;
  uint64_t rng;
  bool seeded;
  bool busy;  // sampling now: an allocation made meanwhile is not sampled
};
ABSL_CONST_INIT __thread Sampler tls_sampler HAKMEM_TLS = {};

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A uniform random number in [0, 1).
double Uniform(Sampler* s) {
  s->rng = Mix(s->rng);
  return static_cast<double>(s->rng >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

int64_t Bytes(double bytes) {
  if (bytes < 1) return 1;
  if (bytes > 1e15) return static_cast<int64_t>(1e15);
  return static_cast<int64_t>(bytes);
}

// Bytes between two sample points: uniform in [rate/2, 3 rate/2). Any interval
// of mean `rate` makes the estimate unbiased (Dump); this one, nearly regular,
// makes it steady: the points in a run of B bytes vary by sqrt(B/rate/12), not
// the sqrt(B/rate) of exponential intervals, and the jitter of +-rate/2 keeps a
// periodic allocation pattern from locking onto them.
int64_t NextInterval(Sampler* s) { return Bytes((0.5 + Uniform(s)) * static_cast<double>(g_rate)); }

// The bytes to a thread's first point: the forward recurrence time of those
// intervals (density P(interval > x) / rate: uniform below rate/2, falling
// linearly to 0 at 3 rate/2), so that its first bytes are sampled as likely as
// any later ones. The falling part is 3 rate/2 - rate * V with V of density 2v
// on [0, 1): the larger of two uniforms (what sqrt of one gives, without libm,
// which the shared object would otherwise load into every program).
int64_t FirstInterval(Sampler* s) {
  const double rate = static_cast<double>(g_rate);
  if (Uniform(s) < 0.5) return Bytes(Uniform(s) * rate / 2);
  const double a = Uniform(s);
  const double b = Uniform(s);
  return Bytes(1.5 * rate - rate * (a > b ? a : b));
}

void Seed(Sampler* s) {
  const uint64_t thread = platform::ThreadId();
  const uint64_t base =
      g_seed != 0 ? g_seed : platform::NowNanos() ^ reinterpret_cast<uintptr_t>(s);
  s->rng = Mix(base ^ Mix(thread));
  s->seeded = true;
  s->bytes_until = FirstInterval(s);
}

uint64_t HashAddress(uintptr_t addr) { return Mix(addr >> 4); }

Shard& ShardOf(uint64_t h) { return g_shards[h & (kShards - 1)]; }
size_t HomeSlot(uint64_t h) { return (h >> kShardBits) & (kSlots - 1); }

void InsertLocked(Shard& shard, const Sample& sample, uint64_t h) {
  size_t i = HomeSlot(h);
  while (shard.slots[i].addr != 0) i = (i + 1) & (kSlots - 1);
  shard.slots[i] = sample;
  shard.count.store(shard.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// Removes the entry of `addr`; false if there is none. Backward-shift deletion
// keeps every probe chain unbroken without tombstones.
bool EraseLocked(Shard& shard, uintptr_t addr, uint64_t h, Sample* out) {
  size_t i = HomeSlot(h);
  while (shard.slots[i].addr != addr) {
    if (shard.slots[i].addr == 0) return false;
    i = (i + 1) & (kSlots - 1);
  }
  *out = shard.slots[i];
  size_t j = i;
  for (;;) {
    j = (j + 1) & (kSlots - 1);
    if (shard.slots[j].addr == 0) break;
    const size_t k = HomeSlot(HashAddress(shard.slots[j].addr));
    // The entry at j may move to i only if its home is not in (i, j].
    const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    shard.slots[i] = shard.slots[j];
    i = j;
  }
  shard.slots[i].addr = 0;
  shard.count.store(shard.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  return true;
}

uint64_t HashStack(const uintptr_t* pcs, int depth) {
  uint64_t h = static_cast<uint64_t>(depth);
  for (int i = 0; i < depth; ++i) h = Mix(h ^ pcs[i]);
  return h;
}

Bucket* FindOrAddBucketLocked(const uintptr_t* pcs, int depth) {
  const uint64_t h = HashStack(pcs, depth);
  Bucket** slot = &g_bucket_table[h & (kBucketSlots - 1)];
  for (Bucket* b = *slot; b != nullptr; b = b->chain) {
    if (b->hash == h && b->depth == depth && memcmp(b->pcs, pcs, depth * sizeof(uintptr_t)) == 0) {
      return b;
    }
  }
  if (g_arena == nullptr || g_arena_end - g_arena < static_cast<ptrdiff_t>(sizeof(Bucket))) {
    constexpr size_t kChunk = size_t{1} << 20;
    char* chunk = static_cast<char*>(platform::Reserve(kChunk, platform::kPageSize));
    if (chunk == nullptr) return nullptr;
    g_arena = chunk;
    g_arena_end = chunk + kChunk;
  }
  Bucket* b = reinterpret_cast<Bucket*>(g_arena);  // mapped memory reads as zero
  g_arena += sizeof(Bucket);
  b->hash = h;
  b->depth = depth;
  memcpy(b->pcs, pcs, depth * sizeof(uintptr_t));
  b->chain = *slot;
  *slot = b;
  b->next_all = g_all_buckets.load(std::memory_order_relaxed);
  g_all_buckets.store(b, std::memory_order_release);
  g_stacks.fetch_add(1, std::memory_order_relaxed);
  return b;
}

// The highest address the walk may read from a frame at `fp`: a thread's stack
// lies just below its thread control block (glibc puts it at the top of the
// stack mapping); the main thread's ends at __libc_stack_end. Anything else (a
// stack the program switched to) gets no bound, and the walk stops there.
uintptr_t StackTop(uintptr_t fp) {
  uintptr_t tp;
  asm("mov %%fs:0, %0" : "=r"(tp));
  if (tp > fp && tp - fp < (uintptr_t{1} << 30)) return tp;
  const uintptr_t main_top = reinterpret_cast<uintptr_t>(__libc_stack_end);
  if (main_top > fp && main_top - fp < (uintptr_t{1} << 30)) return main_top;
  return fp;
}

void StartProfiling() {
  constexpr size_t kTableBytes = kShards * kSlots * sizeof(Sample);
  char* table = static_cast<char*>(platform::Reserve(kTableBytes, platform::kPageSize));
  Bucket** buckets =
      static_cast<Bucket**>(platform::Reserve(kBucketSlots * sizeof(Bucket*), platform::kPageSize));
  if (table == nullptr || buckets == nullptr) {
    platform::DiagLine().Str("hakmem: heap profiler off: cannot map its tables").Write();
    return;
  }
  for (int i = 0; i < kShards; ++i) {
    g_shards[i].slots = reinterpret_cast<Sample*>(table + i * kSlots * sizeof(Sample));
  }
  g_bucket_table = buckets;
  g_enabled.store(true, std::memory_order_release);
}

// gperftools' text format, assembled in a stack buffer and written in chunks.
class Writer {
 public:
  explicit Writer(int fd) : fd_(fd) {}
  Writer& Str(const char* text) {
    while (*text != '\0') Put(*text++);
    return *this;
  }
  Writer& Dec(uint64_t value, int width = 0) {
    char digits[20];
    const int n = platform::FormatUnsigned(value, 10, 1, digits);
    for (int pad = width - n; pad > 0; --pad) Put(' ');
    for (int i = 0; i < n; ++i) Put(digits[i]);
    return *this;
  }
  Writer& Hex(uintptr_t value) {  // at least 8 digits, as gperftools writes them
    char digits[20];
    const int n = platform::FormatUnsigned(value, 16, 8, digits);
    Str("0x");
    for (int i = 0; i < n; ++i) Put(digits[i]);
    return *this;
  }
  // "<objs>: <bytes> [<objs>: <bytes>] @"
  Writer& Counts(uint64_t live, uint64_t live_bytes, uint64_t allocs, uint64_t bytes) {
    return Dec(live, 6)
        .Str(": ")
        .Dec(live_bytes, 8)
        .Str(" [")
        .Dec(allocs, 6)
        .Str(": ")
        .Dec(bytes, 8)
        .Str("] @");
  }
  void Raw(const char* data, size_t size) {
    Flush();
    if (ok_ && !platform::WriteAll(fd_, data, size)) ok_ = false;
  }
  bool Flush() {
    if (ok_ && length_ > 0 && !platform::WriteAll(fd_, buffer_, length_)) ok_ = false;
    length_ = 0;
    return ok_;
  }

 private:
  void Put(char c) {
    if (length_ == sizeof(buffer_)) Flush();
    buffer_[length_++] = c;
  }
  int fd_;
  char buffer_[4096];
  size_t length_ = 0;
  bool ok_ = true;
};

struct BucketCounts {
  uint64_t allocs, alloc_bytes, frees, free_bytes;
};

// Frees first: a free counted after its allocation was read would make the live
// count negative.
BucketCounts ReadCounts(const std::atomic<uint64_t>& allocs,
                        const std::atomic<uint64_t>& alloc_bytes,
                        const std::atomic<uint64_t>& frees,
                        const std::atomic<uint64_t>& free_bytes) {
  BucketCounts c;
  c.frees = frees.load(std::memory_order_relaxed);
  c.free_bytes = free_bytes.load(std::memory_order_relaxed);
  c.allocs = allocs.load(std::memory_order_relaxed);
  c.alloc_bytes = alloc_bytes.load(std::memory_order_relaxed);
  if (c.frees > c.allocs) c.frees = c.allocs;
  if (c.free_bytes > c.alloc_bytes) c.free_bytes = c.alloc_bytes;
  return c;
}

// What was sampled.
BucketCounts Read(const Bucket* b) {
  return ReadCounts(b->allocs, b->alloc_bytes, b->frees, b->free_bytes);
}

// What it stands for: blocks (whole ones) and bytes of the program.
BucketCounts ReadEstimate(const Bucket* b) {
  BucketCounts c = ReadCounts(b->alloc_objects_estimate, b->alloc_bytes_estimate,
                              b->free_objects_estimate, b->free_bytes_estimate);
  const uint64_t live_objects = (c.allocs - c.frees + kObjectUnit / 2) / kObjectUnit;
  c.allocs = (c.allocs + kObjectUnit / 2) / kObjectUnit;
  c.frees = c.allocs >= live_objects ? c.allocs - live_objects : 0;
  return c;
}

__attribute__((destructor)) void DumpAtExit() {
  if (!Enabled() || g_prefix[0] == '\0') return;
  platform::DiagLine name;
  name.Str(g_prefix).Str(".").Dec(static_cast<uint64_t>(getpid())).Str(".heap");
  if (Dump(name.text()) != 0) {
    platform::DiagLine()
        .Str("hakmem: cannot write the heap profile ")
        .Str(name.text())
        .Str(" (errno ")
        .Dec(static_cast<uint64_t>(errno))
        .Str(")")
        .Write();
  }
}

}  // namespace

void Init() {
  int expected = 0;
  if (!g_init_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return;
  const config::Options& options = config::GetOptions();
  if (options.heap_profile != nullptr) {
    const size_t n = strlen(options.heap_profile);
    if (n + 32 >= sizeof(g_prefix)) {
      platform::DiagLine()
          .Str("hakmem: heap profiler off: HAKMEM_HEAP_PROFILE is too long")
          .Write();
    } else {
      memcpy(g_prefix, options.heap_profile, n + 1);
      g_rate = options.heap_profile_rate > 0 ? options.heap_profile_rate : 1;
      g_seed = options.heap_profile_seed;
      StartProfiling();
    }
  }
  g_init_state.store(2, std::memory_order_release);
}

void EnableForTesting(const char* prefix, uint64_t rate, uint64_t seed) {
  g_init_state.store(2, std::memory_order_relaxed);
  g_prefix[0] = '\0';
  if (prefix != nullptr) strncpy(g_prefix, prefix, sizeof(g_prefix) - 1);
  g_rate = rate;
  g_seed = seed;
  tls_sampler.seeded = false;
  if (!Enabled()) StartProfiling();
}

int CaptureStack(uintptr_t* pcs, int max) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(__start_hakmem_alloc_entry);
  const uintptr_t stop = reinterpret_cast<uintptr_t>(__stop_hakmem_alloc_entry);
  uintptr_t fp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  const uintptr_t top = StackTop(fp);
  int depth = 0;
  bool in_hakmem = true;
  // Each frame: [fp] = the caller's fp, [fp + 8] = the return address. A frame
  // is read only if it lies within the stack, above the last one.
  for (int steps = 0; steps < 4 * kMaxDepth && depth < max; ++steps) {
    if ((fp & 7) != 0 || fp + 16 > top) break;
    const uintptr_t next = reinterpret_cast<const uintptr_t*>(fp)[0];
    const uintptr_t ret = reinterpret_cast<const uintptr_t*>(fp)[1];
    if (ret < 4096) break;
    if (in_hakmem && (ret < start || ret >= stop)) in_hakmem = false;
    // pprof takes each address but the first as a return address (it looks up
    // address - 1); the first it takes as is, so it gets the call's own byte.
    if (!in_hakmem) {
      pcs[depth] = depth == 0 ? ret - 1 : ret;
      ++depth;
    }
    if (next <= fp) break;
    fp = next;
  }
  return depth;
}

void OnAlloc(void* ptr, size_t size, size_t allocated) {
  if (allocated < size) allocated = size;
  if (allocated == 0) allocated = 1;
  Sampler* s = &tls_sampler;
  if (ABSL_PREDICT_FALSE(!s->seeded)) Seed(s);
  // The stream counted down is of blocks, as UnsampledBlocks counts a refill's.
  s->bytes_until -= static_cast<int64_t>(allocated);
  if (ABSL_PREDICT_TRUE(s->bytes_until > 0)) return;
  // The sample points inside this block's bytes: a block of size s holds s/rate
  // of them on average, whatever the sizes around it.
  uint64_t points = 0;
  do {
    ++points;
    s->bytes_until += NextInterval(s);
  } while (s->bytes_until <= 0);
  if (s->busy) {
    g_recursive.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  s->busy = true;
  uintptr_t pcs[kMaxDepth];
  const int depth = CaptureStack(pcs, kMaxDepth);
  Bucket* bucket;
  {
    platform::SpinLockHolder hold(&g_bucket_lock);
    bucket = FindOrAddBucketLocked(pcs, depth);
  }
  const uintptr_t addr = reinterpret_cast<uintptr_t>(ptr);
  const uint64_t h = HashAddress(addr);
  Shard& shard = ShardOf(h);
  // A block of `allocated` bytes holds allocated / rate points on average: each
  // stands for rate / allocated blocks, and as many times `size` requested bytes.
  const double blocks = static_cast<double>(points * g_rate) / static_cast<double>(allocated);
  const uint64_t bytes_estimate = static_cast<uint64_t>(blocks * static_cast<double>(size) + 0.5);
  const uint64_t objects_estimate = static_cast<uint64_t>(blocks * kObjectUnit + 0.5);
  bool recorded = false;
  if (bucket != nullptr) {
    platform::SpinLockHolder hold(&shard.lock);
    if (shard.count.load(std::memory_order_relaxed) < kMaxLive) {
      InsertLocked(shard, Sample{addr, size, bucket, objects_estimate, bytes_estimate}, h);
      recorded = true;
    }
  }
  if (recorded) {
    bucket->allocs.fetch_add(1, std::memory_order_relaxed);
    bucket->alloc_bytes.fetch_add(size, std::memory_order_relaxed);
    bucket->alloc_objects_estimate.fetch_add(objects_estimate, std::memory_order_relaxed);
    bucket->alloc_bytes_estimate.fetch_add(bytes_estimate, std::memory_order_relaxed);
    g_samples.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_dropped.fetch_add(1, std::memory_order_relaxed);
  }
  s->busy = false;
}

int UnsampledBlocks(size_t size, int max) {
  Sampler* s = &tls_sampler;
  if (ABSL_PREDICT_FALSE(!s->seeded)) Seed(s);
  if (max <= 0 || size == 0 || s->bytes_until <= static_cast<int64_t>(size)) return 0;
  // Strictly before the sample: the countdown stays >= 1.
  int64_t n = (s->bytes_until - 1) / static_cast<int64_t>(size);
  if (n > max) n = max;
  s->bytes_until -= n * static_cast<int64_t>(size);
  return static_cast<int>(n);
}

void OnFree(const void* ptr) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(ptr);
  const uint64_t h = HashAddress(addr);
  Shard& shard = ShardOf(h);
  if (shard.count.load(std::memory_order_relaxed) == 0) return;
  Sample sample;
  {
    platform::SpinLockHolder hold(&shard.lock);
    if (!EraseLocked(shard, addr, h, &sample)) return;
  }
  sample.bucket->frees.fetch_add(1, std::memory_order_relaxed);
  sample.bucket->free_bytes.fetch_add(sample.size, std::memory_order_relaxed);
  sample.bucket->free_objects_estimate.fetch_add(sample.objects_estimate,
                                                 std::memory_order_relaxed);
  sample.bucket->free_bytes_estimate.fetch_add(sample.bytes_estimate, std::memory_order_relaxed);
}

Totals GetTotals() {
  Totals t{};
  for (const Bucket* b = g_all_buckets.load(std::memory_order_acquire); b != nullptr;
       b = b->next_all) {
    const BucketCounts c = Read(b);
    t.live_samples += c.allocs - c.frees;
    t.live_bytes += c.alloc_bytes - c.free_bytes;
    const BucketCounts e = ReadEstimate(b);
    t.live_bytes_estimate += e.alloc_bytes - e.free_bytes;
  }
  t.samples = g_samples.load(std::memory_order_relaxed);
  t.stacks = g_stacks.load(std::memory_order_relaxed);
  t.dropped = g_dropped.load(std::memory_order_relaxed);
  t.recursive = g_recursive.load(std::memory_order_relaxed);
  return t;
}

int Dump(const char* path) {
  if (!Enabled()) {
    errno = EINVAL;
    return -1;
  }
  const int fd = platform::OpenFile(path, /*write=*/true);
  if (fd < 0) return -1;
  Writer w(fd);
  const Bucket* all = g_all_buckets.load(std::memory_order_acquire);
  BucketCounts total{};
  for (const Bucket* b = all; b != nullptr; b = b->next_all) {
    const BucketCounts c = ReadEstimate(b);
    total.allocs += c.allocs;
    total.alloc_bytes += c.alloc_bytes;
    total.frees += c.frees;
    total.free_bytes += c.free_bytes;
  }
  // The estimates, each sample already weighted by the inverse of its
  // probability: "heapprofile" (gperftools' own heap profiler's type) tells pprof
  // to take them as they are. (heap_v2/<rate> would have pprof scale each stack
  // by 1 - exp(-mean size / rate), the probability of a Poisson sampler, which is
  // not this one's and is biased for a stack of mixed sizes.)
  w.Str("heap profile: ")
      .Counts(total.allocs - total.frees, total.alloc_bytes - total.free_bytes, total.allocs,
              total.alloc_bytes)
      .Str(" heapprofile\n");
  for (const Bucket* b = all; b != nullptr; b = b->next_all) {
    const BucketCounts c = ReadEstimate(b);
    if (c.allocs == 0 || b->depth == 0) continue;
    w.Counts(c.allocs - c.frees, c.alloc_bytes - c.free_bytes, c.allocs, c.alloc_bytes);
    for (int d = 0; d < b->depth; ++d) w.Str(" ").Hex(b->pcs[d]);
    w.Str("\n");
  }
  w.Str("\nMAPPED_LIBRARIES:\n");
  // The maps as they are now, copied through a stack buffer.
  const int maps = platform::OpenFile("/proc/self/maps", /*write=*/false);
  if (maps >= 0) {
    char chunk[4096];
    long n;
    while ((n = platform::ReadSome(maps, chunk, sizeof(chunk))) > 0)
      w.Raw(chunk, static_cast<size_t>(n));
    platform::CloseFile(maps);
  }
  const bool ok = w.Flush();
  const int saved = errno;
  platform::CloseFile(fd);
  if (!ok) {
    errno = saved;
    return -1;
  }
  return 0;
}

// Fork handlers hold the lock across fork(), from Prepare to the After
// handlers: beyond what -Wthread-safety follows.
void PrepareFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_bucket_lock.Lock();
  for (Shard& shard : g_shards) shard.lock.Lock();
}

void ParentAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (Shard& shard : g_shards) shard.lock.Unlock();
  g_bucket_lock.Unlock();
}

void ChildAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (Shard& shard : g_shards) shard.lock.ResetAfterFork();
  g_bucket_lock.ResetAfterFork();
}

}  // namespace hakmem::profiler
