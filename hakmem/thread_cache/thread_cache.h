// thread_cache: the calling thread's cache of free blocks, one list per size class
// (tiny and pool alike), in one constant-initialised initial-exec TLS block: the
// lists' core, which the two lanes' boxes below it parametrise (tiny_tls: the
// tiny lane's size table and policy; pool_tls: the pool lane's size lookup,
// policy, the pool_tls flag and prewarm). A list is a stack of block addresses in
// slots of the thread's heap (FreeList), never a chain through the blocks, so no
// use-after-free write reaches what malloc reads.
//
// Owns: ThreadCache (a FreeList and a carved range per class, and the thread's
// ThreadHot: heap's owned-superslab slots and stats' fast-path counters, kept here
// so the fast paths reach all of it through one TLS offset, beside constant
// per-thread copies of what the fast paths look up: tiny_tls's size table and
// each class's DivMagic) and its paths.
// Allocation pops a list and a local free pushes one: no atomics, no locks, a
// handful of instructions, and no branch on the lane. The fast paths name a class
// by its list offset (ListOffset) and, on x86-64, reach the lists in asm, one
// %fs-relative instruction per access (TryAllocAt, TryFreeAt). An empty list
// takes the blocks other threads freed into the heap first (every class's,
// drained into the lists with room), else is served from its class's carved
// range or refilled with a batch from the heap (its slabs, then partial slabs,
// then a new slab); a full list gives a batch back. Each list's limit and batch
// come from ace (adaptive, slow paths only);
// a limit of 0 means uncached: heap profiling (every free reaches the profiler)
// and pool classes with --define hakmem_pool_tls=off (A/B runs). A list's first
// limit and its batches before ACE adapts them are its lane's (InitialLimit,
// FixedBatch of tiny_tls and pool_tls).
// Thread-safety: the caller's own TLS only; the Heap* passed in is the caller's,
// whose lock the slow paths that touch it take (Refill, Flush, FlushAll's callers).
// Called by: free_dispatch (local free, the double-free search), core (malloc,
// thread attach and exit, trim), //hakmem (introspection).
#ifndef HAKMEM_THREAD_CACHE_THREAD_CACHE_H_
#define HAKMEM_THREAD_CACHE_THREAD_CACHE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/ace/ace.h"
#include "hakmem/config/build_config.h"
#include "hakmem/config/check.h"
#include "hakmem/config/options.h"
#include "hakmem/heap/heap.h"
#include "hakmem/platform/platform.h"
#include "hakmem/pool_tls/pool_tls.h"
#include "hakmem/profiler/profiler.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/stats/stats.h"
#include "hakmem/superslab/free_link.h"
#include "hakmem/superslab/superslab.h"
#include "hakmem/tiny_tls/tiny_tls.h"

namespace hakmem {

// The sentinel slot every list's stack starts on before its thread has a heap:
// nullptr, never written (such a list has no room, so nothing is pushed there).
extern void* g_no_cache_slots[1] HAKMEM_HIDDEN;

// The cache of one class: a stack of the addresses of its cached blocks, in the
// class's slots of the thread's heap (CacheSlotsOf), never linked through the
// blocks themselves, so a use-after-free write into a cached block reaches
// nothing malloc reads, and no address a program writes can come out of a cache
// (jemalloc's and tcmalloc's thread caches are arrays for the same reason). A pop
// or push costs what a list's does: the slot below the stack's bottom holds
// nullptr, so reading the newest block is also the test for empty.
// Constant-initialised to an empty stack with no room on g_no_cache_slots: the
// first allocation of each class takes the refill path, which is where the
// thread's heap (and its slots) is attached, so the fast paths need no init
// branch.
struct FreeList {
  // One past the newest cached block: top[-1] is the block Pop returns next, or
  // nullptr at the bottom (the sentinel slot).
  void** top;
  // One past the last slot the stack may fill: its bottom + its limit
  // (ThreadCache::limits). A push is refused at top >= end; a pop or push moves
  // top alone, so malloc's fast path writes one word of the list and the free
  // fast path tests against a load it would make anyway. Below top only when the
  // list holds more than its limit: an uncached list holding blocks the heap
  // profiler skipped, or one whose limit ACE just lowered (the slow path gives
  // the excess back).
  void** end;

