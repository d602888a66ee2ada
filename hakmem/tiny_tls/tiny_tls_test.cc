#include "hakmem/tiny_tls/tiny_tls.h"

#include <cstddef>
#include <string>

#include "gtest/gtest.h"

namespace hakmem::tiny_tls {
namespace {

// A thread-local block with a copy of the table at an offset of its own, as the
// thread cache's TLS block holds one: the fast path's load reads this thread's
// copy at that offset, not the shared table.
struct TestBlock {
  char before[40];
  SizeTable table;
};
ABSL_CONST_INIT __thread TestBlock tls_block HAKMEM_TLS = {{}, kSizeTable};
constexpr size_t kTableAt = offsetof(TestBlock, table);

// A second block whose copy differs at size 100: the load reads the block it is
// given. (The table is constant once set up, as the fast path's load assumes:
// the compiler may reuse a load with the same operands, so a test must not
// write a table it has read.)
constexpr SizeTable TableWithSize100AtClass7() {
  SizeTable table = kSizeTable;
  table.list_offset[100] = 7 * kClassListStride;
  return table;
}
ABSL_CONST_INIT __thread TestBlock tls_other HAKMEM_TLS = {{}, TableWithSize100AtClass7()};

TEST(TinyTlsTest, EverySizeReadsItsClassListOffset) {
  for (size_t size = 0; size <= kTinyMax; ++size) {
    const uintptr_t offset = ListOffsetAt<kTableAt>(tls_block, size);
    ASSERT_EQ(offset, ListOffset(static_cast<uint32_t>(SizeClass(size)))) << size;
    const int cls = static_cast<int>(offset / kClassListStride);
    ASSERT_TRUE(Owns(cls)) << size;
    ASSERT_GE(ClassSize(cls), size == 0 ? 1 : size) << size;
    if (cls > 0) ASSERT_LT(ClassSize(cls - 1), size) << size;
  }
}

TEST(TinyTlsTest, ReadsTheCopyItIsGiven) {
  EXPECT_EQ(ListOffsetAt<kTableAt>(tls_other, 100), 7u * kClassListStride);
  EXPECT_EQ(ListOffsetAt<kTableAt>(tls_block, 100), ListOffset(SizeClass(100)));
  EXPECT_EQ(ListOffsetAt<kTableAt>(tls_other, 101), ListOffset(SizeClass(101)));
}

TEST(TinyTlsTest, OwnsExactlyTheTinyClasses) {
  for (int cls = -1; cls <= kNumClasses; ++cls) {
    const bool tiny = cls >= 0 && cls < kNumClasses && ClassSize(cls) <= kTinyMax;
    EXPECT_EQ(Owns(cls), tiny) << cls;
  }
}

TEST(TinyTlsTest, EveryClassIsCachedWithABatchWithinItsLimit) {
  for (int cls = 0; cls < kNumTinyClasses; ++cls) {
    EXPECT_GT(InitialLimit(cls), 0u) << cls;
    EXPECT_LE(InitialLimit(cls), ace::kMaxLimit) << cls;
    EXPECT_GT(FixedBatch(cls), 0u) << cls;
    EXPECT_LE(FixedBatch(cls), InitialLimit(cls)) << cls;
  }
}

TEST(TinyTlsTest, DescribesItsLane) {
  platform::DiagLine line;
  DescribeLane(&line);
  EXPECT_EQ(std::string(line.text()),
            "tiny lane (tiny_tls): 0..1024 B in 32 classes, cached, size table per thread "
            "(2050 B of TLS)");
}

}  // namespace
}  // namespace hakmem::tiny_tls
