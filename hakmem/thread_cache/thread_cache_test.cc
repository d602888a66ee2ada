#include "hakmem/thread_cache/thread_cache.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/stats/stats.h"

namespace hakmem::thread_cache {
namespace {

void* Alloc(Heap* heap, int cls) {
  bool zeroed;
  void* p = TryAlloc(cls);
  return p != nullptr ? p : Refill(heap, cls, &zeroed);
}

void Free(Heap* heap, int cls, void* p) {
  if (!TryFree(cls, p)) Flush(heap, cls, p);
}

// A list keeps its end (bottom + limit), not its count or room: a push or pop
// moves top alone, a new limit moves end and keeps the blocks, and a list may
// hold more than its limit (room below 0: an uncached list holding blocks, or a
// limit ACE just lowered), which refuses every push. (A cache of its own on
// slots of its own, holding real blocks: a push tags its block, and a hardened
// build's live map must find it.)
TEST(ThreadCacheTest, EndFollowsTheLimitAndRoomFollowsTop) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int cls = 3;
    std::vector<void*> blocks;
    for (int i = 0; i < 11; ++i) blocks.push_back(Alloc(heap, cls));
    static void* slots[128];
    static ThreadCache cache;  // (10 KiB: not on the stack)
    cache = ThreadCache::Empty();
    slots[0] = nullptr;  // the bottom's sentinel
    cache.UseSlots(cls, &slots[1], 127, 64);
    EXPECT_EQ(cache.lists[cls].Room(), 64);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(cache.Push(cls, blocks[i]));
    EXPECT_EQ(cache.lists[cls].Room(), 54);
    EXPECT_EQ(cache.Count(cls), 10u);
    EXPECT_EQ(cache.Bottom(cls), &slots[1]);
    EXPECT_EQ(cache.Head(cls), blocks[9]);
    cache.SetLimit(cls, 8);  // lowered below the count: room < 0, the caller trims
    EXPECT_EQ(cache.Count(cls), 10u);
    EXPECT_EQ(cache.lists[cls].Room(), -2);
    EXPECT_FALSE(cache.Push(cls, blocks[10]));
    EXPECT_EQ(cache.Count(cls), 10u);
    cache.SetLimit(cls, 0);  // uncached, holding 10
    EXPECT_EQ(cache.Count(cls), 10u);
    EXPECT_EQ(cache.Bottom(cls), &slots[1]);
    EXPECT_EQ(cache.Pop(cls), blocks[9]);  // a pop takes the newest, whatever the limit
    EXPECT_EQ(cache.Count(cls), 9u);
    cache.SetLimit(cls, 100);
    EXPECT_EQ(cache.lists[cls].Room(), 91);
    EXPECT_EQ(cache.Bottom(cls), &slots[1]);
    // Every block handed out again, newest first, then freed for real.
    for (int i = 8; i >= 0; --i) ASSERT_EQ(cache.Pop(cls), blocks[i]) << i;
    EXPECT_EQ(cache.Pop(cls), nullptr);
    EXPECT_EQ(cache.Count(cls), 0u);
    for (void* p : blocks) Free(heap, cls, p);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

// Before its heap is attached a thread's lists have no slots and no room: a pop
// reads the shared sentinel (nullptr), a push is refused; attached, each list's
// stack is its class's slots in the heap; detached, they have none again.
TEST(ThreadCacheTest, ListsUseTheHeapsSlotsOnlyWhileAttached) {
  std::thread([] {
    for (const FreeList& list : tls_cache.lists) {
      ASSERT_EQ(list.top, ThreadCache::NoSlots().top);
      ASSERT_EQ(list.Room(), 0);
    }
    alignas(16) char dummy[16];
    EXPECT_EQ(TryAlloc(5), nullptr);
    EXPECT_FALSE(TryFree(5, dummy));
    Heap* heap = thread_cache::AttachHeap();
    for (int cls = 0; cls < kNumClasses; ++cls) {
      const FreeList& list = tls_cache.lists[cls];
      ASSERT_EQ(list.top, PackedSlotsOf(heap, cls)) << cls;
      ASSERT_EQ(list.top[-1], nullptr) << "the bottom's sentinel of class " << cls;
      ASSERT_EQ(tls_cache.Limit(cls), ThreadCache::LaneInitialLimit(cls)) << cls;
      ASSERT_EQ(tls_cache.Count(cls), 0u) << cls;
    }
    void* p = Alloc(heap, 5);
    void* q = Alloc(heap, 5);
    Free(heap, 5, p);
    Free(heap, 5, q);
    const FreeList& list = tls_cache.lists[5];
    EXPECT_GE(tls_cache.Count(5), 2u);
    EXPECT_EQ(list.top[-1], q);
    Detach(heap);
    for (const FreeList& list : tls_cache.lists) {
      ASSERT_EQ(list.top, ThreadCache::NoSlots().top);
      ASSERT_EQ(list.Room(), 0);
    }
    for (int cls = 0; cls < kNumClasses; ++cls) ASSERT_EQ(tls_cache.Limit(cls), 0u) << cls;
    EXPECT_EQ(TryAlloc(5), nullptr);
    AbandonHeap();
  }).join();
}

// Every stack starts in the heap's packed slots, 31 blocks deep; a free that
// finds them full below the list's limit moves the stack to its own slots,
// blocks in order, instead of flushing, and the neighbouring class's packed
// stack is untouched.
TEST(ThreadCacheTest, FreesBeyondThePackedSlotsMoveTheStack) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int cls = 12;  // 208 bytes, 78 to a slab: a class no other test here uses
    std::vector<void*> blocks;
    for (uint32_t i = 0; i < kPackedStackSlots + 8; ++i) blocks.push_back(Alloc(heap, cls));
    while (void* p = TryAlloc(cls)) blocks.push_back(p);  // the stack empty
    const uint32_t n = static_cast<uint32_t>(blocks.size());
    ASSERT_GE(tls_cache.Limit(cls), n);
    ASSERT_TRUE(tls_cache.Packed(cls)) << "one slab's range, one refill from the heap";
    for (uint32_t i = 0; i < kPackedStackSlots - 1; ++i) Free(heap, cls, blocks[i]);
    EXPECT_TRUE(tls_cache.Packed(cls));
    EXPECT_EQ(tls_cache.Bottom(cls), PackedSlotsOf(heap, cls));
    EXPECT_EQ(tls_cache.lists[cls].Room(), 0);
    for (uint32_t i = kPackedStackSlots - 1; i < n; ++i) Free(heap, cls, blocks[i]);
    EXPECT_FALSE(tls_cache.Packed(cls));
    EXPECT_EQ(tls_cache.Bottom(cls), CacheSlotsOf(heap, cls));
    EXPECT_EQ(tls_cache.Count(cls), n) << "the move flushed nothing";
    EXPECT_EQ(CacheSlotsOf(heap, cls)[-1], nullptr) << "the own stack's sentinel";
    EXPECT_EQ(PackedSlotsOf(heap, cls + 1)[-1], nullptr) << "the next packed stack's sentinel";
    EXPECT_EQ(tls_cache.Count(cls + 1), 0u);
    for (uint32_t i = n; i-- > 0;) ASSERT_EQ(Alloc(heap, cls), blocks[i]) << i;
    for (void* p : blocks) Free(heap, cls, p);
    Detach(heap);
    AbandonHeap();
  }).join();
}

