// heap: one thread's memory: its superslabs, its slabs per class, its large runs
// and the remote queue other threads free into.
//
// Owns: Heap (in a metadata arena mapped by platform, never by malloc; a heap is
// never freed, it is handed to the next thread when its thread exits), the slab
// state machine (current -> full -> partial -> kept empty -> released), batch
// carving for the thread caches, the remote-queue drain, and the list of
// abandoned heaps that new threads adopt. Also the thread-cache template both
// tiny_tls and pool_tls use, which asks ace for its limits on its slow paths.
// Thread-safety: everything taking a Heap* runs on the thread that owns the heap
// (tls_heap), except RemoteQueue pushes; attach/abandon take the heaps lock.
// Called by: tiny_tls, pool_tls, free_dispatch, core.
#ifndef HAKMEM_HEAP_HEAP_H_
#define HAKMEM_HEAP_HEAP_H_

#include <cstddef>
#include <cstdlib>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/ace/ace.h"
#include "hakmem/config/build_config.h"
#include "hakmem/config/options.h"
#include "hakmem/platform/platform.h"
#include "hakmem/profiler/profiler.h"
#include "hakmem/registry/registry.h"
#include "hakmem/remote_queue/remote_queue.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/stats/stats.h"
#include "hakmem/superslab/free_link.h"
#include "hakmem/superslab/superslab.h"

namespace hakmem {

struct Heap {
  RemoteQueue remote;  // written by other threads: on its own cache line
  alignas(64) SlabMeta* current[kNumClasses];
  SlabMeta* partial[kNumClasses];  // slabs with free blocks, not current
  // Empty slabs kept for the next refills of their class instead of released and
  // carved again (churn): up to what the class's thread cache holds (KeepEmpty in
  // heap.cc). Linked through next/prev. A class that took none of its kept slabs
  // between two decay ticks has them decommitted and released at the second;
  // trim, thread exit, and a heap about to take a new superslab release them all.
  SlabMeta* empty[kNumClasses];
  uint16_t empty_count[kNumClasses];
  uint32_t empty_total;              // kept slabs, all classes
  uint64_t empty_taken[2];           // classes that took a kept slab since the last tick
  SuperSlab* superslabs;           // owned superslabs
  uint32_t superslab_count;        // in the list
  uint32_t empty_superslabs;       // owned superslabs with no unit in use
  // Freed large runs kept whole for reuse (at most kLargeCacheUnits units in all).
  SlabMeta* large_cache[8];
  uint32_t large_cache_count;
  uint32_t large_cache_units;
  uint64_t next_decay_ns;          // next decay tick; 0: nothing waits for one
  uint64_t clock_ns;               // the clock as last read by MaybeDecay
  int32_t decay_countdown;         // slow-path calls until the clock is read again
  // This heap's address ^ the freed-block tag: a superslab's `owner` is written
  // through (remote frees) only after its seal checks, so an owner forged by an
  // overflow into a superslab header is reported instead of written to.
  uintptr_t seal;
  bool live;                       // a thread runs on it (under the heaps lock; IsAbandoned reads it without)
  uint32_t thread_id;
  Heap* next_all;                  // every heap ever made (under the heaps lock)
  Heap* next_abandoned;            // heaps waiting for a thread
};

// The calling thread's heap. It starts at a sentinel that owns nothing, so the
// free fast path's owner test fails without an init branch and the first
// allocation takes the slow path, which attaches a real heap. Initial-exec TLS,
// declared __thread (not thread_local) so no TLS init wrapper is called on access.
extern __thread Heap* tls_heap HAKMEM_TLS;
extern Heap g_sentinel_heap;

// A 2 MiB chunk (address >> 21) holding a superslab the calling thread's heap
// owns, or kNoOwnedChunk (no address maps to it): the free fast path's shortcut past the registry and the owner
// test. Only the owner thread sets it (after a local free) and clears it (when
// the superslab leaves the heap), so a match proves ownership.
inline constexpr uintptr_t kNoOwnedChunk = ~uintptr_t{0};
extern __thread uintptr_t tls_owned_chunk HAKMEM_TLS;

ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool HasHeap() { return tls_heap != &g_sentinel_heap; }

static_assert(kSizeClasses[0].size >= 2 * sizeof(uint64_t), "every slab block has a word 1");

// Whether `p` is the start of a block of class `cls` in a slab of the calling
// thread's heap: hardened builds check every block a thread cache is about to hand
// out, so a forged link can never make malloc return an address of its choosing.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool IsOwnBlockOfClass(const void* p, int cls) {
  SuperSlab* ss = SuperSlabOf(p);
  if (registry::Lookup(p) != ss || ss->owner.load(std::memory_order_relaxed) != tls_heap) return false;
  const SlabMeta* slab = SlabOf(ss, p);
  return slab->cls == cls && p >= slab->start && IsBlockStart(slab, p);
}

