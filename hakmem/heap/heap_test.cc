#include "hakmem/heap/heap.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/registry/registry.h"

namespace hakmem {
namespace {

// The test thread's ThreadHot (in hakmem, thread_cache's TLS block holds it).
Heap* AttachTestHeap() {
  static thread_local ThreadHot hot;
  return AttachHeap(&hot);
}

std::vector<void*> ListToVector(void* head) {
  std::vector<void*> out;
  for (void* p = head; p != nullptr; p = LoadLink(p)) out.push_back(p);
  return out;
}

// Each test runs in its own thread so that it gets (and abandons) its own heap.
template <typename F>
void OnNewThread(F f) {
  std::thread([&] {
    Heap* heap = AttachTestHeap();
    ASSERT_NE(heap, nullptr);
    f(heap);
    AbandonHeap();
  }).join();
}

TEST(HeapTest, ThreadStartsAtTheSentinel) {
  std::thread([] { EXPECT_FALSE(HasHeap()); }).join();
}

TEST(HeapTest, BatchesAreDistinctAlignedBlocksOfTheClass) {
  OnNewThread([](Heap* heap) {
    for (int cls : {0, 7, 31, 32, 60, kNumClasses - 1}) {
      const int want = 3 * kSizeClasses[cls].blocks / 2 + 1;  // spans two slabs
      void* head = nullptr;
      ASSERT_EQ(AllocBatch(heap, cls, want, &head), want) << cls;
      std::vector<void*> blocks = ListToVector(head);
      ASSERT_EQ(blocks.size(), static_cast<size_t>(want));
      std::set<void*> unique(blocks.begin(), blocks.end());
      EXPECT_EQ(unique.size(), blocks.size());
      for (void* p : blocks) {
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
        SuperSlab* ss = SuperSlabOf(p);
        ASSERT_EQ(registry::Lookup(p), ss);
        ASSERT_EQ(ss->owner.load(), heap);
        SlabMeta* slab = SlabOf(ss, p);
        ASSERT_EQ(slab->cls, cls);
        ASSERT_TRUE(IsBlockStart(slab, p));
        memset(p, 0xcd, kSizeClasses[cls].size);
      }
      // All back: the slabs empty out and are released (but one superslab stays).
      for (void* p : blocks) {
        SuperSlab* ss = SuperSlabOf(p);
        FreeBlock(heap, ss, SlabOf(ss, p), p);
      }
    }
  });
}

TEST(HeapTest, FreedBlocksAreReusedBeforeNewMemory) {
  OnNewThread([](Heap* heap) {
    void* head = nullptr;
    ASSERT_EQ(AllocBatch(heap, 4, 8, &head), 8);
    std::vector<void*> first = ListToVector(head);
    FreeBlockList(heap, head);
    ASSERT_EQ(AllocBatch(heap, 4, 8, &head), 8);
    std::vector<void*> second = ListToVector(head);
    EXPECT_EQ(std::set<void*>(first.begin(), first.end()),
              std::set<void*>(second.begin(), second.end()));
    FreeBlockList(heap, head);
  });
}

TEST(HeapTest, RemoteFreesAreDrainedByTheOwner) {
  OnNewThread([](Heap* heap) {
    const int cls = 10;
    const int n = kSizeClasses[cls].blocks;  // exactly one slab
    void* head = nullptr;
    ASSERT_EQ(AllocBatch(heap, cls, n, &head), n);
    std::vector<void*> blocks = ListToVector(head);
    SlabMeta* slab = SlabOf(SuperSlabOf(blocks[0]), blocks[0]);
    EXPECT_EQ(slab->used, static_cast<uint32_t>(n));
    for (void* p : blocks) MarkLive(p);  // handed out, as a thread cache does
    std::thread([&] {
      for (void* p : blocks) PushRemote(SuperSlabOf(p), p);
    }).join();
    EXPECT_TRUE(heap->remote.MaybeNonEmpty());
    DrainRemote(heap);
    EXPECT_FALSE(heap->remote.MaybeNonEmpty());
    // The next batch reuses the drained blocks.
    ASSERT_EQ(AllocBatch(heap, cls, n, &head), n);
    std::vector<void*> again = ListToVector(head);
    EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()),
              std::set<void*>(again.begin(), again.end()));
    FreeBlockList(heap, head);
  });
}

