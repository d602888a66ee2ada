#include "hakmem/pool_tls/pool_tls.h"

#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/stats/stats.h"

namespace hakmem::pool_tls {
namespace {

void* Alloc(Heap* heap, int cls) {
  bool zeroed;
  void* p = TryAlloc(cls);
  return p != nullptr ? p : Refill(heap, cls, &zeroed);
}

void Free(Heap* heap, int cls, void* p) {
  if (!TryFree(cls, p)) Flush(heap, cls, p);
}

TEST(PoolTlsTest, EveryPoolClassRoundTripsWithContents) {
  std::thread([] {
    Heap* heap = AttachHeap();
    for (int cls = kFirstPoolClass; cls < kNumClasses; ++cls) {
      const size_t size = kSizeClasses[cls].size;
      std::vector<void*> blocks;
      for (int i = 0; i < 2 * kSizeClasses[cls].cache_max + 3; ++i) {
        char* p = static_cast<char*>(Alloc(heap, cls));
        ASSERT_NE(p, nullptr) << cls;
        ASSERT_EQ(SlabOf(SuperSlabOf(p), p)->cls, cls);
        p[0] = static_cast<char>(i);
        p[size - 1] = static_cast<char>(i);
        blocks.push_back(p);
      }
      ASSERT_EQ(std::set<void*>(blocks.begin(), blocks.end()).size(), blocks.size());
      for (size_t i = 0; i < blocks.size(); ++i) {
        char* p = static_cast<char*>(blocks[i]);
        ASSERT_EQ(p[size - 1], static_cast<char>(i));
        Free(heap, cls, p);
        if constexpr (config::kPoolTls) {
          const FreeList& list = tls_pool.lists[cls - kFirstPoolClass];
          ASSERT_LE(list.count, list.max);
          if constexpr (!config::kAce) ASSERT_EQ(list.max, kSizeClasses[cls].cache_max);
        }
      }
    }
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

TEST(PoolTlsTest, CacheServesRepeatsWithoutTheHeap) {
  if constexpr (!config::kPoolTls) GTEST_SKIP() << "pool_tls=off build";
  std::thread([] {
    Heap* heap = AttachHeap();
    const int cls = PoolClass(20000);
    void* p = Alloc(heap, cls);
    Free(heap, cls, p);
    EXPECT_TRUE(IsCached(cls, p));
    EXPECT_EQ(TryAlloc(cls), p);
    Free(heap, cls, p);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

// A class whose working set breathes past its fixed limit (7 blocks of 36 KiB)
// makes ACE raise the limit until the cache holds the whole cycle: no refill and
// no flush after that. With hakmem_ace=off the limit stays and every cycle
// refills and flushes.
TEST(PoolTlsTest, AceGrowsABreathingClassUntilItStopsRefilling) {
  if constexpr (!config::kPoolTls) GTEST_SKIP() << "pool_tls=off build";
  std::thread([] {
    Heap* heap = AttachHeap();
    const int cls = PoolClass(36000);
    const FreeList& list = tls_pool.lists[cls - kFirstPoolClass];
    std::vector<void*> blocks(20);
    auto cycle = [&] {
      for (void*& p : blocks) {
        p = Alloc(heap, cls);
        ASSERT_NE(p, nullptr);
      }
      for (void* p : blocks) Free(heap, cls, p);
    };
    for (int i = 0; i < 10; ++i) cycle();
    auto events = [] {
      const auto& c = stats::tls_counters.counters;
      return c[static_cast<int>(stats::Counter::k_cache_refills)] +
             c[static_cast<int>(stats::Counter::k_cache_flushes)];
    };
    const uint64_t before = events();
    for (int i = 0; i < 100; ++i) cycle();
    const uint64_t during = events() - before;
    if constexpr (config::kAce) {
      EXPECT_GE(list.max, blocks.size());
      EXPECT_LE(list.max, ace::CapLimit(ace::tls_ace, cls));
      if constexpr (config::kStats) EXPECT_EQ(during, 0u);
    } else {
      EXPECT_EQ(list.max, kSizeClasses[cls].cache_max);
      if constexpr (config::kStats) EXPECT_GE(during, 100u);
    }
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

// When ACE lowers a class's limit (here: idle for two windows while another
// class has events), the next slow path of the pool caches cuts that list to
// its new limit and gives the rest back to the slabs.
TEST(PoolTlsTest, AceLoweredLimitsCutTheirListsAtTheNextSlowPath) {
  if constexpr (!config::kPoolTls || !config::kAce) GTEST_SKIP() << "pool_tls or ace off";
  std::thread([] {
    Heap* heap = AttachHeap();
    const int idle = PoolClass(4096);  // fixed limit 64, batch 32
    const int busy = PoolClass(100000);
    const FreeList& list = tls_pool.lists[idle - kFirstPoolClass];
    std::vector<void*> filled;  // 32 blocks cached (below the fixed limit: no flush)
    for (int i = 0; i < 32; ++i) filled.push_back(Alloc(heap, idle));
    for (void* b : filled) Free(heap, idle, b);
    ASSERT_EQ(list.count, 32u);
    const uint32_t limit = list.max;
    std::vector<void*> cached;
    for (void* p = list.head; p != nullptr; p = LoadLink(p)) cached.push_back(p);
    // Windows of events of another class (its own slow paths, taken here through
    // ACE directly) until the idle class's limit, halved at each scan that finds
    // it idle for a whole window, is below the 32 blocks its list holds (the 32
    // came through a few refills, each an event of the idle class, which may
    // have grown its limit first).
    for (uint32_t i = 0; i < 16 * ace::kWindow && ace::LimitOf(ace::tls_ace, idle) >= 32; ++i) {
      ace::OnEvent(&ace::tls_ace, busy);
    }
    const uint32_t lowered = ace::LimitOf(ace::tls_ace, idle);
    ASSERT_LT(lowered, 32u) << "below what the list holds";
    ASSERT_LT(lowered, limit);
    EXPECT_EQ(list.max, limit) << "not taken until a slow path of these caches";
    void* p = Alloc(heap, busy);  // a refill of the busy class: a slow path
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(list.max, lowered);
    EXPECT_EQ(list.count, lowered);
    int still_cached = 0;
    for (void* b : cached) still_cached += IsCached(idle, b) ? 1 : 0;
    EXPECT_EQ(still_cached, static_cast<int>(lowered));
    // The rest went back to their slabs: the next allocations are the cached
    // ones, then TryAlloc finds the list empty.
    std::vector<void*> popped;
    for (uint32_t i = 0; i < lowered; ++i) popped.push_back(TryAlloc(idle));
    EXPECT_EQ(std::set<void*>(popped.begin(), popped.end()).size(), lowered);
    EXPECT_EQ(TryAlloc(idle), nullptr);
    for (void* b : popped) Free(heap, idle, b);
    Free(heap, busy, p);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

TEST(PoolTlsTest, PrewarmFillsCommonClassesWhenEnabled) {
  std::thread([] {
    Heap* heap = AttachHeap();
    Prewarm(heap);
    const bool warmed = TryAlloc(PoolClass(2000)) != nullptr;
    EXPECT_EQ(warmed, config::kPoolTls && config::kPrewarm);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

}  // namespace
}  // namespace hakmem::pool_tls