  // Blocks the list may still take (below 0: held beyond the limit).
  int32_t Room() const { return static_cast<int32_t>(end - top); }
};

// The fast paths name a class by its list offset (superslab.h's ListOffset).
static_assert(kNoListOffset == ListOffset(kNumClasses), "past the last class's list");
static_assert(sizeof(FreeList) == kClassListStride &&
                  sizeof(stats::ClassCounts) == kClassListStride,
              "one offset indexes a class's list and its counts");
static_assert(ace::kMaxLimit < kCacheSlotStride, "ACE never allows more than the slots hold");

// A thread's cache: one list per size class, tiny and pool alike.
struct ThreadCache {
  FreeList lists[kNumClasses];
  // The owned-superslab slots and the fast-path counters: in this block, beside the
  // lists, so the fast paths address all three through one TLS offset.
  ThreadHot hot;
  // Each class's DivMagic at its list offset, 0 at kNoListOffset: the free fast
  // path's block-start test takes the multiplier from here (an %fs-relative load
  // at the list offset of the pointer's unit entry, no table address to form),
  // not from the SlabMeta. Constant, never written after the thread's TLS is
  // set up.
  struct ClassDivMagic {
    uint64_t div_magic;
    uint64_t unused;  // (16 bytes: the lists' stride)
  };
  ClassDivMagic div_magic[kNumClasses + 1];
  static_assert(sizeof(ClassDivMagic) == kClassListStride,
                "the free fast path's asm indexes it by list offset, in bytes");
  // Each class's carved range, served by Refill when its list is empty. Apart
  // from the lists, so the fast path's lists stay 16 bytes each.
  CarvedRange ranges[kNumClasses];
  // The most blocks each list holds (slow paths only, beside the lists so that a
  // list stays two words): its lane's first limit to start with, then what ACE
  // decides on the slow paths (hakmem/ace), at most ace::kMaxLimit (what the
  // slots hold); 0: uncached (heap profiling, pool classes with --define
  // hakmem_pool_tls=off), or no slots yet.
  uint32_t limits[kNumClasses];
  // Each list's stack (slow paths only): its bottom slot, and the blocks its
  // slots hold: kPackedStackSlots - 1 while the stack is in the heap's packed
  // slots, kCacheSlotStride - 1 once it moved to its own (heap.h says why two);
  // 0 with no slots. A list's end is its bottom + the lesser of its limit and
  // that.
  void** bottoms[kNumClasses];
  uint32_t capacities[kNumClasses];
  // Refills from the heap (kPackedHeapRefills at most) each list has made since
  // its stack was packed: the next one moves it to its own slots.
  uint8_t packed_refills[kNumClasses];
  static constexpr uint8_t kPackedHeapRefills = 3;
  // The most blocks a refill or a carve leaves on a packed stack (it is empty
  // then): half its slots, so the frees that follow fit before it has to move.
  static constexpr int32_t kPackedFill = static_cast<int32_t>(kPackedStackSlots / 2);
  // Tiny size -> list offset, indexed by the requested size itself: this
  // thread's copy of tiny_tls's SizeTable (2 KiB of TLS), so the malloc fast
  // path reads a tiny request's list offset in one %fs-relative load off the TLS
  // offset it loads anyway (tiny_tls.h says why a copy). Constant, never written
  // after the thread's TLS is set up.
  tiny_tls::SizeTable tiny_sizes;

  // The list of `cls` (indexed unsigned: a class loaded as a byte needs no sign
  // extension).
  ABSL_ATTRIBUTE_ALWAYS_INLINE FreeList& ListOf(int cls) {
    return lists[static_cast<uint32_t>(cls)];
  }
  // The list at byte `list_offset` of `lists`.
  ABSL_ATTRIBUTE_ALWAYS_INLINE FreeList& ListAt(uint32_t list_offset) {
    return *reinterpret_cast<FreeList*>(reinterpret_cast<char*>(lists) + list_offset);
  }

