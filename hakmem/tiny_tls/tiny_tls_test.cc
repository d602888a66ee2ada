#include "hakmem/tiny_tls/tiny_tls.h"

#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hakmem::tiny_tls {
namespace {

void* Alloc(Heap* heap, int cls) {
  void* p = TryAlloc(cls);
  return p != nullptr ? p : Refill(heap, cls);
}

void Free(Heap* heap, int cls, void* p) {
  if (!TryFree(cls, p)) Flush(heap, cls, p);
}

TEST(TinyTlsTest, EmptyCacheRefillsThenServesLocally) {
  std::thread([] {
    EXPECT_EQ(TryAlloc(3), nullptr);  // the constant-initialised empty state
    Heap* heap = AttachHeap();
    void* first = Alloc(heap, 3);
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(tls_tiny.lists[3].count, static_cast<uint32_t>(kSizeClasses[3].batch - 1));
    EXPECT_NE(TryAlloc(3), nullptr);  // served from the batch
    Free(heap, 3, first);
    EXPECT_TRUE(IsCached(3, first));
    EXPECT_EQ(TryAlloc(3), first);  // LIFO: the hottest block comes back first
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

TEST(TinyTlsTest, FullListFlushesABatchAndKeepsTheBound) {
  std::thread([] {
    Heap* heap = AttachHeap();
    for (int cls : {0, 15, kNumTinyClasses - 1}) {
      const int n = 3 * kSizeClasses[cls].cache_max;
      std::vector<void*> blocks;
      for (int i = 0; i < n; ++i) {
        void* p = Alloc(heap, cls);
        ASSERT_NE(p, nullptr);
        memset(p, i, kSizeClasses[cls].size);
        blocks.push_back(p);
      }
      EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()).size(), blocks.size());
      for (void* p : blocks) {
        Free(heap, cls, p);
        ASSERT_LE(tls_tiny.lists[cls].count, tls_tiny.lists[cls].max);
        if constexpr (!config::kAce) {
          ASSERT_EQ(tls_tiny.lists[cls].max, kSizeClasses[cls].cache_max);
        }
      }
      EXPECT_GE(tls_tiny.lists[cls].count, 1u);
    }
    FlushAll(heap);
    for (const FreeList& list : tls_tiny.lists) EXPECT_EQ(list.head, nullptr);
    AbandonHeap();
  }).join();
}

}  // namespace
}  // namespace hakmem::tiny_tls
