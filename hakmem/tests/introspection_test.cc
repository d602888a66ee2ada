// glibc's introspection API (mallinfo, mallinfo2, malloc_stats, malloc_info,
// mallopt) answers for hakmem when hakmem is the program's malloc: called by
// their C names, as a program would.
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/hakmem.h"
#include "hakmem/tests/test_util.h"

namespace {

using hakmem_test::Opaque;

constexpr size_t kMiB = size_t{1} << 20;

// 96 MiB in blocks of 4 KiB .. 64 KiB (powers of two are classes, so the bytes
// in use grow by exactly what was asked), every byte touched.
void Allocate96MiB(std::vector<void*>* blocks) {
  size_t total = 0;
  for (int i = 0; total < 96 * kMiB; ++i) {
    const size_t size = size_t{4096} << (i % 5);
    void* p = malloc(Opaque(size));
    if (p == nullptr) abort();
    memset(p, 1, size);
    blocks->push_back(p);
    total += size;
  }
}

TEST(MallinfoTest, Mallinfo2CountsWhatIsInUse) {
  std::vector<void*> blocks;
  blocks.reserve(40000);  // the vector's own growth stays out of the measure
  const struct mallinfo2 before = mallinfo2();
  Allocate96MiB(&blocks);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_GE(during.uordblks, 96 * kMiB);
  // Within a thread cache's worth (256 KiB per pool class) plus the vector.
  EXPECT_NEAR(static_cast<double>(during.uordblks - before.uordblks), 96.0 * kMiB, 4.0 * kMiB);
  EXPECT_GE(during.arena, during.uordblks);
  EXPECT_EQ(during.arena, during.uordblks + during.fordblks);
  for (void* p : blocks) free(p);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_LT(after.uordblks, during.uordblks - 90 * kMiB);
  EXPECT_GT(after.fordblks, during.fordblks);
}

TEST(MallinfoTest, HugeMappingsAreHblkhd) {
  malloc_trim(0);  // no cached mapping to reuse: the new one is the size asked
  const struct mallinfo2 before = mallinfo2();
  void* p = malloc(Opaque(8 * kMiB));
  ASSERT_NE(p, nullptr);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_EQ(during.hblks, before.hblks + 1);
  EXPECT_GE(during.hblkhd, before.hblkhd + 8 * kMiB);
  EXPECT_LT(during.hblkhd, before.hblkhd + 11 * kMiB);
  free(p);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_EQ(after.hblks, before.hblks);
  EXPECT_EQ(after.hblkhd, before.hblkhd);
}

TEST(MallinfoTest, MallinfoIsMallinfo2InInts) {
  std::vector<void*> blocks;
  for (int i = 0; i < 256; ++i) blocks.push_back(malloc(Opaque(size_t{16384})));
  const struct mallinfo2 m2 = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const struct mallinfo m = mallinfo();
#pragma GCC diagnostic pop
  EXPECT_GE(static_cast<size_t>(m.uordblks), 4 * kMiB);
  // Nothing was allocated between the two calls.
  EXPECT_EQ(static_cast<size_t>(m.uordblks), m2.uordblks);
  EXPECT_EQ(static_cast<size_t>(m.arena), m2.arena);
  EXPECT_EQ(static_cast<size_t>(m.hblkhd), m2.hblkhd);
  for (void* p : blocks) free(p);
}

TEST(MallocStatsTest, WritesHakmemReportToStderr) {
  void* p = malloc(Opaque(size_t{100000}));
  testing::internal::CaptureStderr();
  malloc_stats();
  const std::string err = testing::internal::GetCapturedStderr();
  free(p);
  EXPECT_NE(err.find("hakmem malloc_stats"), std::string::npos) << err;
  EXPECT_NE(err.find("in use bytes     = "), std::string::npos) << err;
  EXPECT_NE(err.find("hakmem stats (pid"), std::string::npos) << err;
  // The report says which hakmem it is and how each cached lane is set up.
  EXPECT_NE(err.find(std::string("  build: ") + hak_build_info() + "\n"), std::string::npos) << err;
  EXPECT_NE(err.find("  tiny lane (tiny_tls): 0..1024 B in 32 classes, cached"), std::string::npos)
      << err;
  EXPECT_NE(err.find("  pool lane (pool_tls): 1025..131072 B in 59 classes, "), std::string::npos)
      << err;
  // glibc's own report starts with "Arena 0:".
  EXPECT_EQ(err.find("Arena 0:"), std::string::npos) << err;
}

// The version and the build: hakmem's tests build with -c opt (.bazelrc), so
// an optimised one, by the compiler that built this test.
TEST(BuildInfoTest, NamesTheVersionOptimisationAndCompiler) {
  const std::string info = hak_build_info();
  EXPECT_EQ(info.rfind(std::string("hakmem ") + HAKMEM_VERSION + " (optimized, ", 0), 0u) << info;
#if defined(__clang__)
  EXPECT_NE(info.find(", clang " + std::to_string(__clang_major__) + "."), std::string::npos)
      << info;
#else
  EXPECT_NE(info.find(", gcc " + std::to_string(__GNUC__) + "."), std::string::npos) << info;
#endif
  EXPECT_EQ(info.find("hardened") != std::string::npos, HAKMEM_BUILD_HARDENED == 1) << info;
  EXPECT_EQ(std::to_string(HAKMEM_VERSION_MAJOR) + "." + std::to_string(HAKMEM_VERSION_MINOR) +
                "." + std::to_string(HAKMEM_VERSION_PATCH),
            HAKMEM_VERSION);
}

std::string MallocInfoText(int options, int* result) {
  char* text = nullptr;
  size_t length = 0;
  FILE* stream = open_memstream(&text, &length);  // allocates through hakmem
  if (stream == nullptr) abort();
  *result = malloc_info(options, stream);
  fclose(stream);
  std::string s(text, length);
  free(text);
  return s;
}

uint64_t Attribute(const std::string& xml, const std::string& element, const char* name) {
  const size_t at = xml.find(element);
  if (at == std::string::npos) return UINT64_MAX;
  const size_t value = xml.find(std::string(name) + "=\"", at);
  if (value == std::string::npos) return UINT64_MAX;
  return strtoull(xml.c_str() + value + strlen(name) + 2, nullptr, 10);
}

TEST(MallocInfoTest, XmlNamesHakmemWithLanesClassesAndTotals) {
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(malloc(Opaque(size_t{32768})));
  int result = -2;
  const std::string xml = MallocInfoText(0, &result);
  EXPECT_EQ(result, 0);
  EXPECT_EQ(xml.rfind("<malloc version=\"1\" allocator=\"hakmem\">\n", 0), 0u) << xml;
  EXPECT_EQ(xml.substr(xml.size() - 10), "</malloc>\n");
  EXPECT_NE(xml.find("<lane name=\"tiny\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("<lane name=\"huge\""), std::string::npos) << xml;
  EXPECT_GE(Attribute(xml, "<lane name=\"pool\"", "size"), 1000u * 32768);
  EXPECT_GE(Attribute(xml, "size=\"32768\" in_use", "in_use"), 990u) << xml;
  EXPECT_GE(Attribute(xml, "<total type=\"inuse\"", "size"), 1000u * 32768);
  for (void* p : blocks) free(p);
}

TEST(MallocInfoTest, NonZeroOptionsAreEinval) {
  int result = 0;
  errno = 0;
  const std::string xml = MallocInfoText(1, &result);
  EXPECT_EQ(result, -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_TRUE(xml.empty());
}

TEST(MalloptTest, TrimThresholdCapsWhatIsKept) {
  // A threshold of 0: a freed huge block is not kept for reuse.
  ASSERT_EQ(mallopt(M_TRIM_THRESHOLD, 0), 1);
  void* p = malloc(Opaque(6 * kMiB));
  ASSERT_NE(p, nullptr);
  free(p);
  EXPECT_LT(mallinfo2().keepcost, 6 * kMiB);
  // A large threshold: it is kept, and malloc_trim would give it back.
  ASSERT_EQ(mallopt(M_TRIM_THRESHOLD, 512 << 20), 1);
  p = malloc(Opaque(6 * kMiB));
  ASSERT_NE(p, nullptr);
  free(p);
  EXPECT_GE(mallinfo2().keepcost, 6 * kMiB);
  EXPECT_EQ(malloc_trim(0), 1);
  EXPECT_LT(mallinfo2().keepcost, 6 * kMiB);
  EXPECT_EQ(mallopt(M_TRIM_THRESHOLD, -1), 0);
  ASSERT_EQ(mallopt(M_TRIM_THRESHOLD, 256 << 20), 1);  // the default again
}

TEST(MalloptTest, AcceptsWhatAppliesOnly) {
  EXPECT_EQ(mallopt(M_MMAP_THRESHOLD, 1 << 20), 1);  // hakmem's fixed threshold
  EXPECT_EQ(mallopt(M_MMAP_THRESHOLD, 64 << 10), 0);
  EXPECT_EQ(mallopt(M_ARENA_MAX, 4), 1);
  EXPECT_EQ(mallopt(M_ARENA_MAX, 0), 0);
  EXPECT_EQ(mallopt(M_ARENA_TEST, 8), 1);
  EXPECT_EQ(mallopt(M_PERTURB, 0xaa), 0);
  EXPECT_EQ(mallopt(M_MXFAST, 64), 0);
  EXPECT_EQ(mallopt(M_TOP_PAD, 4096), 0);
  EXPECT_EQ(mallopt(12345, 1), 0);
}

TEST(HakApiTest, HakFunctionsAnswerLikeTheCNames) {
  void* p = malloc(Opaque(size_t{65536}));
  const struct mallinfo2 a = hak_mallinfo2();
  const struct mallinfo2 b = mallinfo2();
  EXPECT_EQ(a.uordblks, b.uordblks);
  EXPECT_EQ(hak_mallopt(M_PERTURB, 1), 0);
  free(p);
}

}  // namespace
