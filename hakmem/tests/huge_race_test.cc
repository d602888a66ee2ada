// One thread grows huge blocks with realloc (each growth moves the pages to a new
// mapping and frees the old range) while another maps new huge blocks, which the
// kernel may place in exactly the range just freed. Every live block must stay
// known to the allocator: malloc_usable_size >= its size, free works. Runs with
// HAKMEM_RETAIN_MB=0 (BUILD.bazel) so that nothing is cached and every free or
// move gives its range back to the kernel at once.
#include <malloc.h>
#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "gtest/gtest.h"
#include "hakmem/tests/test_util.h"

namespace {

using hakmem_test::Opaque;

constexpr size_t kMiB = size_t{1} << 20;

TEST(HugeRaceTest, MovingReallocsNeverForgetAnotherThreadsMapping) {
  std::atomic<bool> stop{false};
  std::thread grower([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      void* p = malloc(Opaque(2 * kMiB));
      ASSERT_NE(p, nullptr);
      for (size_t size = 3 * kMiB; size <= 12 * kMiB; size += 3 * kMiB) {
        p = realloc(Opaque(p), size);
        ASSERT_NE(p, nullptr);
      }
      free(p);
    }
  });
  for (int i = 0; i < 3000; ++i) {
    const size_t size = (2 + i % 7) * kMiB;
    char* q = static_cast<char*>(malloc(Opaque(size)));
    ASSERT_NE(q, nullptr);
    q[size - 1] = 1;
    ASSERT_GE(malloc_usable_size(q), size) << "iteration " << i;
    free(q);
  }
  stop = true;
  grower.join();
}

}  // namespace