  // The limit of `cls`'s list, the blocks on it, and its oldest block's slot (the
  // stack's bottom).
  uint32_t Limit(int cls) const { return limits[cls]; }
  uint32_t Count(int cls) const { return static_cast<uint32_t>(lists[cls].top - bottoms[cls]); }
  void** Bottom(int cls) const { return bottoms[cls]; }
  // A new limit for `cls`; the blocks stay (room goes below 0 when the list holds
  // more: the caller gives the excess back).
  void SetLimit(int cls, uint32_t limit) {
    limits[cls] = limit;
    lists[cls].end = bottoms[cls] + (limit < capacities[cls] ? limit : capacities[cls]);
  }
  // Whether the stack of `cls` is still in the heap's packed slots.
  bool Packed(int cls) const { return capacities[cls] == kPackedStackSlots - 1; }

  // `cls`'s list takes the empty stack that starts at `bottom` (its sentinel just
  // below) and holds `capacity` blocks, at limit `limit`.
  void UseSlots(int cls, void** bottom, uint32_t capacity, uint32_t limit) {
    bottoms[cls] = bottom;
    capacities[cls] = capacity;
    packed_refills[cls] = 0;
    lists[cls].top = bottom;
    SetLimit(cls, limit);
  }

  // The stack of `cls` leaves the packed slots for its own, blocks and all (they
  // keep their order): it needs more than the packed slots hold.
  ABSL_ATTRIBUTE_NOINLINE void MoveToOwnSlots(Heap* heap, int cls) {
    HAKMEM_DCHECK(Packed(cls));
    void** own = CacheSlotsOf(heap, cls);
    const uint32_t count = Count(cls);
    for (uint32_t i = 0; i < count; ++i) own[i] = bottoms[cls][i];
    bottoms[cls] = own;
    capacities[cls] = kCacheSlotStride - 1;
    lists[cls].top = own + count;
    SetLimit(cls, limits[cls]);
  }

  // The lane of `cls` decides its list's first limit (0: uncached) and the
  // blocks its refills and flushes move before ACE adapts them.
  static constexpr uint32_t LaneInitialLimit(int cls) {
    return tiny_tls::Owns(cls) ? tiny_tls::InitialLimit(cls) : pool_tls::InitialLimit(cls);
  }
  static constexpr uint32_t LaneFixedBatch(int cls) {
    return tiny_tls::Owns(cls) ? tiny_tls::FixedBatch(cls) : pool_tls::FixedBatch(cls);
  }

  // What one TakeFromRange moves onto a list besides the block it returns:
  // 4 KiB of blocks, or kRangeCarveMinBlocks of a class above 1 KiB, less one
  // (mimalloc extends a page's free list by as much). With 4 KiB alone, a class
  // of 2 KiB or more took one slow path per block of a new slab (fragmentation:
  // 143,000 of its 171,000 slow mallocs).
  static constexpr uint32_t kRangeCarveBytes = 4096;
  static constexpr uint32_t kRangeCarveMinBlocks = 4;
  static constexpr std::array<uint32_t, kNumClasses> kRangeCarveBlocks = [] {
    std::array<uint32_t, kNumClasses> blocks{};
    for (int cls = 0; cls < kNumClasses; ++cls) {
      const uint32_t fit = kRangeCarveBytes / kSizeClasses[cls].size;
      blocks[cls] = (fit > kRangeCarveMinBlocks ? fit : kRangeCarveMinBlocks) - 1;
    }
    return blocks;
  }();
  static_assert(kRangeCarveBlocks[0] < kCacheSlotStride, "the slots hold a carve");

  // A list with no slots: empty, no room (before the thread has a heap; its
  // limit is 0).
  static constexpr FreeList NoSlots() {
    return FreeList{&g_no_cache_slots[1], &g_no_cache_slots[1]};
  }

