#include "hakmem/pool_tls/pool_tls.h"

#include <string>

#include "gtest/gtest.h"
#include "hakmem/stats/stats.h"

namespace hakmem::pool_tls {
namespace {

TEST(PoolTlsTest, EverySizeFindsItsClassListOffset) {
  for (size_t size = kTinyMax + 1; size <= kPoolMax; ++size) {
    const uintptr_t offset = SizeListOffset(size);
    ASSERT_EQ(offset % kClassListStride, 0u) << size;
    const int cls = static_cast<int>(offset / kClassListStride);
    ASSERT_TRUE(Owns(cls)) << size;
    ASSERT_GE(ClassSize(cls), size) << size;
    ASSERT_LT(ClassSize(cls - 1), size) << size;  // the smallest class that holds it
  }
}

TEST(PoolTlsTest, OwnsExactlyThePoolClasses) {
  for (int cls = -1; cls <= kNumClasses; ++cls) {
    const bool pool = cls >= 0 && cls < kNumClasses && ClassSize(cls) > kTinyMax;
    EXPECT_EQ(Owns(cls), pool) << cls;
  }
}

// pool_tls=off (a flag variant of this test) leaves every pool list uncached.
TEST(PoolTlsTest, LimitsFollowThePoolTlsFlag) {
  EXPECT_EQ(kCached, config::kPoolTls);
  for (int cls = kFirstPoolClass; cls < kNumClasses; ++cls) {
    if (config::kPoolTls) {
      EXPECT_EQ(InitialLimit(cls), ace::DefaultLimit(cls)) << cls;
      EXPECT_GT(FixedBatch(cls), 0u) << cls;
      EXPECT_LE(FixedBatch(cls), InitialLimit(cls)) << cls;
    } else {
      EXPECT_EQ(InitialLimit(cls), 0u) << cls;
    }
  }
}

// prewarm=on (a flag variant) prewarms the pool classes up to 8 KiB, no other.
TEST(PoolTlsTest, PrewarmsThePoolClassesUpTo8KiB) {
  int prewarmed = 0;
  for (int cls = 0; cls < kNumClasses; ++cls) {
    const bool expected =
        config::kPoolTls && config::kPrewarm && cls >= kFirstPoolClass && ClassSize(cls) <= 8192;
    EXPECT_EQ(Prewarms(cls), expected) << cls;
    prewarmed += Prewarms(cls);
  }
  if (config::kPoolTls && config::kPrewarm) EXPECT_GT(prewarmed, 0);
}

TEST(PoolTlsTest, UncachedRefillsAreCountedAsFallbacks) {
  if constexpr (!config::kStats) GTEST_SKIP() << "stats=off build";
  stats::Snapshot before, after;
  stats::Collect(&before);
  CountUncachedRefill();
  CountUncachedRefill();
  stats::Collect(&after);
  const int k = static_cast<int>(stats::Counter::k_fallback_pool_uncached);
  EXPECT_EQ(after.counters[k] - before.counters[k], 2u);
}

TEST(PoolTlsTest, DescribesItsLaneAndFlag) {
  platform::DiagLine line;
  DescribeLane(&line);
  std::string expected = "pool lane (pool_tls): 1025..131072 B in 59 classes, ";
  expected += config::kPoolTls ? "cached" : "uncached (pool_tls=off)";
  if (config::kPoolTls && config::kPrewarm) expected += ", prewarmed up to 8192 B";
  EXPECT_EQ(std::string(line.text()), expected);
}

}  // namespace
}  // namespace hakmem::pool_tls
