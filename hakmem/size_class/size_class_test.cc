#include "hakmem/size_class/size_class.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace hakmem {
namespace {

// Walks every size from 0 to the huge threshold.
TEST(SizeClassTest, EverySizeHasExactlyOneLaneAndClass) {
  int previous_class = 0;
  for (size_t size = 0; size <= kHugeThreshold; ++size) {
    const Lane lane = LaneOf(size);
    // Lanes are contiguous ranges in order.
    if (size <= kTinyMax) {
      ASSERT_EQ(lane, Lane::kTiny) << size;
    } else if (size <= kPoolMax) {
      ASSERT_EQ(lane, Lane::kPool) << size;
    } else {
      ASSERT_EQ(lane, Lane::kLarge) << size;
    }
    if (lane == Lane::kTiny || lane == Lane::kPool) {
      const int cls = SizeClass(size);
      ASSERT_EQ(cls, ComputeClass(size)) << size;
      ASSERT_GE(cls, 0);
      ASSERT_LT(cls, kNumClasses);
      ASSERT_EQ(cls < kNumTinyClasses, lane == Lane::kTiny) << size;
      // The smallest class that fits: classes never decrease and never skip one
      // that would have fit.
      ASSERT_GE(cls, previous_class) << size;
      ASSERT_GE(ClassSize(cls), size) << size;
      if (cls > 0) {
        ASSERT_LT(ClassSize(cls - 1), size == 0 ? 1 : size) << size;
      }
      previous_class = cls;
    }
    const size_t block = RoundedSize(size);
    ASSERT_GE(block, size) << size;
    ASSERT_EQ(block % kAlignment, 0u) << size;
    if (size > 128) {
      // Internal waste at most 12.5% of the request.
      ASSERT_LT((block - size) * 8, size) << size << " -> " << block;
    }
  }
}

TEST(SizeClassTest, LanesAboveTheThresholdAreHuge) {
  for (size_t size :
       {kHugeThreshold + 1, size_t{64} << 20, size_t{1} << 30, size_t{1} << 40, ~size_t{0} >> 1}) {
    EXPECT_EQ(LaneOf(size), Lane::kHuge) << size;
  }
  EXPECT_EQ(LaneOf(kHugeThreshold), Lane::kLarge);
}

TEST(SizeClassTest, ClassSizesAreAlignedAndPowersOfTwoAreClasses) {
  for (int c = 0; c < kNumClasses; ++c) {
    EXPECT_EQ(ClassSize(c) % 16, 0u) << c;
  }
  // Aligned allocation relies on every power of two from 16 B to 128 KiB being a
  // class size (blocks of such a class are naturally aligned).
  for (size_t p = 16; p <= kPoolMax; p *= 2) {
    EXPECT_EQ(ClassSize(SizeClass(p)), p) << p;
  }
}

// A power of two plus a small header (SQLite's 1024-byte buffers with its 8-byte
// size prefix, its 4 KiB pages with their page-cache header) takes a class just
// above the power, not the next one an eighth above it.
TEST(SizeClassTest, PowerOfTwoPlusAHeaderHasAClassJustAbove) {
  EXPECT_EQ(ClassSize(SizeClass(1032)), 1056u);
  EXPECT_EQ(ClassSize(SizeClass(1056)), 1056u);
  EXPECT_EQ(ClassSize(SizeClass(1057)), 1152u);
  EXPECT_EQ(ClassSize(SizeClass(4104)), 4384u);
  EXPECT_EQ(ClassSize(SizeClass(4368)), 4384u);
  EXPECT_EQ(ClassSize(SizeClass(4385)), 4608u);
  for (size_t size : {size_t{1032}, size_t{4368}}) {
    EXPECT_LT((ClassSize(SizeClass(size)) - size) * 16, size) << size << ": under 1/16 waste";
  }
  // Their slabs lose less than 1/16 to the tail.
  for (size_t size : {size_t{1056}, size_t{4384}}) {
    const SizeClassInfo& info = kSizeClasses[SizeClass(size)];
    const size_t slab = size_t{info.slab_units} * kUnitSize;
    EXPECT_LT((slab - size_t{info.blocks} * info.size) * 16, slab) << size;
  }
}

TEST(SizeClassTest, SlabsFitASuperSlabAndCachesAreBounded) {
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClassInfo& info = kSizeClasses[c];
    EXPECT_LE(info.slab_units * kUnitSize, kSuperSlabSize / 4) << c;
    EXPECT_LE(size_t{info.cache_max} * info.size, size_t{256} << 10) << c;
    EXPECT_GE(info.cache_max, 2) << c;
  }
}

TEST(SizeClassTest, LargeRunsRoundToUnits) {
  EXPECT_EQ(LargeUnits(kPoolMax + 1), kPoolMax / kUnitSize + 1);
  EXPECT_EQ(LargeUnits(kHugeThreshold), kHugeThreshold / kUnitSize);
  EXPECT_EQ(RoundedSize(kPoolMax + 1), kPoolMax + kUnitSize);
}

TEST(SizeClassTest, ReportListsEveryClass) {
  char path[] = "/tmp/size_class_reportXXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  PrintSizeClassTable(fd);
  lseek(fd, 0, SEEK_SET);
  std::string text(64 << 10, '\0');
  const ssize_t n = read(fd, text.data(), text.size());
  close(fd);
  unlink(path);
  ASSERT_GT(n, 0);
  text.resize(static_cast<size_t>(n));
  size_t lines = 0;
  for (char ch : text) lines += ch == '\n';
  EXPECT_EQ(lines, static_cast<size_t>(kNumClasses) + 2);
  EXPECT_NE(text.find("131072"), std::string::npos);
  EXPECT_NE(text.find("pool"), std::string::npos);
}

}  // namespace
}  // namespace hakmem
