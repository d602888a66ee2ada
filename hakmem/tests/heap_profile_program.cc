// The heap profiler's test program (heap_profile_test.sh): one function keeps
// 96 MiB, another 32 MiB, a third allocates 64 MiB and frees it; blocks of 4 KiB
// .. 64 KiB, so several pool classes are sampled. It then checks what mallinfo2
// and malloc_info say, and, when given a path and linked with hakmem's API
// (HAKMEM_PROFILE_PROGRAM_HAS_API), writes a profile there on demand. The blocks
// are still allocated at exit, when HAKMEM_HEAP_PROFILE's profile is written.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAKMEM_PROFILE_PROGRAM_HAS_API
#include "hakmem/hakmem.h"
#endif

namespace {

constexpr size_t kMiB = size_t{1} << 20;

void** g_kept = nullptr;
size_t g_kept_count = 0;

uint64_t g_rng = 12345;
size_t NextSize() {  // 4 KiB .. 64 KiB, multiples of 16
  g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
  return 4096 + ((g_rng >> 33) % (60 * 1024 / 16 + 1)) * 16;
}

// Allocates `bytes` in blocks of mixed sizes and keeps them. Inlined, so the
// malloc calls are made by the noinline functions below, which pprof must name.
__attribute__((always_inline)) inline size_t Keep(size_t bytes) {
  size_t total = 0;
  while (total < bytes) {
    size_t size = NextSize();
    if (size > bytes - total) size = bytes - total < 16 ? 16 : bytes - total;
    void* p = malloc(size);
    if (p == nullptr) abort();
    memset(p, 0x5a, size);
    g_kept[g_kept_count++] = p;
    total += size;
  }
  return total;
}

__attribute__((noinline)) size_t KeepNinetySixMiB() { return Keep(96 * kMiB); }
__attribute__((noinline)) size_t KeepThirtyTwoMiB() { return Keep(32 * kMiB); }

// Allocated and freed: in --alloc_space, not in --inuse_space.
__attribute__((noinline)) size_t ChurnSixtyFourMiB() {
  size_t total = 0;
  while (total < 64 * kMiB) {
    const size_t size = NextSize();
    void* p = malloc(size);
    if (p == nullptr) abort();
    memset(p, 1, size);
    free(p);
    total += size;
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  // Room for every kept block (the smallest are 4 KiB), allocated by hakmem too.
  g_kept = static_cast<void**>(calloc(128 * kMiB / 4096 + 2, sizeof(void*)));
  const size_t a = KeepNinetySixMiB();
  const size_t c = ChurnSixtyFourMiB();
  const size_t b = KeepThirtyTwoMiB();
  printf("kept %zu + %zu bytes in %zu blocks, churned %zu\n", a, b, g_kept_count, c);

  const struct mallinfo2 mi = mallinfo2();
  printf("mallinfo2: uordblks=%zu arena=%zu hblkhd=%zu\n", mi.uordblks, mi.arena, mi.hblkhd);
  if (mi.uordblks < 96 * kMiB) {
    fprintf(stderr, "FAIL: mallinfo2 says %zu bytes in use, fewer than the 96 MiB kept\n",
            mi.uordblks);
    return 1;
  }
  char* xml = nullptr;
  size_t xml_length = 0;
  FILE* stream = open_memstream(&xml, &xml_length);
  if (stream == nullptr || malloc_info(0, stream) != 0) return 1;
  fclose(stream);
  if (strstr(xml, "allocator=\"hakmem\"") == nullptr) {
    fprintf(stderr, "FAIL: malloc_info does not name hakmem:\n%s\n", xml);
    return 1;
  }
  free(xml);
#ifdef HAKMEM_PROFILE_PROGRAM_HAS_API
  if (argc > 1 && hak_heap_profile_dump(argv[1]) != 0) {
    perror("hak_heap_profile_dump");
    return 1;
  }
#endif
  (void)argc;
  (void)argv;
  return 0;  // the kept blocks stay allocated: the at-exit profile shows them
}
