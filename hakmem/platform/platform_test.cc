#include "hakmem/platform/platform.h"

#include <errno.h>
#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hakmem::platform {
namespace {

TEST(PlatformTest, ReserveHonoursAlignmentAndIsWritable) {
  for (size_t alignment : {kPageSize, size_t{64} << 10, size_t{2} << 20, size_t{4} << 20}) {
    const size_t size = 3 * kPageSize;
    char* p = static_cast<char*>(Reserve(size, alignment));
    ASSERT_NE(p, nullptr) << alignment;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u) << alignment;
    memset(p, 0xab, size);
    EXPECT_EQ(p[size - 1], static_cast<char>(0xab));
    EXPECT_TRUE(Release(p, size));
  }
}

// base + offset is aligned; an offset outside the range is refused.
TEST(PlatformTest, ReserveWithOffsetAlignsThePointInside) {
  const size_t alignment = size_t{64} << 20;
  const size_t offset = size_t{2} << 20;
  const size_t size = size_t{4} << 20;
  char* p = static_cast<char*>(Reserve(size, alignment, offset));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p + offset) % alignment, 0u);
  memset(p, 1, size);
  EXPECT_TRUE(Release(p, size));
  errno = 0;
  EXPECT_EQ(Reserve(size, alignment, size), nullptr);  // offset must lie inside
  EXPECT_EQ(errno, EINVAL);
}

TEST(PlatformTest, FormatUnsignedWritesDigitsWithPadding) {
  char out[20];
  EXPECT_EQ(std::string(out, FormatUnsigned(0, 10, 1, out)), "0");
  EXPECT_EQ(std::string(out, FormatUnsigned(1234567890, 10, 1, out)), "1234567890");
  EXPECT_EQ(std::string(out, FormatUnsigned(UINT64_MAX, 10, 1, out)), "18446744073709551615");
  EXPECT_EQ(std::string(out, FormatUnsigned(0xbeef, 16, 8, out)), "0000beef");
  EXPECT_EQ(std::string(out, FormatUnsigned(UINT64_MAX, 16, 1, out)), "ffffffffffffffff");
  EXPECT_EQ(std::string(out, FormatUnsigned(7, 10, 3, out)), "007");
}

