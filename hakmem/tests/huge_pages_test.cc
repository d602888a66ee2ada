// hakmem's memory in 2 MiB pages (HAKMEM_THP=always, or auto where the kernel's
// defrag mode never stalls a fault) or in 4 KiB pages (HAKMEM_THP=never, auto
// where it may, or a kernel whose THP mode is never): what the process's
// page faults and AnonHugePages say after a growing heap of small blocks is
// touched. Declared three times in BUILD.bazel: HAKMEM_THP unset, always and never.
#include <stdlib.h>
#include <string.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config/build_config.h"
#include "hakmem/hakmem.h"
#include "hakmem/superslab/superslab.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;

std::string ReadFile(const char* path) {
  FILE* f = fopen(path, "re");
  if (f == nullptr) return "";
  char text[128] = {};
  const size_t n = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  return std::string(text, n);
}

// Whether this run should get huge pages: the build and the kernel's mode allow
// them, and the option asks for them (always), or does not forbid them (auto)
// and the kernel's defrag mode lets no fault wait for compaction.
bool ExpectHugePages() {
  if (!hakmem::config::kThp) return false;
  const char* option = getenv("HAKMEM_THP");
  if (option != nullptr && strcmp(option, "never") == 0) return false;
  const std::string mode = ReadFile("/sys/kernel/mm/transparent_hugepage/enabled");
  if (mode.find("[always]") == std::string::npos && mode.find("[madvise]") == std::string::npos)
    return false;
  if (option != nullptr && strcmp(option, "always") == 0) return true;
  const std::string defrag = ReadFile("/sys/kernel/mm/transparent_hugepage/defrag");
  return defrag.find("[defer]") != std::string::npos || defrag.find("[never]") != std::string::npos;
}

TEST(HugePagesTest, GrowingHeapFaultsInWholeHugePages) {
  constexpr size_t kBytes = 128 * kMiB;
  constexpr size_t kBlock = 64;
  hak_stats before;
  hak_get_stats(&before);
  std::vector<void*> blocks;
  blocks.reserve(kBytes / kBlock);
  for (size_t i = 0; i < kBytes / kBlock; ++i) {
    void* p = malloc(kBlock);
    ASSERT_NE(p, nullptr);
    memset(p, 1, kBlock);
    blocks.push_back(p);
  }
  hak_stats after;
  hak_get_stats(&after);
  const uint64_t faults = after.minor_faults - before.minor_faults;
  const uint64_t huge_bytes = hak_huge_page_bytes();
  const uint64_t small_pages = kBytes / 4096;
  if (ExpectHugePages()) {
    // One fault per 2 MiB instead of one per 4 KiB past the first superslabs,
    // which stay in small pages: far fewer than a tenth of the rest (the vector's
    // own pages fault too). Most of the memory sits in huge pages.
    const uint64_t small_page_floor = hakmem::kSmallPageSuperSlabs * (2 * kMiB) / 4096;
    EXPECT_LT(faults, small_page_floor + small_pages / 10)
        << "minor faults for " << kBytes / kMiB << " MiB";
    EXPECT_GE(huge_bytes, kBytes / 2) << "AnonHugePages of hakmem's mappings";
  } else {
    EXPECT_GE(faults, small_pages * 9 / 10) << "minor faults for " << kBytes / kMiB << " MiB";
    EXPECT_EQ(huge_bytes, 0u);
  }
  for (void* p : blocks) free(p);
}

// Minor faults of the process so far.
uint64_t MinorFaults() {
  hak_stats s;
  hak_get_stats(&s);
  return s.minor_faults;
}

// A huge block (a mapping of its own) written whole faults in 2 MiB pages from its
// first byte: its header is written after the mapping is advised, not before (a
// 4 KiB page there would keep its first 2 MiB in small pages: 512 faults). The
// same for the growth of a huge block by realloc, which moves its whole 2 MiB
// pages to a bigger mapping and copies its partial last one (moved, those 4 KiB
// pages would keep a 2 MiB range of the new mapping in small pages). Four blocks,
// so that one 2 MiB page the kernel could not supply (fragmented memory) passes.
TEST(HugePagesTest, HugeBlocksAndTheirGrowthFaultInWholeHugePages) {
  constexpr int kBlocks = 4;
  constexpr size_t kStart = 6 * kMiB;  // + the header page: a partial last 2 MiB
  constexpr size_t kGrown = 12 * kMiB;
  hak_purge();  // no cached mapping (an earlier test's vector) to reuse, warm
  char* p[kBlocks];
  const uint64_t before = MinorFaults();
  for (char*& block : p) {
    block = static_cast<char*>(malloc(kStart));
    ASSERT_NE(block, nullptr);
    memset(block, 1, kStart);
  }
  const uint64_t mapped = MinorFaults() - before;
  for (char*& block : p) {
    block = static_cast<char*>(realloc(block, kGrown));
    ASSERT_NE(block, nullptr);
    memset(block + kStart, 2, kGrown - kStart);
  }
  const uint64_t grown = MinorFaults() - before - mapped;
  for (char* block : p) {
    // The moved pages, the copied partial one, the growth.
    EXPECT_EQ(block[0], 1);
    EXPECT_EQ(block[kStart - 4096], 1);
    EXPECT_EQ(block[kStart - 1], 1);
    EXPECT_EQ(block[kGrown - 1], 2);
    free(block);
  }
  if (ExpectHugePages()) {
    // A few faults per 2 MiB page (each block's last, partial page is in 4 KiB
    // pages): fewer than 512 more than that, one 2 MiB range in small pages.
    EXPECT_LT(mapped, 512u + 64u) << "minor faults writing " << kBlocks << " new blocks of "
                                  << kStart / kMiB << " MiB";
    EXPECT_LT(grown, 512u + 64u) << "minor faults growing them to " << kGrown / kMiB << " MiB";
  } else {
    EXPECT_GE(mapped, kBlocks * kStart / 4096 * 9 / 10);
    EXPECT_GE(grown, kBlocks * (kGrown - kStart) / 4096 * 9 / 10);
  }
}