// Slabs that empty are kept for their class (up to what its thread cache holds,
// in slabs), so the next batches reuse them instead of carving new ones; trim
// releases them.
TEST(HeapTest, EmptySlabsAreKeptForTheirClassUntilTrim) {
  OnNewThread([](Heap* heap) {
    const int cls = SizeClass(36 << 10);  // 4 blocks a slab
    const uint32_t blocks = kSizeClasses[cls].blocks;
    const uint32_t keep = (ace::LimitOf(ace::tls_ace, cls) + blocks - 1) / blocks;
    ASSERT_GE(keep, 1u);
    const int n = static_cast<int>((keep + 3) * blocks);  // keep + 3 slabs
    void* head = nullptr;
    ASSERT_EQ(AllocBatch(heap, cls, n, &head), n);
    std::vector<void*> first = ListToVector(head);
    std::set<SlabMeta*> slabs;
    for (void* p : first) slabs.insert(SlabOf(SuperSlabOf(p), p));
    ASSERT_EQ(slabs.size(), keep + 3);
    EXPECT_EQ(heap->current[cls], nullptr) << "every slab was filled";
    FreeBlockList(heap, head);
    // All empty: `keep` of them are kept, the other 3 released.
    EXPECT_EQ(heap->empty[cls].size(), keep);
    std::set<SlabMeta*> kept;
    for (SlabMeta* slab = heap->empty[cls].head(); slab != nullptr; slab = slab->next) {
      EXPECT_EQ(slab->used, 0u);
      kept.insert(slab);
    }
    EXPECT_EQ(kept.size(), keep);
    // The next batch takes the kept slabs: no new one is carved.
    const int again = static_cast<int>(keep * blocks);
    ASSERT_EQ(AllocBatch(heap, cls, again, &head), again);
    for (void* p : ListToVector(head)) EXPECT_EQ(kept.count(SlabOf(SuperSlabOf(p), p)), 1u);
    EXPECT_EQ(heap->empty[cls].size(), 0u);
    FreeBlockList(heap, head);
    EXPECT_EQ(heap->empty[cls].size(), keep);
    TrimHeap(heap);
    EXPECT_EQ(heap->empty[cls].size(), 0u);
    EXPECT_TRUE(heap->empty[cls].empty());
  });
}

// A decay tick releases (decommitted) the kept slabs of a class that took none
// since the previous tick, and leaves those of a class that did.
TEST(HeapTest, KeptSlabsUnusedForATickAreDecommittedAndReleased) {
  OnNewThread([](Heap* heap) {
    const int used_cls = SizeClass(36 << 10),
              idle_cls = SizeClass(18 << 10);  // 4 blocks a slab each
    // Backed free units for the slabs below, so that neither class's new slabs
    // take the other's kept ones (the heap reuses what it holds before it grows).
    bool zeroed;
    void* warm = AllocLarge(heap, 960 << 10, 16, &zeroed);
    ASSERT_NE(warm, nullptr);
    FreeLarge(heap, SuperSlabOf(warm), SlabOf(SuperSlabOf(warm), warm));
    auto keep_some = [&](int cls) {
      const int n = static_cast<int>(2 * kSizeClasses[cls].blocks);
      void* head = nullptr;
      ASSERT_EQ(AllocBatch(heap, cls, n, &head), n);
      FreeBlockList(heap, head);
      ASSERT_GE(heap->empty[cls].size(), 1u);
    };
    keep_some(used_cls);
    keep_some(idle_cls);
    DecayHeap(heap);  // both took kept slabs never: both go
    EXPECT_EQ(heap->empty[used_cls].size(), 0u);
    EXPECT_EQ(heap->empty[idle_cls].size(), 0u);
    EXPECT_NE(heap->next_decay_ns, 0u) << "the clock keeps ticking while memory waits";
    keep_some(used_cls);
    keep_some(idle_cls);
    void* head = nullptr;  // the used class takes a kept slab (its current one now)
    ASSERT_EQ(AllocBatch(heap, used_cls, 1, &head), 1);
    FreeBlockList(heap, head);
    const uint32_t kept = heap->empty[used_cls].size();
    ASSERT_GE(kept, 1u);
    const uint64_t purged = stats::ThreadCount(stats::Counter::k_units_purged);
    DecayHeap(heap);
    EXPECT_EQ(heap->empty[used_cls].size(), kept) << "taken since the last tick: kept";
    EXPECT_EQ(heap->empty[idle_cls].size(), 0u) << "untouched since the last tick: released";
    if constexpr (config::kStats) {
      EXPECT_GE(stats::ThreadCount(stats::Counter::k_units_purged),
                purged + kSizeClasses[idle_cls].slab_units)
          << "and decommitted";
    }
    DecayHeap(heap);  // now the used class took none either
    EXPECT_EQ(heap->empty[used_cls].size(), 0u);
  });
}