  // Empty lists with no slots: a constant initialiser for TLS.
  static constexpr ThreadCache Empty() {
    ThreadCache cache{};
    for (int cls = 0; cls < kNumClasses; ++cls) {
      cache.div_magic[cls].div_magic = DivMagic(kSizeClasses[cls].size);
    }
    cache.div_magic[kNumClasses].div_magic = 0;  // kNoListOffset: never a block start
    cache.tiny_sizes = tiny_tls::kSizeTable;
    cache.DetachSlots();
    return cache;
  }

  // The thread attached `heap`: each list's stack is its class's packed slots
  // there, empty, at its lane's first limit. (A heap's slots are its thread's
  // alone: another thread adopts the heap only after this one detached, Detach.)
  void AttachSlots(Heap* heap) {
    for (int cls = 0; cls < kNumClasses; ++cls) {
      UseSlots(cls, PackedSlotsOf(heap, cls), kPackedStackSlots - 1, LaneInitialLimit(cls));
    }
  }

  // The lists leave their heap's slots (thread exit, after FlushAll): no slots,
  // no room, as before the heap was attached (Empty starts them so).
  constexpr void DetachSlots() {
    for (FreeList& list : lists) list = NoSlots();
    for (uint32_t& limit : limits) limit = 0;
    for (void**& bottom : bottoms) bottom = NoSlots().top;
    for (uint32_t& capacity : capacities) capacity = 0;
    for (uint8_t& refills : packed_refills) refills = 0;
  }

  // Every block the cache hands out: word 1 cleared of the freed-block tag, or
  // (hardened) its live byte set.
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void HandOut(void* block) {
    MarkInUse(block);
    MarkLive(block);
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Pop(int cls) {
    return PopAt(ListOffset(static_cast<uint32_t>(cls)));
  }

  // Pop for the class whose list is at byte `list_offset` of `lists`
  // (ListOffset: the fast paths index with no shift).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* PopAt(uint32_t list_offset) {
    FreeList& list = ListAt(list_offset);
    void* block = list.top[-1];
    if (ABSL_PREDICT_TRUE(block != nullptr)) {
      --list.top;
      HandOut(block);
    }
    return block;
  }

  // false when the list is full (the caller flushes).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool Push(int cls, void* block) {
    return PushAt(ListOffset(static_cast<uint32_t>(cls)), block);
  }

  // Push for the class whose list is at byte `list_offset` of `lists`.
  // `kTagged`: the block already carries the freed-block tag (a remote free
  // wrote it, TakeForRemoteFree), so the push does not write it again.
  template <bool kTagged = false>
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool PushAt(uint32_t list_offset, void* block) {
    FreeList& list = ListAt(list_offset);
    if (ABSL_PREDICT_FALSE(list.top >= list.end)) return false;
    if constexpr (!kTagged) MarkFree(block);
    *list.top++ = block;
    return true;
  }

  // The block Pop would return next (a double free of it is detectable in one
  // compare), or nullptr.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Head(int cls) const { return lists[cls].top[-1]; }

  // Calls fn(block) for every block cached for `cls`, from the next one Pop
  // would return.
  template <typename Fn>
  void ForEachCached(int cls, Fn fn) const {
    const FreeList& list = lists[cls];
    for (void** slot = list.top; slot != Bottom(cls);) fn(*--slot);
  }

  // Called when the list is empty: returns the next block of the class's carved
  // range, or refills the list with one batch (and maybe a new range) and returns
  // one block (nullptr: out of memory). `*zeroed` tells whether the block reads as
  // zero (a range of fresh memory). Uncached (max 0): no range; the block
  // returned, and as many more as the heap profiler counts as unsampled
  // (profiler::UnsampledBlocks).
  ABSL_ATTRIBUTE_NOINLINE void* Refill(Heap* heap, int cls, bool* zeroed) {
    // The next block of the range touches no heap state: no lock (the range is
    // the thread's own), unless remote frees wait to come back first.
    if (ranges[cls].next != ranges[cls].end && !heap->remote.MaybeNonEmpty())
      return TakeFromRange(cls, zeroed);
    return RefillFromHeap(heap, cls, zeroed);
  }

