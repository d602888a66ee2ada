#include "hakmem/huge/huge.h"

#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"
#include "hakmem/platform/platform.h"
#include "hakmem/registry/registry.h"
#include "hakmem/size_class/size_class.h"

namespace hakmem {
namespace {

void* Map(size_t size, size_t alignment = 16) {
  return MapHuge(size, alignment, LayoutOfHuge(size, alignment), nullptr);
}

TEST(HugeTest, LayoutPutsTheHeaderPageFirstAndAlignsTheBlock) {
  const HugeLayout plain = LayoutOfHuge(3 << 20, 16);
  EXPECT_EQ(plain.offset, kHugeHeaderSize);
  EXPECT_EQ(plain.length, kHugeHeaderSize + (3 << 20) + kHugeGuardSize);
  const HugeLayout aligned = LayoutOfHuge(3 << 20, 64 << 10);
  EXPECT_EQ(aligned.offset, size_t{64} << 10);
  EXPECT_EQ(LayoutOfHuge(3 << 20, size_t{8} << 20).offset, kSuperSlabSize);
  EXPECT_EQ(LayoutOfHuge(1, 16).length % platform::kPageSize, 0u);
}

TEST(HugeTest, MappedBlockIsRegisteredWritableAndItsOwn) {
  char* user = static_cast<char*>(Map(3 << 20));
  ASSERT_NE(user, nullptr);
  HugeHeader* h = HugeHeaderOf(user);
  EXPECT_EQ(h->magic, kHugeMagic);
  EXPECT_EQ(h->owner.load(), nullptr);
  EXPECT_EQ(registry::Lookup(user), h->map_base);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(h->map_base) % kSuperSlabSize, 0u);
  EXPECT_TRUE(InHugeMapping(h, user + (3 << 20) - 1));
  EXPECT_FALSE(InHugeMapping(h, h->map_base + h->map_len));
  EXPECT_GE(HugeUsableSize(h), size_t{3} << 20);
  memset(user, 0xab, 3 << 20);
  CacheHuge(h, platform::NowNanos());
  EXPECT_TRUE(ReleaseCachedHuge(platform::NowNanos(), 0, /*force=*/true));
  EXPECT_EQ(registry::Lookup(user), nullptr);
  EXPECT_TRUE(WasReleasedHuge(user));
}

TEST(HugeTest, CacheReusesTheBestFitAndReleasesByAge) {
  ReleaseCachedHuge(0, 0, /*force=*/true);
  void* big = Map(20 << 20);
  void* small = Map(3 << 20);
  ASSERT_NE(big, nullptr);
  ASSERT_NE(small, nullptr);
  CacheHuge(HugeHeaderOf(big), 100);
  CacheHuge(HugeHeaderOf(small), 200);
  EXPECT_EQ(OldestCachedHugeNs(), 100u);
  EXPECT_EQ(CachedHugeBytes(), HugeHeaderOf(big)->map_len + HugeHeaderOf(small)->map_len);
  // 2 MiB fits both; the smaller is the best fit.
  const size_t want = size_t{2} << 20;
  EXPECT_EQ(ReuseCachedHuge(want, LayoutOfHuge(want, 16)), small);
  EXPECT_FALSE(HugeHeaderOf(small)->cached);
  // More than kHugeReuseRoom (8) times what 1 KiB past 1 MiB needs (2 MiB): the
  // 20 MiB mapping is too roomy; 3 MiB (4 MiB) takes it, which at 4x did not.
  static_assert(kHugeReuseRoom * 2 < 20 && kHugeReuseRoom * 4 > 20, "the sizes below");
  const size_t tiny = (size_t{1} << 20) + 1024;
  EXPECT_EQ(ReuseCachedHuge(tiny, LayoutOfHuge(tiny, 16)), nullptr);
  const size_t roomy = size_t{3} << 20;
  EXPECT_EQ(ReuseCachedHuge(roomy, LayoutOfHuge(roomy, 16)), big);
  CacheHuge(HugeHeaderOf(big), 100);
  // Cached at 100: due at 150 with a delay of 50, not at 149.
  EXPECT_FALSE(ReleaseCachedHuge(149, 50, /*force=*/false));
  EXPECT_TRUE(ReleaseCachedHuge(150, 50, /*force=*/false));
  EXPECT_EQ(OldestCachedHugeNs(), UINT64_MAX);
  EXPECT_FALSE(ReleaseOldestCachedHuge());
  CacheHuge(HugeHeaderOf(small), 300);
  EXPECT_TRUE(ReleaseOldestCachedHuge());
  EXPECT_EQ(CachedHugeBytes(), 0u);
}

TEST(HugeTest, AMissGrowsTheLargestSmallerCachedMapping) {
  ReleaseCachedHuge(0, 0, /*force=*/true);
  char* small = static_cast<char*>(Map(3 << 20));
  char* larger = static_cast<char*>(Map(5 << 20));
  ASSERT_NE(small, nullptr);
  ASSERT_NE(larger, nullptr);
  memset(larger, 'L', 5 << 20);
  const size_t small_len = HugeHeaderOf(small)->map_len;
  CacheHuge(HugeHeaderOf(small), 100);
  CacheHuge(HugeHeaderOf(larger), 200);
  // A mapping that fits serves where it is: 4 MiB takes the 5 MiB one, and the
  // 3 MiB one is not grown for it.
  const size_t fits = size_t{4} << 20;
  EXPECT_EQ(ReuseCachedHuge(fits, LayoutOfHuge(fits, 16)), larger);
  EXPECT_EQ(CachedHugeBytes(), small_len);
  CacheHuge(HugeHeaderOf(larger), 200);
  // Neither fits 12 MiB: the 5 MiB one moves into the new block, pages and all.
  const size_t want = size_t{12} << 20;
  char* grown = static_cast<char*>(ReuseCachedHuge(want, LayoutOfHuge(want, 16)));
  ASSERT_NE(grown, nullptr);
  HugeHeader* h = HugeHeaderOf(grown);
  EXPECT_FALSE(h->cached);
  EXPECT_EQ(h->size, want);
  EXPECT_GE(HugeUsableSize(h), want);
  EXPECT_EQ(grown[0], 'L');
  EXPECT_EQ(grown[(5 << 20) - 1], 'L');
  EXPECT_EQ(registry::Lookup(grown + want - 1), h->map_base);
  grown[want - 1] = 'x';  // the rest is mapped and writable
  EXPECT_EQ(CachedHugeBytes(), small_len);
  // The pages moved to a new range: a stale free of the old address is reported.
  EXPECT_NE(grown, larger);
  EXPECT_TRUE(WasReleasedHuge(larger));
  CacheHuge(h, 300);
  EXPECT_TRUE(ReleaseCachedHuge(0, 0, /*force=*/true));
  EXPECT_EQ(CachedHugeBytes(), 0u);
}

TEST(HugeTest, ReallocGrowsInPlaceThenMovesThePages) {
  char* user = static_cast<char*>(Map(3 << 20));
  ASSERT_NE(user, nullptr);
  user[0] = 'a';
  HugeHeader* h = HugeHeaderOf(user);
  EXPECT_EQ(HugeRealloc(h, HugeUsableSize(h)), user);  // in place
  char* moved = static_cast<char*>(HugeRealloc(h, 40 << 20));
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(moved[0], 'a');
  EXPECT_GE(HugeUsableSize(HugeHeaderOf(moved)), size_t{40} << 20);
  EXPECT_EQ(registry::Lookup(moved), HugeHeaderOf(moved)->map_base);
  CacheHuge(HugeHeaderOf(moved), 0);
  EXPECT_TRUE(ReleaseCachedHuge(0, 0, /*force=*/true));
}

}  // namespace
}  // namespace hakmem