// A free block above 8 KiB in a slab that still has blocks out gives back its
// pages past the first once it has been free for a whole decay tick, and stays
// on its slab's free list: the next batch takes it again, reading zeros there.
TEST(HeapTest, FreeSparseBlocksGiveBackTheirPagesAfterATick) {
  OnNewThread([](Heap* heap) {
    const int cls = SizeClass(24 << 10);
    const uint32_t size = kSizeClasses[cls].size;
    const int n = kSizeClasses[cls].blocks;  // one new slab's worth
    ASSERT_GE(n, 4);
    void* head = nullptr;
    ASSERT_EQ(AllocBatch(heap, cls, n, &head), n);
    std::vector<void*> blocks = ListToVector(head);
    for (void* p : blocks) memset(p, 0xab, size);
    SlabMeta* slab = SlabOf(SuperSlabOf(blocks[0]), blocks[0]);
    for (void* p : blocks) ASSERT_EQ(SlabOf(SuperSlabOf(p), p), slab);
    auto last_byte = [&](void* p) { return static_cast<unsigned char*>(p)[size - 1]; };
    for (int i = 1; i < n; ++i) FreeBlock(heap, SuperSlabOf(blocks[i]), slab, blocks[i]);
    const uint64_t purged = stats::ThreadCount(stats::Counter::k_blocks_purged);

    DecayHeap(heap);  // freed since the last tick: they wait
    for (int i = 1; i < n; ++i) EXPECT_EQ(last_byte(blocks[i]), 0xab) << i;
    EXPECT_NE(heap->next_decay_ns, 0u) << "the clock keeps ticking while blocks wait";
    DecayHeap(heap);  // free for a whole tick: their pages past the first go
    for (int i = 1; i < n; ++i) EXPECT_EQ(last_byte(blocks[i]), 0) << i;
    EXPECT_EQ(last_byte(blocks[0]), 0xab) << "the block out is not touched";
    if constexpr (config::kStats) {
      EXPECT_EQ(stats::ThreadCount(stats::Counter::k_blocks_purged), purged + n - 1);
    }

    // Still on the free list: taken again, written, freed again, it waits a
    // whole tick again.
    void* again = nullptr;
    ASSERT_EQ(AllocBatch(heap, cls, 1, &again), 1);
    ASSERT_EQ(SlabOf(SuperSlabOf(again), again), slab);
    memset(again, 0xcd, size);
    FreeBlock(heap, SuperSlabOf(again), slab, again);
    DecayHeap(heap);
    EXPECT_EQ(last_byte(again), 0xcd) << "freed since the last tick";
    DecommitFree(heap);  // malloc_trim: at once
    EXPECT_EQ(last_byte(again), 0);

    std::vector<void*> taken;
    for (int i = 1; i < n; ++i) {
      void* p = nullptr;
      ASSERT_EQ(AllocBatch(heap, cls, 1, &p), 1);
      ASSERT_EQ(SlabOf(SuperSlabOf(p), p), slab);
      taken.push_back(p);
    }
    std::sort(taken.begin(), taken.end());
    std::vector<void*> freed(blocks.begin() + 1, blocks.end());
    std::sort(freed.begin(), freed.end());
    EXPECT_EQ(taken, freed) << "every purged block came back from the free list";
    for (void* p : taken) FreeBlock(heap, SuperSlabOf(p), slab, p);
    FreeBlock(heap, SuperSlabOf(blocks[0]), slab, blocks[0]);
  });
}

// Memory freed inside a heap waits a quarter of the purge delay between ticks,
// not the whole delay the shared caches wait: the clock a free starts, and each
// tick that leaves memory waiting, is due a quarter delay later.
TEST(HeapTest, DecayTicksAreAQuarterPurgeDelayApart) {
  OnNewThread([](Heap* heap) {
    ASSERT_EQ(DecayTickNanos(), PurgeDelayNanos() / 4);
    ASSERT_GT(DecayTickNanos(), 0u);
    const int cls = SizeClass(24 << 10);  // sparse: a free block waits for a tick
    const int n = kSizeClasses[cls].blocks;
    void* head = nullptr;
    ASSERT_EQ(AllocBatch(heap, cls, n, &head), n);
    std::vector<void*> blocks = ListToVector(head);
    SlabMeta* slab = SlabOf(SuperSlabOf(blocks[0]), blocks[0]);
    DecommitFree(heap);
    heap->next_decay_ns = 0;  // nothing waits: the clock is stopped
    FreeBlock(heap, SuperSlabOf(blocks[1]), slab, blocks[1]);
    EXPECT_EQ(heap->next_decay_ns, heap->clock_ns + DecayTickNanos());
    DecayHeap(heap);  // the block waits one more tick
    EXPECT_EQ(heap->next_decay_ns, heap->clock_ns + DecayTickNanos());
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (i != 1) FreeBlock(heap, SuperSlabOf(blocks[i]), slab, blocks[i]);
    }
  });
}

