// The workload of fast_path_test.sh: `fast_path_driver SIZE N` warms the thread
// cache of SIZE's class, then mallocs and frees one block of SIZE bytes N times
// (a cache hit and a cache push each time); `fast_path_driver SIZE N calloc` does
// the same with calloc(1, SIZE), `fast_path_driver SIZE N realloc` with
// realloc(nullptr, SIZE). `fast_path_driver compiler` prints
// the compiler the fast paths were built with (the golden counts are per
// compiler).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace {

// Keeps the compiler from folding a malloc/free pair away.
void* volatile g_sink;

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "compiler") == 0) {
#if defined(__clang__)
    puts("clang");
#else
    puts("gcc");
#endif
    return 0;
  }
  const char* mode = argc == 4 ? argv[3] : "malloc";
  const bool zeroed = strcmp(mode, "calloc") == 0;
  const bool moved = strcmp(mode, "realloc") == 0;
  if (argc != 3 && !zeroed && !moved) {
    fprintf(stderr, "usage: %s SIZE N [calloc|realloc] | compiler\n", argv[0]);
    return 2;
  }
  const size_t size = strtoul(argv[1], nullptr, 10);
  const long n = strtol(argv[2], nullptr, 10);
  // Warm-up (i < 0): the first malloc attaches the thread's heap and refills the
  // class.
  for (long i = -4; i < n; ++i) {
    if (zeroed) {
      g_sink = calloc(1, size);
    } else if (moved) {
      g_sink = realloc(nullptr, size);
    } else {
      g_sink = malloc(size);
    }
    free(g_sink);
  }
  return 0;
}
