// thread_cache: the calling thread's cache of free blocks, one list per size class
// (tiny and pool alike), in one constant-initialised initial-exec TLS block.
//
// Owns: ThreadCache (a FreeList and a carved range per class, and the thread's
// ThreadHot: heap's owned-chunk shortcut and stats' fast-path counters, kept here
// so the fast paths reach all of it through one TLS offset) and its paths.
// Allocation pops a list and a local free pushes one: no atomics, no locks, a
// handful of instructions, and no branch on the lane. An empty list takes the
// blocks other threads freed into the heap first (every class's, drained into
// the lists with room), else is served from its class's carved range or refilled
// with a batch from the heap (its slabs, then partial slabs, then a new slab); a
// full list gives a batch back. Each list's limit and batch come from ace
// (adaptive, slow paths only);
// a limit of 0 means uncached: heap profiling (every free reaches the profiler)
// and pool classes with --define hakmem_pool_tls=off (A/B runs).
// Thread-safety: the caller's own TLS only; the Heap* passed in is the caller's.
// Called by: free_dispatch (local free, the double-free search), core (malloc,
// thread attach and exit, trim), //hakmem (introspection).
#ifndef HAKMEM_THREAD_CACHE_THREAD_CACHE_H_
#define HAKMEM_THREAD_CACHE_THREAD_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/ace/ace.h"
#include "hakmem/config/build_config.h"
#include "hakmem/config/options.h"
#include "hakmem/heap/heap.h"
#include "hakmem/platform/platform.h"
#include "hakmem/profiler/profiler.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/stats/stats.h"
#include "hakmem/superslab/free_link.h"
#include "hakmem/superslab/superslab.h"

namespace hakmem {

namespace thread_cache {
// DrainRemote's KeepDrained for the calling thread's cache: a block other threads
// freed goes to its class's list when the list has room.
bool KeepDrained(int cls, void* block);
}  // namespace thread_cache

// The free list of one class. Constant-initialised to empty: an empty list sends
// the caller to its refill path, so the fast paths need no init branch.
struct FreeList {
  void* head;
  uint32_t count;
  // The most blocks it holds, kept beside count (no table load): the class's
  // fixed kSizeClasses[cls].cache_max to start with, then what ACE decides on the
  // slow paths (hakmem/ace); 0: uncached (heap profiling, pool classes with
  // --define hakmem_pool_tls=off).
  uint32_t max;
};

static_assert(sizeof(FreeList) == kClassListStride, "SlabMeta::list_offset indexes the lists");

// Hardened builds keep a thread cache's blocks in slots of its own TLS, not
// linked through the blocks (a FreeList's head stays nullptr, its count says how
// many slots are full): a use-after-free write cannot reach a cache, so no block
// it hands out needs a check (a pop or push costs what a list's does). A class
// then holds at most kCacheSlots blocks, whatever ACE allows it (90 classes x
// 128 slots: 90 KiB of TLS per thread).
inline constexpr bool kSlotCache = config::kHardened;
inline constexpr uint32_t kCacheSlots = 128;
static_assert(!kSlotCache || ace::kMaxLimit == kCacheSlots, "ACE never allows more than fits");

// The slots (an empty struct without kSlotCache).
template <bool kSlots>
struct CacheSlots {
  void* slots[kNumClasses][kCacheSlots];
  void** Of(int cls) { return slots[static_cast<uint32_t>(cls)]; }
  void* const* Of(int cls) const { return slots[static_cast<uint32_t>(cls)]; }
};
template <>
struct CacheSlots<false> {
  void** Of(int) { return nullptr; }
  void* const* Of(int) const { return nullptr; }
};

// A thread's cache: one list per size class, tiny and pool alike.
struct ThreadCache {
  FreeList lists[kNumClasses];
  // The owned chunk and the fast-path counters: in this block, beside the lists,
  // so the fast paths address all three through one TLS offset.
  ThreadHot hot;
  // Each class's carved range, served by Refill when its list is empty. Apart
  // from the lists, so the fast path's lists stay 16 bytes each.
  CarvedRange ranges[kNumClasses];
  CacheSlots<kSlotCache> cached;  // last: the default build's lists come first

  // The list of `cls` (indexed unsigned: a class loaded as a byte needs no sign
  // extension).
  ABSL_ATTRIBUTE_ALWAYS_INLINE FreeList& ListOf(int cls) {
    return lists[static_cast<uint32_t>(cls)];
  }

  // Empty lists with their bounds: a constant initialiser for TLS.
  static constexpr ThreadCache Empty() {
    ThreadCache cache{};
    for (int cls = 0; cls < kNumClasses; ++cls) {
      const bool cached = config::kPoolTls || cls < kNumTinyClasses;
      cache.lists[cls].max = cached ? ace::DefaultLimit(cls) : 0;
    }
    return cache;
  }