TEST(HeapTest, LargeRunsAreAlignedAndReturned) {
  OnNewThread([](Heap* heap) {
    for (size_t alignment : {size_t{16}, size_t{64} << 10, size_t{1} << 20}) {
      bool zeroed = false;
      const size_t size = (size_t{1} << 20) - (alignment == 16 ? 5 : 0);
      char* p = static_cast<char*>(AllocLarge(heap, size, alignment, &zeroed));
      ASSERT_NE(p, nullptr) << alignment;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
      SuperSlab* ss = SuperSlabOf(p);
      SlabMeta* run = SlabOf(ss, p);
      EXPECT_EQ(run->cls, kLargeClass);
      EXPECT_GE(run->block_size, size);
      EXPECT_FALSE(IsBlockStart(run, p)) << "the free fast path's test fails for large runs";
      if (zeroed) EXPECT_EQ(p[size - 1], 0);
      memset(p, 1, size);
      FreeLarge(heap, ss, run);
    }
  });
}

// The census counts what is out of each lane exactly, every class slab in one
// fullness bucket, and skips (and says so) a heap whose lock is held.
TEST(HeapCensusTest, CountsBlocksOutPerLaneAndSkipsBusyHeaps) {
  OnNewThread([](Heap* heap) {
    using L = HeapCensus;
    const HeapCensus before = TakeCensus();
    const int tiny_cls = 3;                // 64 bytes
    const int pool_cls = kFirstPoolClass;  // the first pool class
    const int n = 100;
    void* tiny = nullptr;
    void* pool = nullptr;
    ASSERT_EQ(AllocBatch(heap, tiny_cls, n, &tiny), n);
    ASSERT_EQ(AllocBatch(heap, pool_cls, 3, &pool), 3);
    bool zeroed;
    void* run = AllocLarge(heap, size_t{200} << 10, 16, &zeroed);
    ASSERT_NE(run, nullptr);
    const uint64_t run_bytes = SlabOf(SuperSlabOf(run), run)->block_size;
    const HeapCensus during = TakeCensus();
    EXPECT_EQ(during.lanes[L::kTinyLane].bytes_out - before.lanes[L::kTinyLane].bytes_out,
              uint64_t{n} * kSizeClasses[tiny_cls].size);
    EXPECT_EQ(during.lanes[L::kPoolLane].bytes_out - before.lanes[L::kPoolLane].bytes_out,
              3 * uint64_t{kSizeClasses[pool_cls].size});
    EXPECT_EQ(during.lanes[L::kLargeLane].bytes_out - before.lanes[L::kLargeLane].bytes_out,
              run_bytes);
    for (const HeapCensus* c : {&before, &during}) {
      uint64_t bucketed = 0;
      for (uint64_t b : c->fullness) bucketed += b;
      EXPECT_EQ(bucketed, c->lanes[L::kTinyLane].slabs + c->lanes[L::kPoolLane].slabs);
      for (const HeapCensus::Lane& l : c->lanes) EXPECT_LE(l.bytes_out, l.bytes_capacity);
      EXPECT_EQ(c->heaps_busy, 0u);
    }
    EXPECT_GE(during.lanes[L::kTinyLane].slabs, 1u);
    EXPECT_GE(during.superslabs, 1u);
    FreeBlockList(heap, tiny);
    FreeBlockList(heap, pool);
    FreeLarge(heap, SuperSlabOf(run), SlabOf(SuperSlabOf(run), run));
    const HeapCensus after = TakeCensus();
    for (int lane : {L::kTinyLane, L::kPoolLane, L::kLargeLane}) {
      EXPECT_EQ(after.lanes[lane].bytes_out, before.lanes[lane].bytes_out) << lane;
    }
    heap->lock.Lock();
    const HeapCensus busy = TakeCensus();
    heap->lock.Unlock();
    EXPECT_EQ(busy.heaps_busy, 1u);
    EXPECT_EQ(busy.heaps, after.heaps);
  });
}

// Units of the heap's superslabs touched since mapped or decommitted (resident).
int DirtyUnits(const Heap* heap) {
  int n = 0;
  for (const SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
    n += __builtin_popcountll(ss->dirty_units[0]) + __builtin_popcountll(ss->dirty_units[1]);
  }
  return n;
}

// Starts a test of the heap's growth from nothing resident to reuse: every free
// unit of the heap decommitted, the shared cache too.
void DecommitFreeUnits(Heap* heap) {
  TrimHeap(heap);
  PurgeCaches(/*force=*/true);
  for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
    DecayFreeUnits(ss, /*all=*/true);
  }
}