// A program caching a few blocks of each of many classes keeps all their
// stacks in the packed slots, 16 classes to a page: 19 classes span 2 pages
// of slots (3 where they straddle one), not a page each.
TEST(ThreadCacheTest, FewBlocksOfManyClassesShareAFewPagesOfSlots) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int first = 13, last = 31;  // 224 B .. 1 KiB: classes no other test here uses
    std::vector<std::pair<int, void*>> blocks;
    for (int cls = first; cls <= last; ++cls) {
      for (int i = 0; i < 4; ++i) blocks.push_back({cls, Alloc(heap, cls)});
    }
    for (const auto& [cls, p] : blocks) Free(heap, cls, p);
    std::set<uintptr_t> pages;
    for (int cls = first; cls <= last; ++cls) {
      ASSERT_TRUE(tls_cache.Packed(cls)) << cls;
      ASSERT_GE(tls_cache.Count(cls), 4u) << cls;
      const char* bottom = reinterpret_cast<const char*>(tls_cache.Bottom(cls) - 1);
      const char* top = reinterpret_cast<const char*>(tls_cache.lists[cls].top);
      for (const char* p = bottom; p < top; p += 8) {
        pages.insert(reinterpret_cast<uintptr_t>(p) / platform::kPageSize);
      }
    }
    EXPECT_LE(pages.size(), 3u);
    Detach(heap);
    AbandonHeap();
  }).join();
}

