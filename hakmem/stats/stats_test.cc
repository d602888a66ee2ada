#include "hakmem/stats/stats.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace hakmem::stats {
namespace {

// The test threads' fast-path counters (in hakmem, thread_cache's TLS block holds
// them).
ABSL_CONST_INIT __thread FastCounters tls_fast HAKMEM_TLS = {};

uint64_t ClassAllocs(int cls) {
  Snapshot s;
  Collect(&s);
  return s.class_allocs[cls];
}

TEST(StatsTest, CountsOfLiveAndExitedThreadsAreMerged) {
  if constexpr (!config::kStats) GTEST_SKIP() << "stats compiled out";
  const uint64_t before = ClassAllocs(5);
  std::thread live_thread;
  std::atomic<bool> counted{false}, release{false};
  live_thread = std::thread([&] {
    AttachThread(&tls_fast);
    for (int i = 0; i < 7; ++i) CountClassAlloc<0>(tls_fast, ClassCountsOffset(5));
    counted = true;
    while (!release) std::this_thread::yield();
    DetachThread();
  });
  while (!counted) std::this_thread::yield();
  EXPECT_EQ(ClassAllocs(5), before + 7);  // read while the thread still runs
  release = true;
  live_thread.join();
  EXPECT_EQ(ClassAllocs(5), before + 7);  // kept after it exited
  Snapshot start;
  Collect(&start);
  std::thread([] {
    AttachThread(&tls_fast);
    CountClassAlloc<0>(tls_fast, ClassCountsOffset(5));
    CountLocalFree<0>(tls_fast, ClassCountsOffset(5));
    CountLocalFree<0>(tls_fast, ClassCountsOffset(kNumClasses - 1));  // every class is summed
    DetachThread();
  }).join();
  EXPECT_EQ(ClassAllocs(5), before + 8);
  Snapshot end;
  Collect(&end);
  const int frees_local = static_cast<int>(Counter::k_frees_local);
  EXPECT_EQ(end.counters[frees_local], start.counters[frees_local] + 2);
}

// A thread counts while another collects: every snapshot is between the counts
// before and after, never falls, and (under --config=tsan) the reads of the
// running thread's counters are not a data race.
TEST(StatsTest, CollectWhileAnotherThreadCounts) {
  if constexpr (!config::kStats) GTEST_SKIP() << "stats compiled out";
  constexpr int kCounts = 200000;
  const uint64_t before = ClassAllocs(6);
  std::atomic<bool> done{false};
  std::thread counter([&] {
    AttachThread(&tls_fast);
    for (int i = 0; i < kCounts; ++i) {
      CountClassAlloc<0>(tls_fast, ClassCountsOffset(6));
      Count(Counter::k_cache_refills);
    }
    done = true;
    DetachThread();
  });
  uint64_t last = before;
  int snapshots = 0;
  while (!done || snapshots == 0) {
    const uint64_t now = ClassAllocs(6);
    EXPECT_GE(now, last);
    EXPECT_LE(now, before + kCounts);
    last = now;
    ++snapshots;
  }
  counter.join();
  EXPECT_EQ(ClassAllocs(6), before + kCounts);
}

TEST(StatsTest, GlobalCountersAndLanes) {
  if constexpr (!config::kStats) GTEST_SKIP() << "stats compiled out";
  Snapshot a, b;
  Collect(&a);
  Count(Counter::k_superslabs_mapped, 3);
  CountLaneAlloc(3, 5000);
  Collect(&b);
  const int mapped = static_cast<int>(Counter::k_superslabs_mapped);
  EXPECT_EQ(b.counters[mapped], a.counters[mapped] + 3);
  EXPECT_EQ(b.lane_allocs[3], a.lane_allocs[3] + 1);
  EXPECT_EQ(b.lane_bytes[3], a.lane_bytes[3] + 5000);
  EXPECT_STREQ(CounterName(Counter::k_superslabs_mapped), "superslabs_mapped");
  EXPECT_NE(CounterHelp(Counter::k_frees_remote)[0], '\0');
}

TEST(StatsTest, HistogramBuckets) {
  EXPECT_EQ(HistBucket(0), 0);
  EXPECT_EQ(HistBucket(1), 1);
  EXPECT_EQ(HistBucket(2), 2);
  EXPECT_EQ(HistBucket(3), 2);
  EXPECT_EQ(HistBucket(1024), 11);
  EXPECT_EQ(HistBucket(~size_t{0}), kNumHist - 1);
  if constexpr (!config::kStats) return;
  Snapshot a, b;
  Collect(&a);
  RecordLargeSize(300000);  // [2^18, 2^19)
  Collect(&b);
  EXPECT_EQ(b.size_hist[19], a.size_hist[19] + 1);
}

}  // namespace
}  // namespace hakmem::stats