// The heap reuses what it holds before it touches new memory: a large run of
// another length than the one it cached takes the cached run's units (released
// for it), and a new slab takes a kept empty slab's units of another class.
TEST(HeapTest, HeldMemoryIsReusedBeforeTheHeapGrows) {
  OnNewThread([](Heap* heap) {
    bool zeroed = false;
    char* pin = static_cast<char*>(AllocLarge(heap, 200 << 10, 16, &zeroed));
    ASSERT_NE(pin, nullptr);  // keeps a superslab in the heap across the trims
    DecommitFreeUnits(heap);
    const int dirty = DirtyUnits(heap);
    char* a = static_cast<char*>(AllocLarge(heap, 640 << 10, 16, &zeroed));
    ASSERT_NE(a, nullptr);
    memset(a, 1, 640 << 10);
    const int with_a = DirtyUnits(heap);
    EXPECT_GE(with_a, dirty + 40);
    FreeLarge(heap, SuperSlabOf(a), SlabOf(SuperSlabOf(a), a));
    ASSERT_EQ(heap->large_cache_count, 1u) << "cached whole for a run of its length";
    // 320 KiB is not a length the cache serves: the cached run is released and
    // its units reused instead of 20 untouched ones.
    char* b = static_cast<char*>(AllocLarge(heap, 320 << 10, 16, &zeroed));
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(heap->large_cache_count, 0u);
    EXPECT_GE(b, a);
    EXPECT_LT(b, a + (640 << 10));
    EXPECT_FALSE(zeroed);
    EXPECT_EQ(DirtyUnits(heap), with_a) << "the heap did not grow";
    FreeLarge(heap, SuperSlabOf(b), SlabOf(SuperSlabOf(b), b));

    // Kept empty slabs of one class: a new slab of another class takes their units.
    DecommitFreeUnits(heap);
    const int kept_cls = SizeClass(36 << 10), other_cls = SizeClass(30 << 10);  // 9, 8 units a slab
    ASSERT_EQ(OccupancyOfBlock(kSizeClasses[kept_cls].size),
              OccupancyOfBlock(kSizeClasses[other_cls].size));
    const int n = static_cast<int>(kSizeClasses[kept_cls].blocks);
    void* head = nullptr;
    ASSERT_EQ(AllocBatch(heap, kept_cls, n, &head), n);
    const SlabMeta* kept = SlabOf(SuperSlabOf(head), head);
    char* kept_start = kept->start;
    const size_t kept_bytes = size_t{kept->units} * kUnitSize;
    for (void* p : ListToVector(head)) {
      memset(p, 2, kSizeClasses[kept_cls].size);
      FreeBlock(heap, SuperSlabOf(p), SlabOf(SuperSlabOf(p), p), p);
    }
    ASSERT_EQ(heap->empty[kept_cls].size(), 1u);
    const int before = DirtyUnits(heap);
    ASSERT_EQ(AllocBatch(heap, other_cls, 1, &head), 1);
    EXPECT_EQ(heap->empty[kept_cls].size(), 0u);
    EXPECT_GE(static_cast<char*>(head), kept_start);
    EXPECT_LT(static_cast<char*>(head), kept_start + kept_bytes);
    EXPECT_EQ(DirtyUnits(heap), before) << "the heap did not grow";
    FreeBlockList(heap, head);
    FreeLarge(heap, SuperSlabOf(pin), SlabOf(SuperSlabOf(pin), pin));
  });
}