TEST(PlatformTest, RefusedReservationReturnsErrorInsteadOfAborting) {
  errno = 0;
  // 2^62 bytes: more address space than any x86-64 process has.
  EXPECT_EQ(Reserve(size_t{1} << 62, size_t{2} << 20), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(Reserve(size_t{1} << 62, kPageSize), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(PlatformTest, ReserveRejectsBadArguments) {
  errno = 0;
  EXPECT_EQ(Reserve(kPageSize, 3 * kPageSize), nullptr);  // not a power of two
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(Reserve(100, kPageSize), nullptr);  // not a page multiple
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(Reserve(0, kPageSize), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(PlatformTest, DecommitZeroesAndKeepsTheRangeUsable) {
  const size_t size = 4 * kPageSize;
  char* p = static_cast<char*>(Reserve(size, kPageSize));
  ASSERT_NE(p, nullptr);
  memset(p, 7, size);
  ASSERT_TRUE(Decommit(p, size));
  for (size_t i = 0; i < size; i += 512) ASSERT_EQ(p[i], 0) << i;
  p[10] = 1;  // still mapped and writable
  EXPECT_TRUE(Populate(p, size));
  EXPECT_EQ(p[10], 1);
  EXPECT_TRUE(Release(p, size));
}

TEST(PlatformTest, MovePagesKeepsContents) {
  const size_t old_size = 2 * kPageSize, new_size = 8 * kPageSize;
  char* from = static_cast<char*>(Reserve(old_size, kPageSize));
  char* to = static_cast<char*>(Reserve(new_size, kPageSize));
  ASSERT_NE(from, nullptr);
  ASSERT_NE(to, nullptr);
  for (size_t i = 0; i < old_size; ++i) from[i] = static_cast<char>(i * 7);
  ASSERT_EQ(MovePages(from, old_size, to, new_size), MoveResult::kMoved);
  for (size_t i = 0; i < old_size; ++i) ASSERT_EQ(to[i], static_cast<char>(i * 7));
  EXPECT_EQ(to[new_size - 1], 0);
  EXPECT_TRUE(Release(to, new_size));
}

TEST(PlatformTest, EverySyscallIsCounted) {
  const uint64_t mmaps = SyscallCount(Syscall::k_mmap);
  const uint64_t munmaps = SyscallCount(Syscall::k_munmap);
  const uint64_t madvises = SyscallCount(Syscall::k_madvise);
  void* p = Reserve(kPageSize, kPageSize);
  ASSERT_NE(p, nullptr);
  Decommit(p, kPageSize);
  Release(p, kPageSize);
  EXPECT_EQ(SyscallCount(Syscall::k_mmap), mmaps + 1);
  EXPECT_EQ(SyscallCount(Syscall::k_munmap), munmaps + 1);
  EXPECT_EQ(SyscallCount(Syscall::k_madvise), madvises + 1);
  EXPECT_STREQ(SyscallName(Syscall::k_mmap), "mmap");
  EXPECT_STREQ(SyscallName(Syscall::k_read), "read");
}

// A Wakeup's sleeper sleeps until it is woken or its timeout passes; a Wake()
// while nobody is armed does nothing (the next Wait still sleeps).
TEST(PlatformTest, WakeupSleepsUntilWokenOrTimedOut) {
  Wakeup wakeup;
  wakeup.Wake();  // nobody armed: no effect
  wakeup.Arm();
  uint64_t start = NowNanos();
  EXPECT_FALSE(wakeup.Wait(50'000'000)) << "nobody woke it: the timeout";
  EXPECT_GE(NowNanos() - start, 40'000'000u);
  wakeup.Disarm();

  wakeup.Arm();
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    wakeup.Wake();
  });
  start = NowNanos();
  EXPECT_TRUE(wakeup.Wait(30'000'000'000)) << "woken, not timed out";
  EXPECT_LT(NowNanos() - start, 10'000'000'000u);
  waker.join();
  wakeup.Disarm();

  // Woken before it sleeps (between Arm and Wait): Wait returns at once.
  wakeup.Arm();
  wakeup.Wake();
  start = NowNanos();
  EXPECT_TRUE(wakeup.Wait(30'000'000'000));
  EXPECT_LT(NowNanos() - start, 10'000'000'000u);
  wakeup.Disarm();
}

TEST(PlatformTest, ThreadIdsAreStableAndDistinct) {
  const uint32_t mine = ThreadId();
  EXPECT_NE(mine, 0u);
  EXPECT_EQ(ThreadId(), mine);
  std::vector<uint32_t> ids(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) threads.emplace_back([&ids, i] { ids[i] = ThreadId(); });
  for (auto& t : threads) t.join();
  std::set<uint32_t> unique(ids.begin(), ids.end());
  unique.insert(mine);
  EXPECT_EQ(unique.size(), 9u);
}

TEST(PlatformTest, DiagLineFormatsWithoutAllocating) {
  DiagLine line;
  line.Str("a=")
      .Dec(0)
      .Str(" b=")
      .Dec(18446744073709551615u)
      .Str(" c=")
      .Hex(0xdeadbeef)
      .Str(" d=")
      .SignedDec(-42)
      .Str(" e=")
      .SignedDec(INT64_MIN);
  EXPECT_STREQ(line.text(), "a=0 b=18446744073709551615 c=0xdeadbeef d=-42 e=-9223372036854775808");
  DiagLine padded;
  padded.Str("x").Pad(4).Str("y");
  EXPECT_STREQ(padded.text(), "x   y");
  DiagLine longline;
  for (int i = 0; i < 100; ++i) longline.Str("0123456789");
  EXPECT_EQ(longline.size(), 511u);  // cut, never overflowing
}

TEST(PlatformTest, EnvironmentAndFiles) {
  setenv("HAKMEM_PLATFORM_TEST", "xyz", 1);
  ASSERT_NE(GetEnv("HAKMEM_PLATFORM_TEST"), nullptr);
  EXPECT_STREQ(GetEnv("HAKMEM_PLATFORM_TEST"), "xyz");
  EXPECT_EQ(GetEnv("HAKMEM_PLATFORM_TEST_UNSET"), nullptr);
  char buffer[64];
  EXPECT_GT(ReadSmallFile("/proc/self/stat", buffer, sizeof(buffer)), 0);
  EXPECT_EQ(strlen(buffer), 63u);
  EXPECT_EQ(ReadSmallFile("/nonexistent/file", buffer, sizeof(buffer)), -1);
}

TEST(PlatformTest, ClockIsMonotonic) {
  const uint64_t a = NowNanos();
  const uint64_t b = NowNanos();
  EXPECT_LE(a, b);
  EXPECT_GT(a, 0u);
}

TEST(PlatformDeathTest, FatalWritesAndAborts) {
  EXPECT_DEATH(Fatal("broken invariant"), "hakmem: fatal: broken invariant");
}

}  // namespace
TEST(PlatformTest, ThpModeIsTheBracketedWord) {
  EXPECT_EQ(ParseThpMode("always [madvise] never\n"), ThpMode::kMadvise);
  EXPECT_EQ(ParseThpMode("[always] madvise never\n"), ThpMode::kAlways);
  EXPECT_EQ(ParseThpMode("always madvise [never]\n"), ThpMode::kNever);
  EXPECT_EQ(ParseThpMode("garbage"), ThpMode::kNever);
}

TEST(PlatformTest, DefragModesThatCompactOnAnAdvisedFaultStall) {
  EXPECT_TRUE(ParseThpDefragStalls("always defer defer+madvise [madvise] never\n"));
  EXPECT_TRUE(ParseThpDefragStalls("[always] defer defer+madvise madvise never\n"));
  EXPECT_TRUE(ParseThpDefragStalls("always defer [defer+madvise] madvise never\n"));
  EXPECT_FALSE(ParseThpDefragStalls("always [defer] defer+madvise madvise never\n"));
  EXPECT_FALSE(ParseThpDefragStalls("always defer defer+madvise madvise [never]\n"));
  EXPECT_TRUE(ParseThpDefragStalls("unreadable"));
}

}  // namespace hakmem::platform
