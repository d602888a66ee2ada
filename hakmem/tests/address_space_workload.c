// A mix of every lane (60% tiny, 25% pool, 12% large, 3% huge), every block kept
// live, until the first NULL; prints the bytes reached. Run under `ulimit -v` by
// address_space_limit_test.sh, once with the C library's malloc and once with
// libhakmem.so preloaded. The sequence of sizes is fixed (xorshift, fixed seed).
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 88172645463325252ull;

// Every block is published here, so that no compiler elides the allocations
// (clang removes a malloc whose block is only written; the loop would never end).
void* volatile g_last_block;

static uint64_t Next(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

int main(void) {
  size_t reached = 0;
  for (;;) {
    const uint64_t kind = Next() % 100;
    const uint64_t r = Next();
    size_t size;
    if (kind < 60) {
      size = 16 + r % 1024;
    } else if (kind < 85) {
      size = 1024 + r % (128 << 10);
    } else if (kind < 97) {
      size = (128 << 10) + r % (1 << 20);
    } else {
      size = (1 << 20) + r % (4 << 20);
    }
    errno = 0;
    void* p = malloc(size);
    if (p == NULL) {
      if (errno != ENOMEM) {
        fprintf(stderr, "malloc(%zu) failed with errno %d, not ENOMEM\n", size, errno);
        return 1;
      }
      break;
    }
    memset(p, 1, size < 4096 ? size : 4096);
    g_last_block = p;
    reached += size;
  }
  printf("%zu\n", reached);
  return 0;
}