// A class that takes its kept slabs again (blocks freed by other threads come and
// go by more than a cache's worth) keeps every slab that empties, and a new slab
// of another class does not take their units: carved for that class, they would
// touch new pages where its blocks start, and this class would carve anew.
TEST(HeapTest, ClassesReusingKeptSlabsKeepThemFromOtherClasses) {
  OnNewThread([](Heap* heap) {
    const int cls = SizeClass(36 << 10), other = SizeClass(30 << 10);  // 9, 8 units a slab
    ASSERT_EQ(OccupancyOfBlock(kSizeClasses[cls].size), OccupancyOfBlock(kSizeClasses[other].size));
    const uint32_t blocks = kSizeClasses[cls].blocks;
    const uint32_t keep = (ace::LimitOf(ace::tls_ace, cls) + blocks - 1) / blocks;
    const int n = static_cast<int>((keep + 3) * blocks);  // keep + 3 slabs
    void* head = nullptr;
    ASSERT_EQ(AllocBatch(heap, cls, n, &head), n);
    FreeBlockList(heap, head);
    ASSERT_EQ(heap->empty[cls].size(), keep) << "a cache's worth, before it takes them";
    ASSERT_EQ(AllocBatch(heap, cls, n, &head), n);  // the kept slabs, and 3 new ones
    FreeBlockList(heap, head);
    EXPECT_EQ(heap->empty[cls].size(), keep + 3) << "taken again: all kept";
    std::set<const SlabMeta*> kept;
    for (const SlabMeta* slab = heap->empty[cls].head(); slab != nullptr; slab = slab->next) {
      kept.insert(slab);
    }
    // No backed free unit left but the kept slabs': another class's slab goes to
    // untouched units, not to theirs.
    PurgeCaches(/*force=*/true);
    for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
      DecayFreeUnits(ss, /*all=*/true);
    }
    ASSERT_EQ(AllocBatch(heap, other, 1, &head), 1);
    EXPECT_EQ(heap->empty[cls].size(), keep + 3);
    for (const SlabMeta* slab : kept) {
      EXPECT_FALSE(head >= slab->start && head < slab->end) << "in a kept slab's units";
    }
    FreeBlockList(heap, head);
    TrimHeap(heap);
    EXPECT_TRUE(heap->empty[cls].empty());
  });
}

// Blocks that programs touch whole (dense) and big ones they often touch in part
// (sparse, large runs too) never share a superslab's untouched units: only dense
// superslabs may be given 2 MiB pages, and a heap's first superslabs never are.
TEST(HeapTest, DenseAndSparseBlocksLiveInSeparateSuperSlabs) {
  // (Cached superslabs decommitted: a warm one's backed units would take either.)
  PurgeCaches(/*force=*/true);
  OnNewThread([](Heap* heap) {
    const int dense_cls = 3;                 // 64 B
    const int sparse_cls = kNumClasses - 1;  // 128 KiB
    ASSERT_EQ(OccupancyOfBlock(kSizeClasses[dense_cls].size), Occupancy::kDense);
    ASSERT_EQ(OccupancyOfBlock(kSizeClasses[sparse_cls].size), Occupancy::kSparse);
    EXPECT_EQ(OccupancyOfBlock(kDenseBlockMax), Occupancy::kDense);
    EXPECT_EQ(OccupancyOfBlock(kDenseBlockMax + 1), Occupancy::kSparse);
    void* dense = nullptr;
    ASSERT_EQ(AllocBatch(heap, dense_cls, 1, &dense), 1);
    void* sparse = nullptr;
    ASSERT_EQ(AllocBatch(heap, sparse_cls, 1, &sparse), 1);
    bool zeroed = false;
    void* large = AllocLarge(heap, 300 << 10, 16, &zeroed);
    ASSERT_NE(large, nullptr);
    SuperSlab* dense_ss = SuperSlabOf(dense);
    EXPECT_NE(dense_ss, SuperSlabOf(sparse));
    EXPECT_EQ(SuperSlabOf(large), SuperSlabOf(sparse));
    EXPECT_EQ(dense_ss->occupancy, Occupancy::kDense);
    EXPECT_EQ(SuperSlabOf(sparse)->occupancy, Occupancy::kSparse);
    EXPECT_FALSE(SuperSlabOf(sparse)->huge_pages);
    EXPECT_FALSE(dense_ss->huge_pages) << "a heap's first superslabs stay in 4 KiB pages";
    FreeLarge(heap, SuperSlabOf(large), SlabOf(SuperSlabOf(large), large));
    FreeBlockList(heap, dense);
    FreeBlockList(heap, sparse);
  });
}

// Backed free units cost no more memory whatever blocks they take: a dense slab
// takes those a freed big block left in a sparse superslab before it touches
// new memory of its own occupancy.
TEST(HeapTest, BackedUnitsOfEitherOccupancyComeBeforeUntouchedOnes) {
  PurgeCaches(/*force=*/true);
  OnNewThread([](Heap* heap) {
    const int dense_cls = 3;  // 64 B
    void* dense = nullptr;
    ASSERT_EQ(AllocBatch(heap, dense_cls, 1, &dense), 1);
    bool zeroed = false;
    void* large = AllocLarge(heap, 300 << 10, 16, &zeroed);
    ASSERT_NE(large, nullptr);
    SuperSlab* sparse_ss = SuperSlabOf(large);
    ASSERT_NE(sparse_ss, SuperSlabOf(dense));
    ASSERT_EQ(sparse_ss->occupancy, Occupancy::kSparse);
    memset(large, 1, 300 << 10);
    // (Another big block keeps the superslab sparse: an empty one takes either.)
    void* kept = AllocLarge(heap, 200 << 10, 16, &zeroed);
    ASSERT_NE(kept, nullptr);
    ASSERT_EQ(SuperSlabOf(kept), sparse_ss);
    // Cached by the heap, then released when a slab finds no backed units.
    FreeLarge(heap, sparse_ss, SlabOf(sparse_ss, large));
    // Slabs of a dense class until one leaves the dense superslab's untouched
    // units: it goes to the big block's units.
    std::vector<void*> blocks;
    SuperSlab* placed = SuperSlabOf(dense);
    while (placed == SuperSlabOf(dense) && blocks.size() < (size_t{4} << 20) / 64) {
      void* p = nullptr;
      ASSERT_EQ(AllocBatch(heap, dense_cls, 1, &p), 1);
      blocks.push_back(p);
      placed = SuperSlabOf(p);
    }
    // Before: the dense superslab's every untouched unit, then a new superslab.
    EXPECT_EQ(placed, sparse_ss);
    EXPECT_EQ(sparse_ss->occupancy, Occupancy::kSparse);
    for (void* p : blocks) FreeBlockList(heap, p);
    FreeBlockList(heap, dense);
    FreeLarge(heap, sparse_ss, SlabOf(sparse_ss, kept));
  });
}