// A class that comes back to the heap for a fourth batch (its first three
// slabs' blocks all taken) moves to its own slots at that refill; its first
// refill never moves it.
TEST(ThreadCacheTest, FourthRefillFromTheHeapMovesTheStack) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int cls = 0;
    ASSERT_GT(tls_cache.Limit(cls), kPackedStackSlots - 1);
    std::vector<void*> blocks{Alloc(heap, cls)};
    EXPECT_TRUE(tls_cache.Packed(cls)) << "a first refill leaves the stack packed";
    const uint32_t most = 3 * kSizeClasses[cls].blocks + 2 * kPackedStackSlots;
    while (tls_cache.Packed(cls) && blocks.size() < most) {
      blocks.push_back(Alloc(heap, cls));
      if (tls_cache.Packed(cls)) ASSERT_LT(tls_cache.Count(cls), kPackedStackSlots);
    }
    EXPECT_FALSE(tls_cache.Packed(cls)) << blocks.size() << " blocks";
    EXPECT_GT(blocks.size(), kSizeClasses[cls].blocks) << "packed through its first slab";
    EXPECT_EQ(tls_cache.Bottom(cls), CacheSlotsOf(heap, cls));
    std::set<void*> distinct(blocks.begin(), blocks.end());
    EXPECT_EQ(distinct.size(), blocks.size());
    for (uint32_t i = 0; i < kPackedStackSlots; ++i) blocks.push_back(Alloc(heap, cls));
    for (void* p : blocks) Free(heap, cls, p);
    EXPECT_GT(tls_cache.Count(cls), kPackedStackSlots - 1);
    Detach(heap);
    AbandonHeap();
  }).join();
}

// A use-after-free write of an address over a cached block (tcache poisoning)
// reaches nothing a pop reads: the cache hands out its blocks, never the
// address written into them.
TEST(ThreadCacheTest, WritesIntoCachedBlocksNeverComeOut) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    for (int cls : {2, 40, 81}) {               // 48 B, 2 KiB, 64 KiB
      if (tls_cache.Limit(cls) == 0) continue;  // pool_tls=off: uncached
      static char target[64] __attribute__((aligned(64)));
      std::vector<void*> blocks;
      for (int i = 0; i < 4; ++i) blocks.push_back(Alloc(heap, cls));
      for (void* p : blocks) Free(heap, cls, p);
      for (void* p : blocks) {
        void* forged = target;
        memcpy(p, &forged, sizeof(forged));  // word 0, where a list's link was
      }
      std::set<void*> out;
      for (int i = 0; i < 4; ++i) {
        void* p = TryAlloc(cls);
        ASSERT_NE(p, nullptr) << cls;
        ASSERT_NE(p, static_cast<void*>(target)) << cls;
        out.insert(p);
      }
      EXPECT_EQ(out, std::set<void*>(blocks.begin(), blocks.end())) << cls;
      for (void* p : blocks) Free(heap, cls, p);
    }
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

