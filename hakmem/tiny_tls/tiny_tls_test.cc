#include "hakmem/tiny_tls/tiny_tls.h"

#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hakmem::tiny_tls {
namespace {

void* Alloc(Heap* heap, int cls) {
  bool zeroed;
  void* p = TryAlloc(cls);
  return p != nullptr ? p : Refill(heap, cls, &zeroed);
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
    void* second = Alloc(heap, 3);
    ASSERT_NE(second, nullptr);
    EXPECT_NE(second, first);
    Free(heap, 3, first);
    EXPECT_TRUE(IsCached(3, first));
    EXPECT_EQ(TryAlloc(3), first);  // LIFO: the hottest block comes back first
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

// A refill from a new slab links no block: the cache gets the slab's untouched
// tail as a range and hands its blocks out in order, writing none before.
TEST(TinyTlsTest, NewSlabIsCarvedLazily) {
  std::thread([] {
    Heap* heap = AttachHeap();
    const int cls = 9;  // 160 bytes: a class no other test here uses
    const size_t size = kSizeClasses[cls].size;
    bool zeroed = false;
    char* first = static_cast<char*>(Refill(heap, cls, &zeroed));
    ASSERT_NE(first, nullptr);
    const SlabMeta* slab = SlabOf(SuperSlabOf(first), first);
    EXPECT_EQ(zeroed, slab->fresh);
    const CarvedRange& range = tls_tiny.ranges[cls];
    EXPECT_EQ(range.next, first + size);
    EXPECT_EQ(range.end, slab->end);
    EXPECT_EQ(slab->bump, slab->end) << "the whole tail went to the cache";
    EXPECT_EQ(slab->used, slab->capacity);
    EXPECT_EQ(tls_tiny.lists[cls].count, 0u);
    EXPECT_EQ(TryAlloc(cls), nullptr) << "nothing was linked";
    if (zeroed) {
      // Untouched: no link or tag was written into any block of the range.
      for (const char* p = range.next; p < range.end; p += size) {
        ASSERT_EQ(reinterpret_cast<const uint64_t*>(p)[0], 0u);
        ASSERT_EQ(reinterpret_cast<const uint64_t*>(p)[1], 0u);
      }
    }
    EXPECT_TRUE(IsCached(cls, first + 5 * size)) << "a block of the range is free";
    char* second = static_cast<char*>(Refill(heap, cls, &zeroed));
    EXPECT_EQ(second, first + size);
    Free(heap, cls, first);
    Free(heap, cls, second);
    // Back to the slab: the range as its bump region again, the blocks on lists.
    FlushAll(heap);
    EXPECT_EQ(tls_tiny.ranges[cls].next, tls_tiny.ranges[cls].end);
    if (slab->cls == cls) {  // not released
      EXPECT_EQ(slab->used, 0u);
      EXPECT_EQ(slab->bump, first + 2 * size);
    }
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