// The longest run of free backed (dirty) units of `ss`, unit by unit.
size_t BackedRunOf(const SuperSlab* ss) {
  size_t longest = 0;
  size_t run = 0;
  for (size_t u = 0; u < kUnitsPerSuperSlab; ++u) {
    const bool backed = ((ss->free_units[u / 64] & ss->dirty_units[u / 64]) >> (u % 64)) & 1;
    run = backed ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return longest;
}

// A new run takes backed units wherever the heap has a run of them long enough,
// in any of its superslabs, however many there are and whatever it did to them
// (runs freed, decay ticks): the heap's bound and its list of superslabs with
// backed units (Heap::backed) never hide one. Checked against the superslabs'
// masks before every allocation of a random sequence over several superslabs.
TEST(HeapTest, ARunTakesBackedUnitsWhereverTheHeapHasThem) {
  OnNewThread([](Heap* heap) {
    uint32_t r = 7;
    auto next = [&r] {
      r ^= r << 13;
      r ^= r >> 17;
      r ^= r << 5;
      return r;
    };
    std::vector<void*> live;
    int backed_takes = 0;
    for (int step = 0; step < 600; ++step) {
      // Every superslab with backed units is on the heap's list, under its bound.
      for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
        const size_t backed = BackedRunOf(ss);
        ASSERT_LE(backed, ss->longest_backed_run);
        ASSERT_LE(backed, heap->backed_run_bound);
        if (backed != 0) ASSERT_TRUE(heap->backed.Holds(ss)) << step;
      }
      if (step % 97 == 96) {
        DecayHeap(heap);
        continue;
      }
      if (!live.empty() && (live.size() > 24 || next() % 2 == 0)) {
        const size_t i = next() % live.size();
        SuperSlab* ss = SuperSlabOf(live[i]);
        FreeLarge(heap, ss, SlabOf(ss, live[i]));
        live[i] = live.back();
        live.pop_back();
        continue;
      }
      const size_t units = 9 + next() % 50;  // 144 KiB .. 928 KiB
      bool have_backed = false;
      for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
        have_backed |= BackedRunOf(ss) >= units;
      }
      bool zeroed = true;
      void* p = AllocLarge(heap, units * kUnitSize, 16, &zeroed);
      ASSERT_NE(p, nullptr);
      if (have_backed) {  // (a cached run, not shorter, may serve it: not zeroed either)
        EXPECT_FALSE(zeroed) << "untouched units taken while backed ones fit, step " << step;
        ++backed_takes;
      }
      live.push_back(p);
    }
    EXPECT_GT(backed_takes, 50);
    EXPECT_GT(heap->superslabs.size(), 3u);
    for (void* p : live) FreeLarge(heap, SuperSlabOf(p), SlabOf(SuperSlabOf(p), p));
    // Every free unit decommitted (malloc_trim): no superslab is left on the list.
    TrimHeap(heap);
    DecommitFree(heap);
    EXPECT_TRUE(heap->backed.empty());
    PurgeCaches(/*force=*/true);  // (the superslabs it cached: the next test's start)
  });
}