  // Every block the cache hands out: word 1 cleared of the freed-block tag, or
  // (hardened) its live byte set.
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void HandOut(void* block) {
    MarkInUse(block);
    MarkLive(block);
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Pop(int cls) {
    FreeList& list = ListOf(cls);
    if constexpr (kSlotCache) {
      const uint32_t count = list.count;
      if (ABSL_PREDICT_FALSE(count == 0)) return nullptr;
      void* block = SlotsOf(cls)[count - 1];
      list.count = count - 1;
      HandOut(block);
      return block;
    }
    void* block = list.head;
    if (ABSL_PREDICT_TRUE(block != nullptr)) {
      list.head = LoadLinkOrEnd(block);
      list.count = (list.count - 1) | LinkFailure(block);
      HandOut(block);
    }
    return block;
  }

  // false when the list is full (the caller flushes).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool Push(int cls, void* block) {
    return PushAt(static_cast<uint32_t>(cls) * kClassListStride, block);
  }

  // Push for the class whose list is at byte `list_offset` of `lists`
  // (SlabMeta::list_offset: the free fast path indexes with no shift).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool PushAt(uint32_t list_offset, void* block) {
    FreeList& list = *reinterpret_cast<FreeList*>(reinterpret_cast<char*>(lists) + list_offset);
    if (ABSL_PREDICT_FALSE(list.count >= list.max)) return false;
    MarkFree(block);
    if constexpr (kSlotCache) {
      SlotsOf(static_cast<int>(list_offset / kClassListStride))[list.count++] = block;
      return true;
    }
    StoreLink(block, list.head);
    list.head = block;
    ++list.count;
    return true;
  }