// Gives the calling thread a heap: an abandoned one (adopting its slabs and its
// pending remote frees) or a new one. nullptr if no metadata memory is left.
Heap* AttachHeap();
// Hands the calling thread's heap back (its thread caches must be flushed first):
// drains remote frees, releases empty slabs and superslabs, and puts the heap on
// the abandoned list.
void AbandonHeap();

// One decay tick: releases kept empty slabs and decommits the free units of the
// heap's superslabs that have been free for the purge delay (DecayFreeUnits).
ABSL_ATTRIBUTE_NOINLINE void DecayHeap(Heap* heap);

// The decay clock, ticked on slow paths only: every kDecayCheckInterval-th call
// reads the clock into heap->clock_ns (what slab releases are stamped with, so a
// release needs no clock read) and runs the shared caches' purge and this heap's
// decay when due.
inline constexpr int32_t kDecayCheckInterval = 16;
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void MaybeDecay(Heap* heap) {
  if (ABSL_PREDICT_TRUE(--heap->decay_countdown > 0)) return;
  heap->decay_countdown = kDecayCheckInterval;
  heap->clock_ns = platform::NowNanos();
  MaybePurge();
  if (heap->next_decay_ns != 0 && heap->clock_ns >= heap->next_decay_ns) DecayHeap(heap);
}

// Gives back what the heap keeps against churn: empty slabs, cached large runs,
// and empty superslabs (to the shared cache).
void TrimHeap(Heap* heap);

// Blocks of one class never handed out: the untouched tail [next, end) of a
// slab, given to a thread cache whole (lazy carving), so that no block is written
// before the program gets it and the page faults happen where it uses them.
// `zeroed`: the tail reads as zero (its units were fresh when the slab was carved).
struct CarvedRange {
  char* next;
  char* end;
  bool zeroed;
};

// Carves up to `max` blocks of `cls` into a list linked through first words
// (*head, ending in nullptr) and returns how many. With `range`, a slab's
// untouched tail is not linked: it goes to *range whole (an empty range on entry)
// and the batch ends there, so the list may hold fewer blocks, or none. 0 (and
// no range) only when memory runs out.
int AllocBatch(Heap* heap, int cls, int max, void** head, CarvedRange* range = nullptr);

// Gives a thread cache's range back to its slab (thread exit, trim).
void ReturnRange(Heap* heap, const CarvedRange& range);

// Returns one block of `slab` (owned by `heap`) to its slab.
void FreeBlock(Heap* heap, SuperSlab* ss, SlabMeta* slab, void* block);
// Returns a list of blocks (linked through first words, nullptr-terminated) to
// their slabs; the blocks may belong to different slabs of `heap`.
void FreeBlockList(Heap* heap, void* head);

// Takes the blocks other threads freed into `heap` back into their slabs.
void DrainRemote(Heap* heap);

// A large run of `size` bytes (kPoolMax < size, or smaller with alignment)
// aligned to `alignment` (<= 1 MiB). `*zeroed` tells whether it reads as zero. A
// recently freed run of about the same length is reused first.
void* AllocLarge(Heap* heap, size_t size, size_t alignment, bool* zeroed);
// Frees a large run of the calling thread's heap: kept whole in the heap's large
// cache (used = 0) when it fits there, else its units go back to the superslab.
void FreeLarge(Heap* heap, SuperSlab* ss, SlabMeta* slab);
inline constexpr uint32_t kLargeCacheUnits = 256;  // 4 MiB

// realloc of a large block of the calling thread's heap to `size` bytes (still
// a large size) without moving it, over the free units right after its run:
// no copy, and the old run is not left behind dirty. false when the block is
// another thread's or the units are taken.
bool GrowLargeInPlace(Heap* heap, void* block, size_t size);

// Frees `block` of superslab `ss` from a thread that does not own it.
ABSL_ATTRIBUTE_NOINLINE void ReportCorruptOwner(const SuperSlab* ss, const void* block);