  // Refill's part that needs the heap (its own frame: the range's blocks above
  // save no registers for it).
  ABSL_ATTRIBUTE_NOINLINE void* RefillFromHeap(Heap* heap, int cls, bool* zeroed) {
    void* block;
    {
      HeapLock hold(&heap->lock);
      block = RefillLocked(heap, cls, zeroed);
    }
    AfterSlowPath();
    return block;
  }

  // The list is full: gives one batch back to the slabs, then keeps `block`.
  // Uncached (max 0): `block` goes straight back to its slab.
  ABSL_ATTRIBUTE_NOINLINE void Flush(Heap* heap, int cls, void* block) {
    {
      HeapLock hold(&heap->lock);
      FlushLocked(heap, cls, block);
    }
    AfterSlowPath();
  }

  // Refill with the heap's lock held.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* RefillLocked(Heap* heap, int cls, bool* zeroed) {
    FreeList& list = ListOf(cls);
    HAKMEM_DCHECK(Count(cls) == 0 && list.top != NoSlots().top);
    // Blocks other threads freed come back before fresh memory is handed out (the
    // range, or a new slab): drained into the lists of their classes (those with
    // room; the rest to their slabs), this one's first block is the answer.
    if (heap->remote.MaybeNonEmpty()) {
      // A block other threads freed goes to its class's list when it has room.
      DrainRemoteInto(heap, [this](const SlabMeta& slab, void* block) {
        return PushAt</*kTagged=*/true>(slab.list_offset, block);
      });
      if (void* block = Pop(cls)) {
        *zeroed = false;
        return block;
      }
    }
    CarvedRange& range = ranges[cls];
    if (range.next == range.end) {
      MaybeDecay(heap);  // the decay clock ticks on the slow paths only
      if (Packed(cls) && limits[cls] > capacities[cls]) {
        // A class past its first slabs' worth (or back for more after its
        // first batches) gets the slots its limit allows.
        if (packed_refills[cls] == kPackedHeapRefills)
          MoveToOwnSlots(heap, cls);
        else
          ++packed_refills[cls];
      }
      int batch = static_cast<int>(LaneFixedBatch(cls));
      if constexpr (config::kAce) {
        if (ABSL_PREDICT_TRUE(limits[cls] != 0))
          batch = static_cast<int>(Adapt(heap, cls, ace::Event::kRefill));
      }
      int want = batch;
      if (ABSL_PREDICT_FALSE(limits[cls] == 0)) {
        want = 1;
        if (profiler::Enabled())
          want += profiler::UnsampledBlocks(kSizeClasses[cls].size, batch - 1);
        if (!pool_tls::kCached && pool_tls::Owns(cls)) pool_tls::CountUncachedRefill();
      }
      // The slots take what the refill leaves (uncached lists too: the blocks the
      // heap profiler skips), at most what they hold (packed: kPackedFill).
      const int most = Packed(cls) ? kPackedFill : static_cast<int>(capacities[cls]) + 1;
      if (want > most) want = most;
      void* head = nullptr;
      const int got = AllocBatch(heap, cls, want, &head, limits[cls] != 0 ? &range : nullptr);
      if (got == 0 && range.next == range.end) return nullptr;
      stats::Count(stats::Counter::k_cache_refills);
      if (got != 0) {
        // The batch's links were written by AllocBatch a moment ago: the blocks go
        // into the slots, the second of the batch on top.
        void** bottom = list.top;
        void* p = head;
        for (int i = got - 1; i > 0; --i) bottom[i - 1] = p = LoadLink(p);
        list.top = bottom + (got - 1);
        HandOut(head);
        *zeroed = false;
        return head;
      }
    }
    return TakeFromRange(cls, zeroed);
  }

  // The next block of the class's range (not empty), and up to kRangeCarveBlocks
  // blocks after it onto the list, as far as its room allows: a growing heap's
  // next mallocs take the fast path instead of a Refill each. Only addresses are written, into the
  // slots: the blocks' memory stays untouched until they are handed out, the lowest address first.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TakeFromRange(int cls, bool* zeroed) {
    CarvedRange& range = ranges[cls];
    const uint32_t size = kSizeClasses[cls].size;
    char* block = range.next;
    char* next = block + size;
    FreeList& list = ListOf(cls);
    uint32_t more = kRangeCarveBlocks[cls];
    int32_t room = list.Room();
    if (Packed(cls) && room > kPackedFill) room = kPackedFill;  // (the list is empty)
    if (room < static_cast<int32_t>(more)) more = room > 0 ? static_cast<uint32_t>(room) : 0;
    // (A range ends on a block boundary: next steps onto end exactly.)
    char* stop = static_cast<size_t>(range.end - next) > size_t{more} * size
                     ? next + size_t{more} * size
                     : range.end;
    void** top = list.top;
    for (char* p = stop; p != next;) {
      p -= size;
      *top++ = p;
    }
    list.top = top;
    range.next = stop;
    HandOut(block);  // a reused unit may hold an old block's freed-block tag
    *zeroed = range.zeroed;
    return block;
  }

  // Flush with the heap's lock held.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void FlushLocked(Heap* heap, int cls, void* block) {
    MaybeDecay(heap);
    FreeList& list = ListOf(cls);
    if (ABSL_PREDICT_FALSE(limits[cls] == 0)) {
      // No cache head to catch an immediate double free: the slab's free list
      // head does.
      SuperSlab* ss = SuperSlabOf(block);
      if (ABSL_PREDICT_FALSE(SlabOf(ss, block)->free_list == block)) {
        return ReportInvalidFree(block, "double free", "free");
      }
      profiler::OnFree(block);
      FreeBlocks(heap, &block, 1);
      stats::Count(stats::Counter::k_cache_flushes);
      return;
    }
    if (Packed(cls) && Count(cls) < limits[cls]) {
      // Full only because its packed slots are: no flush, the stack moves.
      MoveToOwnSlots(heap, cls);
      Push(cls, block);
      return;
    }
    uint32_t batch = LaneFixedBatch(cls);
    if constexpr (config::kAce) {
      batch = Adapt(heap, cls, ace::Event::kFlush);
      if (list.Room() > 0) {  // the limit grew: keep the block, give nothing back
        Push(cls, block);
        return;
      }
    }
    // The newest `batch` blocks go back (the stack's top, as a list's head did).
    if (batch == 0) batch = 1;
    const uint32_t count = Count(cls);
    const uint32_t limit = limits[cls];
    // (The list is full: count >= 1. When ACE lowered the limit below it, enough
    // go back to leave `block` room.)
    if (count + 1 > limit + batch) batch = count + 1 - limit;
    if (batch > count) batch = count;
    list.top -= batch;
    FreeBlocks(heap, list.top, batch);
    stats::Count(stats::Counter::k_cache_flushes);
    Push(cls, block);
  }

  // ACE (hakmem/ace): a refill or flush of `cls` is an event of its class; its
  // list takes the limit ACE leaves it, and lists whose limit ACE lowered give
  // back what they hold beyond it. Returns the blocks a refill or flush moves.
  ABSL_ATTRIBUTE_NOINLINE uint32_t Adapt(Heap* heap, int cls, ace::Event event) {
    const ace::Decision decision = ace::OnEvent(&ace::tls_ace, cls, event);
    SetLimit(cls, decision.limit);
    if (ABSL_PREDICT_FALSE(ace::HasTrims(ace::tls_ace))) {
      for (int c; (c = ace::TakeTrim(&ace::tls_ace, 0, kNumClasses)) >= 0;) {
        if (limits[c] == 0) continue;  // uncached
        SetLimit(c, ace::LimitOf(ace::tls_ace, c));
        FreeList& list = lists[c];
        const int32_t room = list.Room();
        if (room >= 0) continue;
        // The newest `excess` blocks go back.
        const uint32_t excess = static_cast<uint32_t>(-room);
        list.top -= excess;
        FreeBlocks(heap, list.top, excess);
      }
    }
    return decision.batch;
  }

  // Heap profiling: a list takes no freed block from now on (every free of this
  // thread reaches Flush, and the profiler), and holds only what a refill left
  // for allocations the sampler has already passed over. Set when the thread
  // attaches its heap, its lists empty.
  void SetUncached() {
    for (int cls = 0; cls < kNumClasses; ++cls) SetLimit(cls, 0);
  }

  // Gives every cached block and range back to the slabs (thread exit, trim);
  // the lists stay on their slots. The caller holds the heap's lock.
  void FlushAll(Heap* heap) {
    for (int cls = 0; cls < kNumClasses; ++cls) {
      const uint32_t count = Count(cls);
      lists[cls].top = Bottom(cls);
      if (count != 0) FreeBlocks(heap, lists[cls].top, count);
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
};

namespace thread_cache {

// Starts as empty lists (the sentinel state): the first allocation of each class
// takes the refill path, which is where a thread's heap is attached. __thread
// rather than thread_local: the compiler then calls no TLS init wrapper.
extern __thread ThreadCache tls_cache HAKMEM_TLS;

// Gives the calling thread a heap (hakmem::AttachHeap) that knows this thread's
// ThreadHot, and the thread's lists that heap's slots.
inline Heap* AttachHeap() {
  Heap* heap = hakmem::AttachHeap(&tls_cache.hot);
  if (heap != nullptr) tls_cache.AttachSlots(heap);
  return heap;
}

// The list offset of a tiny request (size <= kTinyMax): one load from the
// thread's own copy of tiny_tls's table (ThreadCache::tiny_sizes), %fs-relative
// where HAKMEM_FS_ASM allows; of a pool request (kTinyMax < size <= kPoolMax):
// one load from pool_tls's shared table.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uintptr_t TinyListOffset(size_t size) {
  return tiny_tls::ListOffsetAt<offsetof(ThreadCache, tiny_sizes)>(tls_cache, size);
}
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uintptr_t PoolListOffset(size_t size) {
  return pool_tls::SizeListOffset(size);
}

// The calling thread's fast-path counters (stats::FastCounters in tls_cache.hot):
// an allocation served from the cache, and a free by the block's owner, of the
// class at `list_offset`.
inline constexpr size_t kFastCountersAt =
    offsetof(ThreadCache, hot) + offsetof(ThreadHot, counters);
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountAllocAt(uintptr_t list_offset) {
  stats::CountClassAlloc<kFastCountersAt>(tls_cache, list_offset);
}
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountLocalFreeAt(uintptr_t list_offset) {
  stats::CountLocalFree<kFastCountersAt>(tls_cache, list_offset);
}

// The fast paths' pop and push, written as asm where HAKMEM_FS_ASM says so
// (platform.h): each list access is one %fs-relative instruction, given
// tls_cache's thread offset (the one offset load of the fast path) and the list
// offset in registers. The same steps as ThreadCache::PopAt and PushAt. Each asm
// has a "memory" clobber: the compiler sees no other access to the lists.

#if HAKMEM_FS_ASM
namespace internal {

inline constexpr size_t kTopAt = offsetof(ThreadCache, lists) + offsetof(FreeList, top);
inline constexpr size_t kEndAt = offsetof(ThreadCache, lists) + offsetof(FreeList, end);

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void** LoadTop(uintptr_t tls, uintptr_t list_offset) {
  void** top;
  asm volatile("movq %%fs:%c3(%1,%2), %0"
               : "=r"(top)
               : "r"(tls), "r"(list_offset), "i"(kTopAt)
               : "memory");
  return top;
}

// The newest block on a stack, top[-1] (nullptr: the bottom). (In %rax: malloc's
// fast path returns it with no move.)
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* LoadNewest(void** top) {
  void* block;
  asm volatile("movq -8(%1), %0" : "=a"(block) : "r"(top) : "memory");
  return block;
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void StoreTop(uintptr_t tls, uintptr_t list_offset,
                                                  void** top) {
  asm volatile("movq %2, %%fs:%c3(%0,%1)"
               :
               : "r"(tls), "r"(list_offset), "r"(top), "i"(kTopAt)
               : "memory");
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* PopAt(uintptr_t list_offset) {
  const uintptr_t tls = platform::ThreadOffset(tls_cache);
  void** top = LoadTop(tls, list_offset);
  void* block = LoadNewest(top);
  if (ABSL_PREDICT_TRUE(block != nullptr)) {
    StoreTop(tls, list_offset, top - 1);
    ThreadCache::HandOut(block);
  }
  return block;
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool PushAt(uintptr_t list_offset, void* block) {
  const uintptr_t tls = platform::ThreadOffset(tls_cache);
  // Tagged first: a refused push's block is tagged by Flush too.
  MarkFree(block);
  void** top = LoadTop(tls, list_offset);
  asm goto("cmpq %%fs:%c3(%0,%1), %2\n\tjae %l[full]"
           :
           : "r"(tls), "r"(list_offset), "r"(top), "i"(kEndAt)
           : "cc", "memory"
           : full);
  *top = block;
  StoreTop(tls, list_offset, top + 1);
  return true;
full:
  return false;
}

}  // namespace internal
#endif

// The DivMagic of the class whose list is at `list_offset` (0 at
// kNoListOffset); on x86-64 the free fast path reads it in asm at kDivMagicAt
// from tls_cache's thread offset, plus the list offset.
inline constexpr size_t kDivMagicAt = offsetof(ThreadCache, div_magic);
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uint64_t DivMagicAt(uintptr_t list_offset) {
  return tls_cache.div_magic[list_offset / kClassListStride].div_magic;
}

// A cached block of the class whose list is at `list_offset`, or nullptr (then
// call Refill).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* TryAllocAt(uintptr_t list_offset) {
#if HAKMEM_FS_ASM
  return internal::PopAt(list_offset);
#else
  return tls_cache.PopAt(list_offset);
#endif
}

// The same for `cls`.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* TryAlloc(int cls) {
  return TryAllocAt(ListOffset(static_cast<uint32_t>(cls)));
}

// The list of `cls` is empty: a block of its carved range, or of a refill from
// `heap` (nullptr: out of memory); `*zeroed` says whether it reads as zero.
ABSL_ATTRIBUTE_NOINLINE void* Refill(Heap* heap, int cls, bool* zeroed);

// Caches a block freed by its owner, of the class whose list is at byte
// `list_offset` of the lists (UnitEntry::list_offset); false when the list is full
// (or uncached): then call Flush.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool TryFreeAt(uintptr_t list_offset, void* block) {
#if HAKMEM_FS_ASM
  return internal::PushAt(list_offset, block);
#else
  return tls_cache.PushAt(list_offset, block);
#endif
}

// The same for a block of `cls`.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool TryFree(int cls, void* block) {
  return TryFreeAt(ListOffset(static_cast<uint32_t>(cls)), block);
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

// Prewarm builds: a new thread's caches get one batch of each class pool_tls
// prewarms (pool_tls::Prewarms).
void Prewarm(Heap* heap);

// Trim: every cached block and range goes back to the slabs.
void FlushAll(Heap* heap);

// Thread exit (before the heap is abandoned to another thread): FlushAll, then
// the lists leave the heap's slots (no slots, no room, as before the heap was
// attached).
void Detach(Heap* heap);

}  // namespace thread_cache
}  // namespace hakmem

#endif  // HAKMEM_THREAD_CACHE_THREAD_CACHE_H_
