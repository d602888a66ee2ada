// The workload of fast_path_test.sh: `fast_path_driver SIZE N` warms the thread
// cache of SIZE's class, then mallocs and frees one block of SIZE bytes N times
// (a cache hit and a cache push each time); `fast_path_driver SIZE N calloc` does
// the same with calloc(1, SIZE). `fast_path_driver compiler` prints
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
  const bool zeroed = argc == 4 && strcmp(argv[3], "calloc") == 0;
  if (argc != 3 && !zeroed) {
    fprintf(stderr, "usage: %s SIZE N [calloc] | compiler\n", argv[0]);
    return 2;
  }
  const size_t size = strtoul(argv[1], nullptr, 10);
  const long n = strtol(argv[2], nullptr, 10);
  // Warm-up: the first malloc attaches the thread's heap and refills the class.
  for (int i = 0; i < 4; ++i) {
    g_sink = zeroed ? calloc(1, size) : malloc(size);
    free(g_sink);
  }
  for (long i = 0; i < n; ++i) {
    g_sink = zeroed ? calloc(1, size) : malloc(size);
    free(g_sink);
  }
  return 0;
}