ABSL_ATTRIBUTE_ALWAYS_INLINE inline uintptr_t HeapSeal(const Heap* heap) {
  return reinterpret_cast<uintptr_t>(heap) ^ g_block_secrets.free_tag;
}

// The heap that owns `block` of superslab `ss`, for a free from another thread:
// its seal checked (nullptr when it fails: reported, the block leaked), and a
// slab block tagged as freed. The caller then pushes it on owner->remote.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Heap* TakeForRemoteFree(SuperSlab* ss, void* block) {
  Heap* owner = static_cast<Heap*>(ss->owner.load(std::memory_order_acquire));
  if (ABSL_PREDICT_FALSE(ss->magic != kSuperSlabMagic || owner->seal != HeapSeal(owner))) {
    ReportCorruptOwner(ss, block);
    return nullptr;
  }
  if (SlabOf(ss, block)->cls != kLargeClass) MarkFree(block);
  stats::Count(stats::Counter::k_frees_remote);
  return owner;
}

// Frees `block` of `ss` from a thread that does not own it, with a push of its
// own (free_dispatch batches them instead).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void PushRemote(SuperSlab* ss, void* block) {
  if (Heap* owner = TakeForRemoteFree(ss, block)) owner->remote.Push(block);
}

// A block freed twice in a row by its owner while the caches are uncached (heap
// profiling): reported as free_dispatch reports invalid frees (HAKMEM_INVALID_FREE).
ABSL_ATTRIBUTE_NOINLINE inline void ReportUncachedDoubleFree(const void* block) {
  stats::Count(stats::Counter::k_frees_invalid);
  platform::DiagLine()
      .Str("hakmem: invalid free of ").Hex(reinterpret_cast<uintptr_t>(block))
      .Str(" (double free)").Write();
  if (config::GetOptions().invalid_free == config::InvalidFreePolicy::kAbort) abort();
}

// Per-class free lists of a thread cache for classes [kFirst, kFirst + kCount).
// Constant-initialised to empty lists: an empty list sends the caller to its
// refill path, so the fast paths need no init branch.
struct FreeList {
  void* head;
  uint32_t count;
  // The most blocks it holds, kept beside count (no table load): the class's
  // fixed kSizeClasses[cls].cache_max to start with, then what ACE decides on the
  // slow paths (hakmem/ace); 0: uncached (heap profiling).
  uint32_t max;
};

template <int kFirst, int kCount>
struct ClassCaches {
  FreeList lists[kCount];
  // Each class's carved range, served by Refill when its list is empty. Apart
  // from the lists, so the fast path's lists stay 16 bytes each.
  CarvedRange ranges[kCount];

  // Empty lists with their bounds: a constant initialiser for TLS.
  static constexpr ClassCaches Empty() {
    ClassCaches caches{};
    for (int i = 0; i < kCount; ++i) caches.lists[i].max = kSizeClasses[kFirst + i].cache_max;
    return caches;
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Pop(int cls) {
    FreeList& list = lists[cls - kFirst];
    void* block = list.head;
    if (ABSL_PREDICT_TRUE(block != nullptr)) {
      void* next = LoadLinkOrEnd(block);
      if constexpr (config::kHardened) {
        if (next != nullptr && !IsOwnBlockOfClass(next, cls)) {
          next = ReportCorruptLink(block, reinterpret_cast<uintptr_t>(next));
        }
      }
      list.head = next;
      list.count = (list.count - 1) | LinkFailure(block);
      MarkInUse(block);
    }
    return block;
  }

  // false when the list is full (the caller flushes).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool Push(int cls, void* block) {
    FreeList& list = lists[cls - kFirst];
    if (ABSL_PREDICT_FALSE(list.count >= list.max)) return false;
    MarkFree(block);
    StoreLink(block, list.head);
    list.head = block;
    ++list.count;
    return true;
  }

  // The head of the list (a double free of it is detectable in one compare).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Head(int cls) const { return lists[cls - kFirst].head; }

