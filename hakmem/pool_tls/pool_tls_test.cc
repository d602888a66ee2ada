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
          ASSERT_LE(tls_pool.lists[cls - kFirstPoolClass].count, kSizeClasses[cls].cache_max);
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
