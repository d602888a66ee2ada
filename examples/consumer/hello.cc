// Allocates a few things the usual ways and checks that hakmem served them:
// hak_owns() is true for each of them (and false for a block of the C library's
// own malloc). Prints the compiler that built it, the hakmem it linked
// (hak_build_info) and one result line; exits 0 when
// every allocation was hakmem's. C++11 on purpose: a consumer with no flags of its
// own compiles as Bazel 4.2.3's default -std=c++0x.
#include <stdio.h>
#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "hakmem/hakmem.h"

extern "C" void* __libc_malloc(size_t size);
extern "C" void __libc_free(void* ptr);

int main() {
#if defined(__clang__)
  printf("hello: compiled by clang %s\n", __clang_version__);
#elif defined(__GNUC__)
  printf("hello: compiled by gcc %s\n", __VERSION__);
#else
  printf("hello: compiled by another compiler\n");
#endif
  // The hakmem that is linked: this workspace sets no -c, so Bazel builds in
  // fastbuild, where hakmem's own targets still compile optimised.
  printf("hello: linked %s\n", hak_build_info());
  int total = 0;
  int served = 0;
  auto check = [&](void* p, const char* what) {
    ++total;
    if (p != nullptr && hak_owns(p)) {
      ++served;
    } else {
      fprintf(stderr, "hello: %s = %p was not served by hakmem\n", what, p);
    }
  };

  void* small = malloc(100);
  check(small, "malloc(100)");
  void* zeroed = calloc(10, 1000);
  check(zeroed, "calloc(10, 1000)");
  void* large = malloc(200000);
  check(large, "malloc(200000)");
  void* huge = malloc(3 << 20);
  check(huge, "malloc(3 MiB)");
  void* aligned = nullptr;
  if (posix_memalign(&aligned, 4096, 5000) != 0) aligned = nullptr;
  check(aligned, "posix_memalign(4096, 5000)");
  void* grown = realloc(malloc(10), 50000);
  check(grown, "realloc(malloc(10), 50000)");
  std::unique_ptr<int[]> numbers(new int[1000]);
  check(numbers.get(), "new int[1000]");
  std::string text(1000, 'x');
  check(&text[0], "std::string(1000)");
  std::vector<double> values(5000, 1.0);
  check(values.data(), "std::vector<double>(5000)");

  // A control: a block of the C library's own malloc is not hakmem's.
  void* libc_block = __libc_malloc(100);
  const bool control_ok = libc_block != nullptr && !hak_owns(libc_block);
  if (!control_ok) fprintf(stderr, "hello: hak_owns() claims a C library block\n");
  __libc_free(libc_block);

  hak_stats stats;
  hak_get_stats(&stats);

  free(small);
  free(zeroed);
  free(large);
  free(huge);
  free(aligned);
  free(grown);

  const bool ok = control_ok && served == total;
  printf("hello: hakmem served %d of %d allocations (%s)\n", served, total, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
