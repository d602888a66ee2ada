// floor_malloc: a measuring stick, not an allocator to use. The least an
// allocator can do on the benchmarks' single-thread workloads: size classes, one
// thread-local LIFO list per class, the class in an 8-byte header before each
// block, blocks bumped from 64 MiB mappings, and nothing else: no validation, no
// cache limits, no statistics, no return of memory, no cross-thread frees (a
// block goes to the freeing thread's list). Its malloc and free are about ten
// instructions each. tools/ceiling.sh runs it beside the peers: how much faster
// than the best peer any allocator could make a workload, the rest being the
// workload's own work. Built with -fno-builtin, so gcc does not turn calloc's
// malloc + memset back into a call to calloc.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

constexpr int NCLS = 48;
static constexpr uint32_t kSize[NCLS] = {
    16,    32,    48,    64,    80,    96,    112,   128,   160,   192,   224,    256,
    320,   384,   448,   512,   640,   768,   896,   1024,  1280,  1536,  1792,   2048,
    2560,  3072,  3584,  4096,  5120,  6144,  7168,  8192,  10240, 12288, 14336,  16384,
    20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072};
static __thread void* tls_head[NCLS] __attribute__((tls_model("initial-exec")));
static __thread char* tls_bump __attribute__((tls_model("initial-exec")));
static __thread char* tls_end __attribute__((tls_model("initial-exec")));
// size -> class for sizes up to 1024, built at compile time (the table is read
// before any constructor could run: the dynamic loader allocates first).
struct Index {
  uint8_t cls[1025];
};
static constexpr Index MakeIndex() {
  Index index{};
  int c = 0;
  for (size_t s = 0; s <= 1024; ++s) {
    while (kSize[c] < s) ++c;
    index.cls[s] = static_cast<uint8_t>(c);
  }
  return index;
}
static constexpr Index kIndexTable = MakeIndex();

static int ClassOf(size_t size) {
  if (size <= 1024) return kIndexTable.cls[size];
  int c = 20;
  while (kSize[c] < size) ++c;
  return c;
}

__attribute__((noinline)) static void* Slow(int c) {
  size_t need = kSize[c] + 16;
  if (tls_bump == NULL || (size_t)(tls_end - tls_bump) < need) {
    char* p =
        (char*)mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    tls_bump = p;
    tls_end = p + (64 << 20);
  }
  char* b = tls_bump + 16;
  tls_bump += need;
  ((uint64_t*)b)[-1] = (uint64_t)c;
  return b;
}
__attribute__((noinline)) static void* Big(size_t size) {
  {
    size_t len = size + 4096;
    char* p = (char*)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      errno = ENOMEM;
      return NULL;
    }
    ((uint64_t*)(p + 4096))[-1] = 1000 + 0;
    ((uint64_t*)p)[0] = len;
    return p + 4096;
  }
}
__attribute__((noinline)) static void* Mid(size_t size) {
  if (size > 131072) return Big(size);
  int c = ClassOf(size);
  void* b = tls_head[c];
  if (b != NULL) {
    tls_head[c] = *(void**)b;
    return b;
  }
  return Slow(c);
}
extern "C" void* malloc(size_t size) {
  if (__builtin_expect(size > 1024, 0)) return Mid(size);
  int c = kIndexTable.cls[size];
  void* b = tls_head[c];
  if (__builtin_expect(b != NULL, 1)) {
    tls_head[c] = *(void**)b;
    return b;
  }
  return Slow(c);
}
extern "C" void free(void* p) {
  if (p == NULL) return;
  uint64_t c = ((uint64_t*)p)[-1];
  if (__builtin_expect(c >= 1000, 0)) {
    char* m = (char*)p - 4096;
    munmap(m, ((uint64_t*)m)[0]);
    return;
  }
  *(void**)p = tls_head[c];
  tls_head[c] = p;
}
extern "C" void* calloc(size_t n, size_t s) {
  size_t t = n * s;
  void* p = malloc(t);
  if (p) memset(p, 0, t);
  return p;
}
extern "C" size_t malloc_usable_size(void* p) {
  uint64_t c = ((uint64_t*)p)[-1];
  return c >= 1000 ? 0 : kSize[c];
}
extern "C" void* realloc(void* p, size_t s) {
  if (!p) return malloc(s);
  size_t old = malloc_usable_size(p);
  if (old >= s && old) return p;
  void* q = malloc(s);
  if (!q) return NULL;
  memcpy(q, p, old && old < s ? old : s);
  free(p);
  return q;
}
extern "C" int posix_memalign(void** out, size_t a, size_t s) {
  (void)a;
  *out = malloc(s < a ? a : s);
  return *out ? 0 : ENOMEM;
}
extern "C" void* aligned_alloc(size_t a, size_t s) {
  (void)a;
  return malloc(s);
}
