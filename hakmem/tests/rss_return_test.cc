// After a workload frees everything, RSS comes back: at once with malloc_trim
// (hak_purge), and by itself once the purge delay has passed and the allocator is
// used again. Runs with HAKMEM_PURGE_DELAY_MS=50 (see BUILD.bazel).
#include <malloc.h>
#include <stdlib.h>
#include <time.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/tests/test_util.h"

namespace {

using hakmem_test::ResidentBytes;

constexpr size_t kMiB = size_t{1} << 20;

// About 200 MiB across every lane, touched, then freed in a scrambled order.
void AllocateTouchAndFreeEverything() {
  std::vector<void*> blocks;
  blocks.reserve(100000);
  auto add = [&](size_t size, int count) {
    for (int i = 0; i < count; ++i) {
      void* p = malloc(size);
      ASSERT_NE(p, nullptr);
      memset(p, 0x5a, size);
      blocks.push_back(p);
    }
  };
  add(48, 400000 / 8);  // tiny, ~2.4 MiB
  add(900, 20000);      // tiny, ~18 MiB
  add(24 << 10, 2000);  // pool, ~48 MiB
  add(100 << 10, 500);  // pool, ~50 MiB
  add(600 << 10, 60);   // large, ~36 MiB
  add(3 * kMiB, 15);    // huge, ~45 MiB
  for (size_t i = 0; i < blocks.size(); ++i) {
    std::swap(blocks[i], blocks[(i * 7919) % blocks.size()]);
  }
  for (void* p : blocks) free(p);
}

// Pauses of 4x the purge delay, each followed by ordinary use (the slow paths
// it takes run the decay clock), until RSS is below `want`; at most 2 s, so a
// loaded machine that runs this thread late does not fail a test. Returns the
// RSS last read.
size_t UseAfterPausesUntilBelow(size_t want) {
  size_t settled = ResidentBytes();
  for (int attempt = 0; attempt < 10 && settled >= want; ++attempt) {
    const timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, nullptr);
    for (int round = 0; round < 64; ++round) {
      std::vector<void*> few;
      for (size_t size = 16; size <= (256 << 10); size *= 2) few.push_back(malloc(size));
      for (void* p : few) free(p);
    }
    settled = ResidentBytes();
  }
  return settled;
}

TEST(RssReturnTest, MallocTrimGivesMemoryBackAtOnce) {
  const size_t start = ResidentBytes();
  ASSERT_GT(start, 0u);
  AllocateTouchAndFreeEverything();
  const size_t after_free = ResidentBytes();
  malloc_trim(0);
  const size_t trimmed = ResidentBytes();
  EXPECT_LT(trimmed, start + 16 * kMiB)
      << "start " << start / kMiB << " MiB, after free " << after_free / kMiB
      << " MiB, after malloc_trim " << trimmed / kMiB << " MiB";
}

TEST(RssReturnTest, DecayGivesMemoryBackAfterThePurgeDelay) {
  const size_t start = ResidentBytes();
  AllocateTouchAndFreeEverything();
  const size_t after_free = ResidentBytes();
  const size_t settled = UseAfterPausesUntilBelow(start + 24 * kMiB);
  EXPECT_LT(settled, start + 24 * kMiB)
      << "start " << start / kMiB << " MiB, after free " << after_free / kMiB
      << " MiB, after the delay " << settled / kMiB << " MiB";
}

// A program that goes on using the allocator keeps one 16 KiB block in sixteen
// of a 64 MiB peak: every other slab keeps a block out, so its free blocks stay
// on its free list, and decay gives back their pages past the first (held
// before: the whole slabs, about 32 MiB).
TEST(RssReturnTest, FreeBlocksOfPartlyUsedSlabsGiveBackTheirPages) {
  constexpr size_t kBlock = 16 << 10;
  constexpr int kBlocks = 4096, kKeepEvery = 16;
  const size_t start = ResidentBytes();
  std::vector<void*> blocks(kBlocks);
  for (void*& p : blocks) {
    p = malloc(kBlock);
    ASSERT_NE(p, nullptr);
    memset(p, 0x5a, kBlock);
  }
  const size_t peak = ResidentBytes();
  for (int i = 0; i < kBlocks; ++i) {
    if (i % kKeepEvery == 0) continue;
    free(blocks[i]);
    blocks[i] = nullptr;
  }
  // The survivors (4 MiB) stay live throughout.
  const size_t want = start + 20 * kMiB;
  const size_t settled = UseAfterPausesUntilBelow(want);
  EXPECT_LT(settled, want) << "start " << start / kMiB << " MiB, peak " << peak / kMiB
                           << " MiB, with the survivors " << settled / kMiB << " MiB";
  std::printf("start %zu KiB, peak %zu KiB, with the survivors %zu KiB\n", start >> 10, peak >> 10,
              settled >> 10);
  for (void* p : blocks) free(p);
}

}  // namespace