  // Called when the list is empty: returns the next block of the class's carved
  // range, or refills the list with one batch (and maybe a new range) and returns
  // one block (nullptr: out of memory). `*zeroed` tells whether the block reads as
  // zero (a range of fresh memory). Uncached (max 0): no range; the block
  // returned, and as many more as the heap profiler counts as unsampled
  // (profiler::UnsampledBlocks).
  ABSL_ATTRIBUTE_NOINLINE void* Refill(Heap* heap, int cls, bool* zeroed) {
    FreeList& list = lists[cls - kFirst];
    if (ABSL_PREDICT_FALSE(list.count != 0)) {  // Pop ended the list at a bad link
      ReportCorruptList(cls, list.count & ~kListCorrupt);
      list.count = 0;  // those blocks are leaked, never handed out
    }
    CarvedRange& range = ranges[cls - kFirst];
    if (range.next == range.end) {
      MaybeDecay(heap);  // the decay clock ticks on the slow paths only
      int batch = kSizeClasses[cls].batch;
      if constexpr (config::kAce) {
        if (ABSL_PREDICT_TRUE(list.max != 0)) batch = static_cast<int>(Adapt(heap, cls));
      }
      const int want =
          list.max != 0 ? batch : 1 + profiler::UnsampledBlocks(kSizeClasses[cls].size, batch - 1);
      void* head = nullptr;
      const int got = AllocBatch(heap, cls, want, &head, list.max != 0 ? &range : nullptr);
      if (got == 0 && range.next == range.end) return nullptr;
      stats::Count(stats::Counter::k_cache_refills);
      if (got != 0) {
        list.head = LoadLink(head);
        list.count = static_cast<uint32_t>(got - 1);
        MarkInUse(head);
        *zeroed = false;
        return head;
      }
    }
    void* block = range.next;
    range.next += kSizeClasses[cls].size;
    MarkInUse(block);  // a reused unit may hold an old block's freed-block tag
    *zeroed = range.zeroed;
    return block;
  }

  // The list is full: gives one batch back to the slabs, then keeps `block`.
  // Uncached (max 0): `block` goes straight back to its slab.
  ABSL_ATTRIBUTE_NOINLINE void Flush(Heap* heap, int cls, void* block) {
    MaybeDecay(heap);
    FreeList& list = lists[cls - kFirst];
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
        return ReportUncachedDoubleFree(block);
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
        MarkFree(block);
        StoreLink(block, list.head);
        list.head = block;
        ++list.count;
        return;
      }
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
    lists[cls - kFirst].max = decision.limit;
    if (ABSL_PREDICT_FALSE(ace::HasTrims(ace::tls_ace))) {
      for (int c; (c = ace::TakeTrim(&ace::tls_ace, kFirst, kCount)) >= 0;) {
        FreeList& list = lists[c - kFirst];
        if (list.max == 0) continue;  // uncached
        list.max = ace::LimitOf(ace::tls_ace, c);
        // (A list a forged link ended is left for its refill or flush to report.)
        if (list.count <= list.max || (list.count & kListCorrupt) != 0) continue;
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
    for (FreeList& list : lists) {
      if (list.head != nullptr) FreeBlockList(heap, list.head);
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
    const CarvedRange& range = ranges[cls - kFirst];
    if (block >= range.next && block < range.end) return true;
    for (void* p = lists[cls - kFirst].head; p != nullptr; p = LoadLink(p)) {
      if (p == block) return true;
    }
    return false;
  }
};

// Whether `block`, a block of `slab` owned by the calling thread's `heap`, is free
// on its slab's list or in the heap's remote queue (drained first): the owner's
// double-free search past its thread cache.
bool IsFreeInSlab(Heap* heap, const SlabMeta* slab, const void* block);

// Whether no thread runs on `heap` now (a hint, read without the heaps lock).
inline bool IsAbandoned(const Heap* heap) { return !__atomic_load_n(&heap->live, __ATOMIC_RELAXED); }

// Frees pushed into a heap whose thread has exited come back to its slabs at
// once, not when a new thread adopts it: the caller (any thread, having just
// pushed onto heap->remote) takes the abandoned heap off the list for a moment,
// drains its remote queue and gives back what emptied (empty slabs and
// superslabs to the shared cache). Does nothing if a thread runs on it.
void ReclaimAbandoned(Heap* heap);

// Heaps that live threads or abandoned lists hold (for stats and tests).
struct HeapCounts {
  uint64_t heaps;
  uint64_t abandoned;
};
HeapCounts GetHeapCounts();

void PrepareForkHeaps();
void ParentAfterForkHeaps();
// The child keeps the forking thread's heap; the heaps of the threads that did not
// survive the fork go to the abandoned list for adoption.
void ChildAfterForkHeaps();

}  // namespace hakmem

#endif  // HAKMEM_HEAP_HEAP_H_