// A full list refuses a push and keeps its top, room and count (the fast path's
// push compares top with end before it writes a slot).
TEST(ThreadCacheTest, RefusedPushLeavesTheListAsItWas) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int cls = 4;
    FreeList& list = tls_cache.lists[cls];
    std::vector<void*> blocks;
    for (uint32_t i = 0; i <= tls_cache.Limit(cls); ++i) blocks.push_back(Alloc(heap, cls));
    const uint32_t limit = tls_cache.Limit(cls);  // (the refills were ACE's events: read it now)
    FlushAll(heap);                               // the refills' leftovers go back: an empty list
    ASSERT_EQ(tls_cache.Count(cls), 0u);
    if (tls_cache.Packed(cls)) tls_cache.MoveToOwnSlots(heap, cls);  // room for the whole limit
    for (uint32_t i = 0; i < limit; ++i) ASSERT_TRUE(TryFree(cls, blocks[i])) << i;
    EXPECT_EQ(list.Room(), 0);
    EXPECT_FALSE(TryFree(cls, blocks[limit]));
    EXPECT_EQ(list.Room(), 0);
    EXPECT_EQ(tls_cache.Count(cls), limit);
    EXPECT_EQ(tls_cache.Head(cls), blocks[limit - 1]);
    Flush(heap, cls, blocks[limit]);
    EXPECT_LE(tls_cache.Count(cls), tls_cache.Limit(cls));
    EXPECT_EQ(tls_cache.Head(cls), blocks[limit]);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

TEST(ThreadCacheTest, EmptyCacheRefillsThenServesLocally) {
  std::thread([] {
    EXPECT_EQ(TryAlloc(3), nullptr);  // the constant-initialised empty state
    Heap* heap = thread_cache::AttachHeap();
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
TEST(ThreadCacheTest, NewSlabIsCarvedLazily) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    // 160 bytes (4 KiB is 25 blocks) and 3584 bytes (4 blocks, the least a
    // carve takes): classes no other test here uses.
    for (const int cls : {9, 46}) {
      if (cls >= kFirstPoolClass && !config::kPoolTls) continue;  // uncached
      const size_t size = kSizeClasses[cls].size;
      const uint32_t limit = tls_cache.Limit(cls);
      bool zeroed = false;
      char* first = static_cast<char*>(Refill(heap, cls, &zeroed));
      ASSERT_NE(first, nullptr);
      const SlabMeta* slab = SlabOf(SuperSlabOf(first), first);
      EXPECT_EQ(zeroed, slab->fresh);
      // The blocks after it went onto the list as addresses (4 KiB of them, at
      // least 3, at most half the packed slots the stack starts in), the rest stays
      // the range.
      EXPECT_TRUE(tls_cache.Packed(cls));
      const uint32_t carved = tls_cache.Count(cls);
      EXPECT_EQ(carved,
                std::min({ThreadCache::kRangeCarveBlocks[cls], limit, kPackedStackSlots / 2}));
      EXPECT_EQ(carved,
                std::min<uint32_t>(std::max<uint32_t>(4096 / size, 4) - 1, kPackedStackSlots / 2));
      const CarvedRange& range = tls_cache.ranges[cls];
      EXPECT_EQ(range.next, first + (1 + carved) * size);
      EXPECT_EQ(range.end, slab->end);
      EXPECT_EQ(slab->bump, slab->end) << "the whole tail went to the cache";
      EXPECT_EQ(slab->used, slab->capacity);
      if (zeroed) {
        // Untouched: no link or tag was written into any block after the first,
        // those on the list included.
        for (const char* p = first + size; p < range.end; p += size) {
          ASSERT_EQ(reinterpret_cast<const uint64_t*>(p)[0], 0u);
          ASSERT_EQ(reinterpret_cast<const uint64_t*>(p)[1], 0u);
        }
      }
      EXPECT_TRUE(IsCached(cls, first + 5 * size)) << "a carved block is free";
      EXPECT_TRUE(IsCached(cls, range.next + size)) << "a block of the range is free";
      std::vector<void*> taken = {first};
      for (uint32_t i = 1; i <= carved; ++i) {
        taken.push_back(TryAlloc(cls));
        ASSERT_EQ(taken.back(), first + i * size) << "the lowest address first";
      }
      EXPECT_EQ(TryAlloc(cls), nullptr);
      taken.push_back(Refill(heap, cls, &zeroed));
      EXPECT_EQ(taken.back(), first + (1 + carved) * size) << "the range goes on";
      EXPECT_EQ(tls_cache.Count(cls), carved);
      for (void* p : taken) Free(heap, cls, p);
      // Back to the slab: the range as its bump region again, the blocks on lists.
      FlushAll(heap);
      EXPECT_EQ(tls_cache.ranges[cls].next, tls_cache.ranges[cls].end);
      if (slab->cls == cls) {  // not released
        EXPECT_EQ(slab->used, 0u);
        EXPECT_EQ(slab->bump, first + (2 + 2 * carved) * size);
      }
    }
    AbandonHeap();
  }).join();
}