// A huge block aligned to 2 MiB or more keeps its header's chunk in 4 KiB pages
// (advised apart from the rest, it is a mapping of its own): realloc grows it by
// a copy, every byte kept.
TEST(HugePagesTest, AlignedHugeBlockGrowsByReallocWithItsBytes) {
  constexpr size_t kAlign = 4 * kMiB;
  constexpr size_t kSize = 3 * kMiB;
  void* p = nullptr;
  ASSERT_EQ(posix_memalign(&p, kAlign, kSize), 0);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % kAlign, 0u);
  for (size_t i = 0; i < kSize; i += 4096) static_cast<char*>(p)[i] = static_cast<char>(i >> 12);
  char* q = static_cast<char*>(realloc(p, 3 * kSize));
  ASSERT_NE(q, nullptr);
  for (size_t i = 0; i < kSize; i += 4096) ASSERT_EQ(q[i], static_cast<char>(i >> 12)) << i;
  memset(q + kSize, 1, 2 * kSize);
  free(q);
}

void GrowLargeBlockByRealloc() {
  using hakmem::Occupancy;
  void* allocated = malloc(600 << 10);
  ASSERT_NE(allocated, nullptr);
  EXPECT_EQ(hakmem::SuperSlabOf(allocated)->occupancy, Occupancy::kSparse);
  void* grown = malloc(200 << 10);
  ASSERT_NE(grown, nullptr);
  memset(grown, 3, 200 << 10);
  // (A run of free units after it would let it grow in place: the block
  // allocated after it stands in the way.)
  void* after = malloc(200 << 10);
  ASSERT_NE(after, nullptr);
  grown = realloc(grown, 600 << 10);
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(hakmem::SuperSlabOf(grown)->occupancy, Occupancy::kDense);
  EXPECT_EQ(static_cast<char*>(grown)[(200 << 10) - 1], 3);
  free(after);
  free(grown);
  free(allocated);
}

// A large block that realloc grows into is written up to the old size at once and
// tends to fill: it is carved among the dense blocks (2 MiB pages once the heap
// is big); a large block from malloc goes with the big blocks (4 KiB pages).
TEST(HugePagesTest, LargeBlocksGrownByReallocGoWithTheDenseBlocks) {
  // On a new thread's heap, after the cached superslabs are decommitted: backed
  // free units (earlier tests') would take a block of either kind.
  hak_purge();
  std::thread([] { GrowLargeBlockByRealloc(); }).join();
}

// Resident bytes of the process (VmRSS), from /proc/self/statm.
uint64_t ResidentBytes() {
  FILE* f = fopen("/proc/self/statm", "re");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  return n == 2 ? resident * 4096 : 0;
}

// Big blocks that a program writes only the start of (mid_large_mt's pattern) cost
// the pages it touches, huge pages on or off: their superslabs stay in 4 KiB pages.
TEST(HugePagesTest, PartlyWrittenBigBlocksCostOnlyTheirTouchedPages) {
  // (A prefault build populates what it carves: there, the RSS passed only when
  // an earlier test's memory, populated already, was reused.)
  if (hakmem::config::kPrefault) GTEST_SKIP() << "--define hakmem_prefault=on populates new memory";
  constexpr size_t kBlock = 32 << 10;
  constexpr size_t kBlocks = 2048;  // 64 MiB
  std::vector<void*> blocks;
  blocks.reserve(kBlocks);
  const uint64_t huge_before = hak_huge_page_bytes();
  const uint64_t rss_before = ResidentBytes();
  ASSERT_NE(rss_before, 0u);
  for (size_t i = 0; i < kBlocks; ++i) {
    char* p = static_cast<char*>(malloc(kBlock));
    ASSERT_NE(p, nullptr);
    p[0] = 1;
    blocks.push_back(p);
  }
  const uint64_t grown = ResidentBytes() - rss_before;
  // One 4 KiB page per block is 8 MiB; 2 MiB pages would make it 64 MiB.
  EXPECT_LT(grown, 16 * kMiB) << "RSS growth for " << kBlocks << " blocks of " << kBlock
                              << " bytes, one byte each";
  EXPECT_LE(hak_huge_page_bytes(), huge_before);
  for (void* p : blocks) free(p);
}

}  // namespace
