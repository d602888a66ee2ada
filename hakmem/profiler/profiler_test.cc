#include "hakmem/profiler/profiler.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hakmem::profiler {
namespace {

// Fake block addresses: the profiler never dereferences them.
uintptr_t FakeAddress(uint64_t i) { return 0x100000000000ull + i * 64; }

__attribute__((noinline)) int Inner(uintptr_t* pcs, int max) {
  const int depth = CaptureStack(pcs, max);
  asm volatile("" ::: "memory");  // no tail call: Inner keeps its frame
  return depth;
}

__attribute__((noinline)) int Outer(uintptr_t* pcs, int max) {
  const int depth = Inner(pcs, max);
  asm volatile("" ::: "memory");
  return depth;
}

bool Within(uintptr_t pc, void* function) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(function);
  return pc > start && pc < start + 256;
}

TEST(CaptureStackTest, StartsAtTheCallerAndWalksUp) {
  uintptr_t pcs[64];
  const int depth = Outer(pcs, 64);
  ASSERT_GE(depth, 3);
  EXPECT_TRUE(Within(pcs[0], reinterpret_cast<void*>(&Inner))) << std::hex << pcs[0];
  EXPECT_TRUE(Within(pcs[1], reinterpret_cast<void*>(&Outer))) << std::hex << pcs[1];
}

TEST(CaptureStackTest, StopsAtMaxDepth) {
  uintptr_t pcs[2];
  EXPECT_EQ(Outer(pcs, 2), 2);
}

void* CaptureInThread(void* arg) {
  int* depth = static_cast<int*>(arg);
  uintptr_t pcs[64];
  *depth = Outer(pcs, 64);
  return nullptr;
}

TEST(CaptureStackTest, EndsCleanlyOnAThreadStack) {
  int depth = -1;
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, nullptr, CaptureInThread, &depth), 0);
  pthread_join(thread, nullptr);
  EXPECT_GE(depth, 2);
  EXPECT_LT(depth, 64);  // the walk stops at the top of the thread's stack
}

// A frame chain whose links lead off the stack (as a function built without
// frame pointers may leave): the walk stops instead of reading them.
__attribute__((noinline)) int CaptureWithBadFramePointer(uintptr_t* pcs, uintptr_t bad) {
  int depth;
  asm volatile(
      "mov %%rsp, %%r12\n\t"
      "sub $128, %%rsp\n\t"  // past the red zone
      "and $-16, %%rsp\n\t"
      "push %%rbp\n\t"
      "mov %[bad], %%rbp\n\t"
      "push %%rbp\n\t"  // a fake frame whose caller link is `bad`
      "mov %%rsp, %%rbp\n\t"
      "mov %[pcs], %%rdi\n\t"
      "mov $64, %%esi\n\t"
      "call *%[fn]\n\t"
      "mov 8(%%rsp), %%rbp\n\t"
      "mov %%r12, %%rsp\n\t"
      : "=a"(depth)
      : [bad] "r"(bad), [pcs] "r"(pcs), [fn] "r"(&CaptureStack)
      : "rdi", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11", "r12", "memory", "cc");
  return depth;
}

TEST(CaptureStackTest, NeverFollowsAFramePointerOffTheStack) {
  uintptr_t pcs[64];
  for (uintptr_t bad : {uintptr_t{0}, uintptr_t{8}, uintptr_t{0xdeadbeef},
                        uintptr_t{0x7ffffffff000}, ~uintptr_t{0} - 64}) {
    const int depth = CaptureWithBadFramePointer(pcs, bad);
    EXPECT_GE(depth, 1);  // the frame CaptureStack's caller made
    EXPECT_LE(depth, 2);
  }
}

class SamplerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { EnableForTesting(nullptr, kRate, 7); }
  static constexpr uint64_t kRate = 64 * 1024;
};

// The points of a run of B bytes vary by sqrt(B / rate / 12) (intervals uniform
// in [rate/2, 3 rate/2)): a bound 5 of those wide.
double RunBound(double bytes, double rate) { return 5 * std::sqrt(bytes / rate / 12); }

TEST_F(SamplerTest, SamplesInProportionToBytes) {
  ASSERT_TRUE(Enabled());
  const Totals before = GetTotals();
  // 20000 blocks of 16 KiB, each below rate/2: one point at most, so a block is
  // sampled with probability 16 KiB / 64 KiB.
  constexpr int kBlocks = 20000;
  constexpr size_t kSize = 16 * 1024;
  for (int i = 0; i < kBlocks; ++i) OnAlloc(reinterpret_cast<void*>(FakeAddress(i)), kSize);
  const Totals during = GetTotals();
  const double bytes = double{kBlocks} * kSize;
  const double sampled = static_cast<double>(during.live_samples - before.live_samples);
  EXPECT_NEAR(sampled, bytes / kRate, RunBound(bytes, kRate));
  EXPECT_EQ(during.live_bytes - before.live_bytes,
            (during.live_samples - before.live_samples) * kSize);
  // Each sample stands for rate bytes.
  EXPECT_EQ(during.live_bytes_estimate - before.live_bytes_estimate,
            (during.live_samples - before.live_samples) * kRate);
  EXPECT_EQ(during.dropped, 0u);
  EXPECT_EQ(during.recursive, 0u);
  // Every sampled block is forgotten when freed; unsampled frees change nothing.
  for (int i = 0; i < kBlocks; ++i) OnFree(reinterpret_cast<void*>(FakeAddress(i)));
  const Totals after = GetTotals();
  EXPECT_EQ(after.live_samples, before.live_samples);
  EXPECT_EQ(after.live_bytes, before.live_bytes);
  EXPECT_EQ(after.samples, during.samples);
}