TEST(ThreadCacheTest, FullListFlushesABatchAndKeepsTheBound) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
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
        ASSERT_LE(tls_cache.Count(cls), tls_cache.Limit(cls));
        if constexpr (!config::kAce) {
          ASSERT_EQ(tls_cache.Limit(cls), ace::DefaultLimit(cls));
        }
      }
      EXPECT_GE(tls_cache.Count(cls), 1u);
    }
    FlushAll(heap);
    for (int cls = 0; cls < kNumClasses; ++cls) {
      EXPECT_EQ(tls_cache.lists[cls].top[-1], nullptr);
      EXPECT_EQ(tls_cache.Count(cls), 0u);
    }
    AbandonHeap();
  }).join();
}

TEST(ThreadCacheTest, EveryPoolClassRoundTripsWithContents) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
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
          ASSERT_LE(tls_cache.Count(cls), tls_cache.Limit(cls));
          if constexpr (!config::kAce) ASSERT_EQ(tls_cache.Limit(cls), kSizeClasses[cls].cache_max);
        }
      }
    }
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

TEST(ThreadCacheTest, CacheServesRepeatsWithoutTheHeap) {
  if constexpr (!config::kPoolTls) GTEST_SKIP() << "pool_tls=off build";
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
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
TEST(ThreadCacheTest, AceGrowsABreathingClassUntilItStopsRefilling) {
  if constexpr (!config::kPoolTls) GTEST_SKIP() << "pool_tls=off build";
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int cls = PoolClass(36000);
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
      return stats::ThreadCount(stats::Counter::k_cache_refills) +
             stats::ThreadCount(stats::Counter::k_cache_flushes);
    };
    const uint64_t before = events();
    for (int i = 0; i < 100; ++i) cycle();
    const uint64_t during = events() - before;
    if constexpr (config::kAce) {
      EXPECT_GE(tls_cache.Limit(cls), blocks.size());
      EXPECT_LE(tls_cache.Limit(cls), ace::CapLimit(ace::tls_ace, cls));
      if constexpr (config::kStats) EXPECT_EQ(during, 0u);
    } else {
      EXPECT_EQ(tls_cache.Limit(cls), kSizeClasses[cls].cache_max);
      if constexpr (config::kStats) EXPECT_GE(during, 100u);
    }
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

// When ACE lowers a class's limit (here: idle for two windows while another
// class has events), the next slow path of the thread cache cuts that list to
// its new limit and gives the rest back to the slabs.
TEST(ThreadCacheTest, AceLoweredLimitsCutTheirListsAtTheNextSlowPath) {
  if constexpr (!config::kPoolTls || !config::kAce) GTEST_SKIP() << "pool_tls or ace off";
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int idle = PoolClass(4096);  // fixed limit 64, batch 32
    const int busy = PoolClass(100000);
    std::vector<void*> filled;  // 32 blocks cached (below the fixed limit: no flush)
    for (int i = 0; i < 32; ++i) filled.push_back(Alloc(heap, idle));
    for (void* b : filled) Free(heap, idle, b);
    ASSERT_EQ(tls_cache.Count(idle), 32u);
    const uint32_t limit = tls_cache.Limit(idle);
    std::vector<void*> cached;
    tls_cache.ForEachCached(idle, [&](void* p) { cached.push_back(p); });
    // Windows of events of another class (its own slow paths, taken here through
    // ACE directly) until the idle class's limit, halved at each scan that finds
    // it idle for a whole window, is below the 32 blocks its list holds (the 32
    // came through a few refills, each an event of the idle class, which may
    // have grown its limit first).
    for (uint32_t i = 0; i < 16 * ace::kWindow && ace::LimitOf(ace::tls_ace, idle) >= 32; ++i) {
      ace::OnEvent(&ace::tls_ace, busy, ace::Event::kRefill);
    }
    const uint32_t lowered = ace::LimitOf(ace::tls_ace, idle);
    ASSERT_LT(lowered, 32u) << "below what the list holds";
    ASSERT_LT(lowered, limit);
    EXPECT_EQ(tls_cache.Limit(idle), limit) << "not taken until a slow path of the cache";
    void* p = Alloc(heap, busy);  // a refill of the busy class: a slow path
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(tls_cache.Limit(idle), lowered);
    EXPECT_EQ(tls_cache.Count(idle), lowered);
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

// A program that frees many blocks of a class and takes none back (a structure
// dropped) leaves at most the class's floor in its list, not its grown limit:
// after kShedAfter flushes in a row each flush halves the limit and empties the
// list. Every freed block is accounted for: cached, or back on its slab.
TEST(ThreadCacheTest, ARunOfFreesLeavesAtMostTheFloorCached) {
  if constexpr (!config::kAce) GTEST_SKIP() << "ace off: the table's limits";
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int cls = SizeClass(256);
    // Bursts of mallocs and frees first, so the limit grows well past the floor.
    std::vector<void*> blocks;
    for (int round = 0; round < 6; ++round) {
      const uint32_t n = 2 * tls_cache.Limit(cls) + 1;
      for (uint32_t i = 0; i < n; ++i) blocks.push_back(Alloc(heap, cls));
      for (void* p : blocks) Free(heap, cls, p);
      blocks.clear();
    }
    const uint32_t grown = tls_cache.Limit(cls);
    ASSERT_GT(grown, 4 * ace::FloorLimit(cls));
    // Then many mallocs, and their frees with no malloc between.
    const uint64_t sheds = stats::ThreadCount(stats::Counter::k_ace_sheds);
    for (uint32_t i = 0; i < 8 * grown; ++i) blocks.push_back(Alloc(heap, cls));
    for (void* p : blocks) Free(heap, cls, p);
    EXPECT_EQ(tls_cache.Limit(cls), ace::FloorLimit(cls));
    EXPECT_LE(tls_cache.Count(cls), ace::FloorLimit(cls));
    if constexpr (config::kStats) EXPECT_GT(stats::ThreadCount(stats::Counter::k_ace_sheds), sheds);
    // Nothing lost: the next mallocs take the cached blocks, then the slabs'
    // (the same addresses, none twice).
    std::vector<void*> again;
    for (size_t i = 0; i < blocks.size(); ++i) again.push_back(Alloc(heap, cls));
    EXPECT_EQ(std::set<void*>(again.begin(), again.end()),
              std::set<void*>(blocks.begin(), blocks.end()));
    for (void* p : again) Free(heap, cls, p);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

TEST(ThreadCacheTest, PrewarmFillsCommonClassesWhenEnabled) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    Prewarm(heap);
    const bool warmed = TryAlloc(PoolClass(2000)) != nullptr;
    EXPECT_EQ(warmed, config::kPoolTls && config::kPrewarm);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

// One cache for every class: tiny and pool lists side by side, each starting at
// its class's fixed limit; with --define hakmem_pool_tls=off the pool classes'
// limit is 0 (uncached): their frees go straight back to the slabs.
TEST(ThreadCacheTest, PoolClassesAreUncachedOnlyWithPoolTlsOff) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();  // (the lists' limits come with the heap)
    const auto fixed_limit = [](int cls) { return ace::DefaultLimit(cls); };
    EXPECT_EQ(tls_cache.Limit(0), fixed_limit(0));
    EXPECT_EQ(tls_cache.Limit(kNumTinyClasses - 1), fixed_limit(kNumTinyClasses - 1));
    for (int cls = kFirstPoolClass; cls < kNumClasses; ++cls) {
      ASSERT_EQ(tls_cache.Limit(cls), config::kPoolTls ? fixed_limit(cls) : 0u) << cls;
    }
    const int cls = PoolClass(3000);
    void* p = Alloc(heap, cls);
    ASSERT_NE(p, nullptr);
    // Uncached, a refill takes one block; cached, the new slab's range goes to
    // the cache and its next kRangeCarveBlocks (3 of 3072 bytes) onto the list.
    const uint32_t carved = config::kPoolTls ? ThreadCache::kRangeCarveBlocks[cls] : 0u;
    EXPECT_EQ(CachedBlocks(cls), carved);
    Free(heap, cls, p);
    EXPECT_EQ(IsCached(cls, p), config::kPoolTls);
    EXPECT_EQ(CachedBlocks(cls), config::kPoolTls ? carved + 1 : 0u);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

// Blocks other threads freed come back at the owner's next refill, before its
// carved range hands out fresh memory, and straight to the lists of their classes
// (this one's and others'): a producer/consumer pair reuses memory instead of
// growing it.
TEST(ThreadCacheTest, RemoteFreesComeBackToTheListsBeforeTheRange) {
  std::thread([] {
    Heap* heap = thread_cache::AttachHeap();
    const int cls = 10;       // 176 bytes and
    const int other = 11;     // 192: classes no other test here uses
    std::vector<void*> kept;  // freed by this thread at the end
    std::vector<void*> freed;
    std::vector<void*> others;
    // Until the list is empty again (the blocks carved onto it are taken).
    do {
      kept.push_back(Alloc(heap, cls));
    } while (CachedBlocks(cls) != 0);
    for (int i = 0; i < 8; ++i) {
      freed.push_back(kept.back());
      kept.pop_back();
    }
    for (int i = 0; i < 5; ++i) others.push_back(Alloc(heap, other));
    const uint32_t others_cached = CachedBlocks(other);
    ASSERT_EQ(CachedBlocks(cls), 0u);
    ASSERT_NE(tls_cache.ranges[cls].next, tls_cache.ranges[cls].end) << "fresh blocks are left";
    std::thread([&] {
      for (void* p : freed) PushRemote(SuperSlabOf(p), p);
      for (void* p : others) PushRemote(SuperSlabOf(p), p);
    }).join();
    void* again = Alloc(heap, cls);
    EXPECT_NE(std::find(freed.begin(), freed.end(), again), freed.end())
        << "a freed block, not one of the range";
    EXPECT_EQ(CachedBlocks(cls), freed.size() - 1);
    EXPECT_EQ(CachedBlocks(other), others_cached + others.size());
    EXPECT_FALSE(heap->remote.MaybeNonEmpty());
    Free(heap, cls, again);
    for (void* p : kept) Free(heap, cls, p);
    FlushAll(heap);
    AbandonHeap();
  }).join();
}

}  // namespace
}  // namespace hakmem::thread_cache
