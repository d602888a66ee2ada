// floor_malloc: a measuring stick, not an allocator to use. An allocator that
// does nothing but pop and push thread-local lists: size classes, one LIFO list
// per class and thread, the class in an 8-byte header before each block, blocks
// bumped from 64 MiB mappings, big blocks in mappings of their own. No
// validation, no cache limits, no statistics, no return of memory, no
// cross-thread frees (a block goes to the freeing thread's list): its malloc and
// free are about ten instructions each. tools/ceiling.sh runs it beside the
// peers on single-thread workloads of small blocks (tiny_hot, random_mixed),
// where its ratio to the best peer bounds what an allocator gains from list
// operations alone; the rest is the workload's own work. (Not a bound for
// blocks of a KiB and more: it puts their starts where the L1 sets collide.)
// Built with -fno-builtin, so gcc does not turn calloc's malloc + memset back
// into a call to calloc.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

namespace {

constexpr int kNumClasses = 48;
constexpr uint32_t kSize[kNumClasses] = {
    16,    32,    48,    64,    80,    96,    112,   128,   160,   192,   224,    256,
    320,   384,   448,   512,   640,   768,   896,   1024,  1280,  1536,  1792,   2048,
    2560,  3072,  3584,  4096,  5120,  6144,  7168,  8192,  10240, 12288, 14336,  16384,
    20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072};
constexpr size_t kMaxSmall = 131072;
constexpr uint64_t kBig = 1000;  // the header of a block with a mapping of its own
constexpr size_t kPage = 4096;
constexpr size_t kChunk = size_t{64} << 20;

// size -> class for sizes up to 1024, built at compile time (the table is read
// before any constructor could run: the dynamic loader allocates first).
struct Index {
  uint8_t cls[1025];
};
constexpr Index MakeIndex() {
  Index index{};
  int c = 0;
  for (size_t s = 0; s <= 1024; ++s) {
    while (kSize[c] < s) ++c;
    index.cls[s] = static_cast<uint8_t>(c);
  }
  return index;
}
constexpr Index kIndex = MakeIndex();

#define FLOOR_TLS __thread __attribute__((tls_model("initial-exec")))
FLOOR_TLS void* tls_head[kNumClasses];
FLOOR_TLS char* tls_bump;
FLOOR_TLS char* tls_end;

uint64_t& HeaderOf(void* p) { return static_cast<uint64_t*>(p)[-1]; }

__attribute__((noinline)) void* Carve(int c) {
  const size_t need = kSize[c] + 16;
  if (tls_bump == nullptr || static_cast<size_t>(tls_end - tls_bump) < need) {
    void* p = mmap(nullptr, kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      errno = ENOMEM;
      return nullptr;
    }
    tls_bump = static_cast<char*>(p);
    tls_end = tls_bump + kChunk;
  }
  char* block = tls_bump + 16;
  tls_bump += need;
  HeaderOf(block) = static_cast<uint64_t>(c);
  return block;
}

// A mapping of its own, the block page-aligned after a header page that holds
// the mapping's length.
__attribute__((noinline)) void* Big(size_t size) {
  if (size > (size_t{1} << 46)) {
    errno = ENOMEM;
    return nullptr;
  }
  const size_t len = kPage + ((size + kPage - 1) & ~(kPage - 1));
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    errno = ENOMEM;
    return nullptr;
  }
  static_cast<size_t*>(m)[0] = len;
  char* block = static_cast<char*>(m) + kPage;
  HeaderOf(block) = kBig;
  return block;
}

__attribute__((noinline)) void* Mid(size_t size) {
  if (size > kMaxSmall) return Big(size);
  int c = 20;
  while (kSize[c] < size) ++c;
  void* b = tls_head[c];
  if (b != nullptr) {
    tls_head[c] = *static_cast<void**>(b);
    return b;
  }
  return Carve(c);
}

size_t UsableSize(void* p) {
  const uint64_t c = HeaderOf(p);
  if (c == kBig)
    return static_cast<size_t*>(static_cast<void*>(static_cast<char*>(p) - kPage))[0] - kPage;
  return c < kNumClasses ? kSize[c] : 0;
}

}  // namespace

extern "C" void* malloc(size_t size) {
  if (__builtin_expect(size > 1024, 0)) return Mid(size);
  const int c = kIndex.cls[size];
  void* b = tls_head[c];
  if (__builtin_expect(b != nullptr, 1)) {
    tls_head[c] = *static_cast<void**>(b);
    return b;
  }
  return Carve(c);
}

extern "C" void free(void* p) {
  if (p == nullptr) return;
  const uint64_t c = HeaderOf(p);
  if (__builtin_expect(c >= kNumClasses, 0)) {
    if (c == kBig) {
      char* m = static_cast<char*>(p) - kPage;
      munmap(m, static_cast<size_t*>(static_cast<void*>(m))[0]);
    }
    return;  // not one of ours: leaked
  }
  *static_cast<void**>(p) = tls_head[c];
  tls_head[c] = p;
}

extern "C" size_t malloc_usable_size(void* p) { return p != nullptr ? UsableSize(p) : 0; }

extern "C" void* calloc(size_t n, size_t s) {
  size_t total;
  if (__builtin_mul_overflow(n, s, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = malloc(total);
  if (p != nullptr) memset(p, 0, total);
  return p;
}

extern "C" void* realloc(void* p, size_t s) {
  if (p == nullptr) return malloc(s);
  const size_t old = UsableSize(p);
  if (s <= old) return p;
  void* q = malloc(s);
  if (q == nullptr) return nullptr;
  memcpy(q, p, old);
  free(p);
  return q;
}

extern "C" void* reallocarray(void* p, size_t n, size_t s) {
  size_t total;
  if (__builtin_mul_overflow(n, s, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, total);
}

// Blocks are 16-byte aligned; a larger alignment (up to a page) takes a mapping
// of its own.
extern "C" int posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  if (alignment > kPage) return ENOMEM;
  void* p = alignment <= 16 ? malloc(size) : Big(size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
extern "C" void* aligned_alloc(size_t alignment, size_t size) {
  void* p = nullptr;
  const int rc = posix_memalign(&p, alignment < sizeof(void*) ? sizeof(void*) : alignment, size);
  if (rc != 0) errno = rc;
  return p;
}
extern "C" void* memalign(size_t alignment, size_t size) { return aligned_alloc(alignment, size); }
extern "C" void* valloc(size_t size) { return aligned_alloc(kPage, size); }
extern "C" void* pvalloc(size_t size) {
  return aligned_alloc(kPage, (size + kPage - 1) & ~(kPage - 1));
}