// Only a heap's dense superslabs count toward the huge-page threshold: a heap of
// big blocks (sparse superslabs) that holds a little of every small class keeps
// that little in 4 KiB pages, not in a 2 MiB page it would barely touch.
TEST(HeapTest, SparseSuperSlabsDoNotMakeDenseOnesHuge) {
  OnNewThread([](Heap* heap) {
    std::vector<void*> runs;
    while (heap->superslabs.size() < kSmallPageSuperSlabs + 1) {
      bool zeroed = false;
      void* run = AllocLarge(heap, 900 << 10, 16, &zeroed);
      ASSERT_NE(run, nullptr);
      runs.push_back(run);
    }
    void* dense = nullptr;
    ASSERT_EQ(AllocBatch(heap, 3, 1, &dense), 1);
    SuperSlab* dense_ss = SuperSlabOf(dense);
    EXPECT_EQ(dense_ss->occupancy, Occupancy::kDense);
    EXPECT_FALSE(dense_ss->huge_pages) << "the heap's first dense superslab";
    FreeBlockList(heap, dense);
    for (void* run : runs) FreeLarge(heap, SuperSlabOf(run), SlabOf(SuperSlabOf(run), run));
  });
}

// A large run shorter than a pool block (posix_memalign with a big alignment)
// fails the block-start test too: its class is not a size class.
TEST(HeapTest, ShortAlignedLargeRunFailsTheBlockStartTest) {
  OnNewThread([](Heap* heap) {
    bool zeroed = false;
    char* p = static_cast<char*>(AllocLarge(heap, 20000, size_t{64} << 10, &zeroed));
    ASSERT_NE(p, nullptr);
    SlabMeta* run = SlabOf(SuperSlabOf(p), p);
    ASSERT_EQ(run->cls, kLargeClass);
    ASSERT_LE(run->block_size, kPoolMax);
    for (size_t offset = 0; offset < run->block_size; offset += 16) {
      ASSERT_FALSE(IsBlockStart(run, p + offset)) << offset;
    }
    FreeLarge(heap, SuperSlabOf(p), run);
  });
}

TEST(HeapTest, AbandonedHeapIsAdoptedWithItsRemoteFrees) {
  Heap* first = nullptr;
  std::vector<void*> blocks;
  std::thread([&] {
    first = AttachTestHeap();
    void* head = nullptr;
    ASSERT_EQ(AllocBatch(first, 3, 20, &head), 20);
    blocks = ListToVector(head);
    for (void* p : blocks) MarkLive(p);  // handed out, as a thread cache does
    AbandonHeap();                       // the blocks are still out
  }).join();
  // Freed after their thread exited: they wait in the abandoned heap's queue.
  for (void* p : blocks) PushRemote(SuperSlabOf(p), p);
  const HeapCounts before = GetHeapCounts();
  EXPECT_GE(before.abandoned, 1u);
  std::thread([&] {
    Heap* adopted = AttachTestHeap();
    EXPECT_EQ(GetHeapCounts().heaps, before.heaps);  // no new heap was made
    if (adopted == first) {
      SlabMeta* slab = SlabOf(SuperSlabOf(blocks[0]), blocks[0]);
      EXPECT_EQ(slab->used, 20u);
      DrainRemote(adopted);
    }
    AbandonHeap();
  }).join();
}

}  // namespace
}  // namespace hakmem

namespace hakmem {
namespace {

// The free fast path trusts ThreadHot's owned-superslab slots as proof of
// ownership: a superslab must leave its slot whenever it leaves the heap, and
// every slot must clear when the heap does (or the thread takes one).
TEST(HeapTest, OwnedSuperSlabSlotsAreClearedWhenTheSuperSlabLeaves) {
  std::thread([] {
    static thread_local ThreadHot hot;
    hot.owned.slot[3] = 12345;
    Heap* heap = AttachHeap(&hot);
    EXPECT_EQ(hot.owned.slot[3], kNoOwnedSuperSlab);
    bool zeroed;
    void* run = AllocLarge(heap, 500000, 16, &zeroed);
    ASSERT_NE(run, nullptr);
    SuperSlab* ss = SuperSlabOf(run);
    const uintptr_t base = reinterpret_cast<uintptr_t>(ss);
    hot.NoteOwned(base);
    EXPECT_TRUE(hot.Owns(base));
    // Another superslab's slot stays (only `ss` leaves).
    const uintptr_t other = base + kOwnedSlots / 2 * kSuperSlabSize;
    hot.NoteOwned(other);
    FreeLarge(heap, ss, SlabOf(ss, run));
    // Empty now; kept as the heap's spare until released.
    EXPECT_TRUE(hot.Owns(base));
    TrimHeap(heap);
    EXPECT_FALSE(hot.Owns(base));
    EXPECT_TRUE(hot.Owns(other));
    hot.NoteOwned(base);
    AbandonHeap();
    for (uintptr_t s : hot.owned.slot) EXPECT_EQ(s, kNoOwnedSuperSlab);
    EXPECT_EQ(heap->hot, nullptr);
  }).join();
}

}  // namespace
}  // namespace hakmem