  // The block Pop would return next (a double free of it is detectable in one
  // compare), or nullptr.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Head(int cls) const {
    if constexpr (kSlotCache) {
      const uint32_t count = lists[cls].count;
      return count != 0 ? SlotsOf(cls)[count - 1] : nullptr;
    }
    return lists[cls].head;
  }

  // Calls fn(block) for every block cached for `cls`, from the next one Pop
  // would return.
  template <typename Fn>
  void ForEachCached(int cls, Fn fn) const {
    if constexpr (kSlotCache) {
      for (uint32_t i = lists[cls].count; i-- > 0;) fn(SlotsOf(cls)[i]);
    } else {
      for (void* p = lists[cls].head; p != nullptr; p = LoadLink(p)) fn(p);
    }
  }

  // Called when the list is empty: returns the next block of the class's carved
  // range, or refills the list with one batch (and maybe a new range) and returns
  // one block (nullptr: out of memory). `*zeroed` tells whether the block reads as
  // zero (a range of fresh memory). Uncached (max 0): no range; the block
  // returned, and as many more as the heap profiler counts as unsampled
  // (profiler::UnsampledBlocks).
  ABSL_ATTRIBUTE_NOINLINE void* Refill(Heap* heap, int cls, bool* zeroed) {
    FreeList& list = ListOf(cls);
    if (ABSL_PREDICT_FALSE(list.count != 0)) {  // Pop ended the list at a bad link
      ReportCorruptList(cls, list.count & ~kListCorrupt);
      list.count = 0;  // those blocks are leaked, never handed out
    }
    // Blocks other threads freed come back before fresh memory is handed out (the
    // range, or a new slab): drained into the lists of their classes (those with
    // room; the rest to their slabs), this one's first block is the answer.
    if (heap->remote.MaybeNonEmpty()) {
      DrainRemote(heap, &thread_cache::KeepDrained);
      if (void* block = Pop(cls)) {
        *zeroed = false;
        return block;
      }
    }
    CarvedRange& range = ranges[cls];
    if (range.next == range.end) {
      MaybeDecay(heap);  // the decay clock ticks on the slow paths only
      int batch = kSizeClasses[cls].batch;
      if constexpr (config::kAce) {
        if (ABSL_PREDICT_TRUE(list.max != 0)) batch = static_cast<int>(Adapt(heap, cls));
      }
      int want = batch;
      if (ABSL_PREDICT_FALSE(list.max == 0)) {
        want = 1;
        if (profiler::Enabled())
          want += profiler::UnsampledBlocks(kSizeClasses[cls].size, batch - 1);
        if (!config::kPoolTls && cls >= kNumTinyClasses)
          stats::Count(stats::Counter::k_fallback_pool_uncached);
      }
      // (The slots take what the refill leaves: uncached lists, too, keep the
      // blocks the heap profiler skips.)
      if (kSlotCache && want > static_cast<int>(kCacheSlots) + 1) want = kCacheSlots + 1;
      void* head = nullptr;
      const int got = AllocBatch(heap, cls, want, &head, list.max != 0 ? &range : nullptr);
      if (got == 0 && range.next == range.end) return nullptr;
      stats::Count(stats::Counter::k_cache_refills);
      if (got != 0) {
        if constexpr (kSlotCache) {
          // The batch's links were written by AllocBatch a moment ago: the
          // blocks go into the slots, the second of the batch on top.
          void* p = head;
          for (int i = got - 1; i > 0; --i) SlotsOf(cls)[i - 1] = p = LoadLink(p);
        } else {
          list.head = LoadLink(head);
        }
        list.count = static_cast<uint32_t>(got - 1);
        HandOut(head);
        *zeroed = false;
        return head;
      }
    }
    void* block = range.next;
    range.next += kSizeClasses[cls].size;
    HandOut(block);  // a reused unit may hold an old block's freed-block tag
    *zeroed = range.zeroed;
    return block;
  }

  // The list is full: gives one batch back to the slabs, then keeps `block`.
  // Uncached (max 0): `block` goes straight back to its slab.
  ABSL_ATTRIBUTE_NOINLINE void Flush(Heap* heap, int cls, void* block) {
    MaybeDecay(heap);
    FreeList& list = ListOf(cls);
    if (ABSL_PREDICT_FALSE((list.count & kListCorrupt) != 0)) {  // Pop ended the list at a bad link
      ReportCorruptList(cls, list.count & ~kListCorrupt);
      // Those blocks are leaked, never handed out; the list starts again at `block`.
      MarkFree(block);
      StoreLink(block, nullptr);
      list.head = block;
      list.count = 1;
      return;
    }
    if (ABSL_PREDICT_FALSE(list.max == 0)) {
      // No cache head to catch an immediate double free: the slab's free list
      // head does.
      SuperSlab* ss = SuperSlabOf(block);
      if (ABSL_PREDICT_FALSE(SlabOf(ss, block)->free_list == block)) {
        return ReportInvalidFree(block, "double free", "free");
      }
      profiler::OnFree(block);
      StoreLink(block, nullptr);
      FreeBlockList(heap, block);
      stats::Count(stats::Counter::k_cache_flushes);
      return;
    }
    uint32_t batch = kSizeClasses[cls].batch;
    if constexpr (config::kAce) {
      batch = Adapt(heap, cls);
      if (list.count < list.max) {  // the limit grew: keep the block, give nothing back
        Push(cls, block);
        return;
      }
    }
    if constexpr (kSlotCache) {
      // The newest `batch` blocks go back (as the default build's list head does).
      if (batch == 0) batch = 1;
      if (batch > list.count) batch = list.count;  // (the list is full: count >= 1)
      list.count -= batch;
      FreeBlockList(heap, LinkSlots(cls, list.count, batch));
      stats::Count(stats::Counter::k_cache_flushes);
      Push(cls, block);
      return;
    }
    void* head = list.head;
    void* last = head;
    uint32_t returned = 1;
    void* rest = LoadLink(last);
    while (returned < batch && rest != nullptr) {
      last = rest;
      rest = LoadLink(last);
      ++returned;
    }
    StoreLink(last, nullptr);
    FreeBlockList(heap, head);
    stats::Count(stats::Counter::k_cache_flushes);
    MarkFree(block);
    StoreLink(block, rest);
    list.head = block;
    list.count = list.count - returned + 1;
  }

  // ACE (hakmem/ace): a refill or flush of `cls` is an event of its class; its
  // list takes the limit ACE leaves it, and lists whose limit ACE lowered give
  // back what they hold beyond it. Returns the blocks a refill or flush moves.
  ABSL_ATTRIBUTE_NOINLINE uint32_t Adapt(Heap* heap, int cls) {
    const ace::Decision decision = ace::OnEvent(&ace::tls_ace, cls);
    lists[cls].max = decision.limit;
    if (ABSL_PREDICT_FALSE(ace::HasTrims(ace::tls_ace))) {
      for (int c; (c = ace::TakeTrim(&ace::tls_ace, 0, kNumClasses)) >= 0;) {
        FreeList& list = lists[c];
        if (list.max == 0) continue;  // uncached
        list.max = ace::LimitOf(ace::tls_ace, c);
        // (A list a forged link ended is left for its refill or flush to report.)
        if (list.count <= list.max || (list.count & kListCorrupt) != 0) continue;
        if constexpr (kSlotCache) {  // the newest count - max blocks go back
          FreeBlockList(heap, LinkSlots(c, list.max, list.count - list.max));
          list.count = list.max;
          continue;
        }
        void* last = list.head;  // the first count - max blocks go back
        for (uint32_t i = 1; i < list.count - list.max; ++i) last = LoadLink(last);
        void* head = list.head;
        list.head = LoadLink(last);
        list.count = list.max;
        StoreLink(last, nullptr);
        FreeBlockList(heap, head);
      }
    }
    return decision.batch;
  }

  // Heap profiling: a list takes no freed block from now on (every free of this
  // thread reaches Flush, and the profiler), and holds only what a refill left
  // for allocations the sampler has already passed over. Set when the thread
  // attaches its heap, its lists empty.
  void SetUncached() {
    for (FreeList& list : lists) list.max = 0;
  }

  // Gives every cached block and range back to the slabs (thread exit, trim).
  void FlushAll(Heap* heap) {
    for (int cls = 0; cls < kNumClasses; ++cls) {
      FreeList& list = lists[cls];
      if constexpr (kSlotCache) {
        if (list.count != 0) FreeBlockList(heap, LinkSlots(cls, 0, list.count));
      } else if (list.head != nullptr) {
        FreeBlockList(heap, list.head);
      }
      list.head = nullptr;
      list.count = 0;
    }
    for (CarvedRange& range : ranges) {
      ReturnRange(heap, range);
      range = CarvedRange{};
    }
  }

  // Whether `block` is on the list of `cls` or in its range (the double-free
  // search: a block of the range was never handed out).
  bool Contains(int cls, const void* block) const {
    const CarvedRange& range = ranges[cls];
    if (block >= range.next && block < range.end) return true;
    bool found = false;
    ForEachCached(cls, [&](const void* p) { found |= p == block; });
    return found;
  }

 private:
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* const* SlotsOf(int cls) const { return cached.Of(cls); }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void** SlotsOf(int cls) { return cached.Of(cls); }

  // Links the blocks of slots [first, first + n) of `cls` (n >= 1) into a list
  // for the slabs; returns its head.
  void* LinkSlots(int cls, uint32_t first, uint32_t n) {
    void** slots = SlotsOf(cls);
    for (uint32_t i = first; i + 1 < first + n; ++i) StoreLink(slots[i], slots[i + 1]);
    StoreLink(slots[first + n - 1], nullptr);
    return slots[first];
  }
};