// A thread cache in profiling mode: a refill returns one block (offered to the
// sampler) and caches UnsampledBlocks more, which are handed out unseen. The
// number of sampled blocks must still be what sampling every block would give.
TEST_F(SamplerTest, RefillsThatCacheUnsampledBlocksKeepTheSamplingRate) {
  constexpr int kBlocks = 40000;
  constexpr size_t kSize = 8 * 1024;
  constexpr int kBatch = 16;
  const Totals before = GetTotals();
  int cached = 0;
  int seen = 0;
  for (int i = 0; i < kBlocks; ++i) {
    if (cached > 0) {
      --cached;  // a fast-path pop
      continue;
    }
    cached = UnsampledBlocks(kSize, kBatch - 1);
    ASSERT_GE(cached, 0);
    ASSERT_LE(cached, kBatch - 1);
    OnAlloc(reinterpret_cast<void*>(FakeAddress(i)), kSize);
    ++seen;
  }
  EXPECT_LT(seen, kBlocks / 2);  // most blocks came from the cache
  const Totals during = GetTotals();
  const double bytes = double{kBlocks} * kSize;
  const double sampled = static_cast<double>(during.live_samples - before.live_samples);
  EXPECT_NEAR(sampled, bytes / kRate, RunBound(bytes, kRate));
  for (int i = 0; i < kBlocks; ++i) OnFree(reinterpret_cast<void*>(FakeAddress(i)));
  EXPECT_EQ(GetTotals().live_samples, before.live_samples);
}

// The estimate is unbiased for any mix of sizes, small and far above the rate:
// a stream of 16 B .. 1 MiB blocks (a few up to 16 rates) comes out within a
// few percent of its bytes, and what it stands for goes when it is freed.
TEST_F(SamplerTest, EstimateOfMixedSizesIsItsBytes) {
  const Totals before = GetTotals();
  constexpr int kBlocks = 60000;
  uint64_t bytes = 0;
  uint64_t x = 12345;
  for (int i = 0; i < kBlocks; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    // Sizes spread over 2^4 .. 2^20 bytes, log-uniformly.
    const size_t size = size_t{16} << ((x >> 33) % 17);
    bytes += size;
    OnAlloc(reinterpret_cast<void*>(FakeAddress(i)), size);
  }
  const Totals during = GetTotals();
  const double estimate =
      static_cast<double>(during.live_bytes_estimate - before.live_bytes_estimate);
  EXPECT_NEAR(estimate, static_cast<double>(bytes), 0.03 * static_cast<double>(bytes));
  EXPECT_EQ(during.dropped, 0u);
  for (int i = 0; i < kBlocks; ++i) OnFree(reinterpret_cast<void*>(FakeAddress(i)));
  EXPECT_EQ(GetTotals().live_bytes_estimate, before.live_bytes_estimate);
}

TEST_F(SamplerTest, FreesInAnyOrderLeaveTheTableConsistent) {
  const Totals before = GetTotals();
  // Large blocks are always sampled: 30000 live entries, several per shard slot
  // run, erased in a scrambled order and checked after each half.
  constexpr int kBlocks = 30000;
  for (int i = 0; i < kBlocks; ++i) OnAlloc(reinterpret_cast<void*>(FakeAddress(i)), 64 << 20);
  EXPECT_EQ(GetTotals().live_samples - before.live_samples, uint64_t{kBlocks});
  for (int i = 0; i < kBlocks; i += 2)
    OnFree(reinterpret_cast<void*>(FakeAddress((i * 7919) % kBlocks)));
  EXPECT_EQ(GetTotals().live_samples - before.live_samples, uint64_t{kBlocks / 2});
  for (int i = 0; i < kBlocks; ++i) OnFree(reinterpret_cast<void*>(FakeAddress(i)));
  EXPECT_EQ(GetTotals().live_samples, before.live_samples);
  EXPECT_EQ(GetTotals().dropped, 0u);
}

TEST_F(SamplerTest, DumpWritesTheGperftoolsHeapFormat) {
  for (int i = 0; i < 100; ++i) OnAlloc(reinterpret_cast<void*>(FakeAddress(i)), 1 << 20);
  const std::string path =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/profiler_test.heap";
  ASSERT_EQ(Dump(path.c_str()), 0) << errno;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  EXPECT_EQ(s.rfind("heap profile: ", 0), 0u) << s.substr(0, 200);
  const size_t header_end = s.find('\n');
  // Estimates (pprof takes a "heapprofile" as it is): 100 blocks of 1 MiB, each
  // with 16 points of 64 KiB on average.
  EXPECT_NE(s.substr(0, header_end).find("] @ heapprofile"), std::string::npos) << s.substr(0, 200);
  // One line per stack: "<n>: <bytes> [<n>: <bytes>] @ 0x...".
  const std::string line = s.substr(header_end + 1, s.find('\n', header_end + 1) - header_end - 1);
  EXPECT_NE(line.find("] @ 0x"), std::string::npos) << line;
  EXPECT_NE(s.find("\nMAPPED_LIBRARIES:\n"), std::string::npos);
  EXPECT_NE(s.find("[stack]"), std::string::npos);  // /proc/self/maps follows
  for (int i = 0; i < 100; ++i) OnFree(reinterpret_cast<void*>(FakeAddress(i)));
}

}  // namespace
}  // namespace hakmem::profiler