namespace thread_cache {

// Starts as empty lists (the sentinel state): the first allocation of each class
// takes the refill path, which is where a thread's heap is attached. __thread
// rather than thread_local: the compiler then calls no TLS init wrapper.
extern __thread ThreadCache tls_cache HAKMEM_TLS;

// Gives the calling thread a heap (hakmem::AttachHeap) that knows this thread's
// ThreadHot.
inline Heap* AttachHeap() { return hakmem::AttachHeap(&tls_cache.hot); }

// The calling thread's fast-path counters (stats::FastCounters in tls_cache.hot).
inline constexpr size_t kFastCountersAt =
    offsetof(ThreadCache, hot) + offsetof(ThreadHot, counters);
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountClassAlloc(uint32_t cls) {
  stats::CountClassAlloc<kFastCountersAt>(tls_cache, cls);
}
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountLocalFree() {
  stats::CountLocalFree<kFastCountersAt>(tls_cache);
}

// A cached block of `cls`, or nullptr (then call Refill).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* TryAlloc(int cls) { return tls_cache.Pop(cls); }

// The list of `cls` is empty: a block of its carved range, or of a refill from
// `heap` (nullptr: out of memory); `*zeroed` says whether it reads as zero.
ABSL_ATTRIBUTE_NOINLINE void* Refill(Heap* heap, int cls, bool* zeroed);

// Caches a block of `cls` freed by its owner; false when the list is full (or
// uncached): then call Flush.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool TryFree(int cls, void* block) {
  return tls_cache.Push(cls, block);
}

// The same for the class whose list is at byte `list_offset` of the lists
// (SlabMeta::list_offset).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool TryFreeAt(uint32_t list_offset, void* block) {
  return tls_cache.PushAt(list_offset, block);
}

// The list of `cls` is full: gives a batch back to `heap`'s slabs and keeps
// `block` (uncached: `block` goes straight back to its slab).
ABSL_ATTRIBUTE_NOINLINE void Flush(Heap* heap, int cls, void* block);

// Whether `block` is cached now (a search of the class's list: slow path only).
bool IsCached(int cls, const void* block);

// Blocks cached for `cls` now.
uint32_t CachedBlocks(int cls);

// Heap profiling: this thread's caches never hold a block (see profiler.h).
void SetUncached();

// Prewarm builds: a new thread's caches get one batch of each pool class up to
// 8 KiB.
void Prewarm(Heap* heap);

// Thread exit, trim: every cached block and range goes back to the slabs.
void FlushAll(Heap* heap);

}  // namespace thread_cache
}  // namespace hakmem

#endif  // HAKMEM_THREAD_CACHE_THREAD_CACHE_H_
