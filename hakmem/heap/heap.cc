#include "hakmem/heap/heap.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <new>

#include "hakmem/config/build_config.h"
#include "hakmem/config/check.h"
#include "hakmem/config/options.h"
#include "hakmem/platform/platform.h"
#include "hakmem/platform/spin_lock.h"
#include "hakmem/registry/registry.h"

namespace hakmem {

// `{}`: aggregate initialisation, a constant expression in C++17 (plain default
// initialisation leaves members without initialisers, which clang rejects here).
ABSL_CONST_INIT Heap g_sentinel_heap{};
ABSL_CONST_INIT __thread Heap* tls_heap HAKMEM_TLS = &g_sentinel_heap;
ABSL_CONST_INIT std::atomic<ReleaseThread> g_release_thread{ReleaseThread::kOff};

namespace {

using stats::Count;
using stats::Counter;

ABSL_CONST_INIT platform::SpinLock g_heaps_lock;
ABSL_CONST_INIT Heap* g_all_heaps ABSL_GUARDED_BY(g_heaps_lock) = nullptr;
ABSL_CONST_INIT Heap* g_abandoned ABSL_GUARDED_BY(g_heaps_lock) = nullptr;
ABSL_CONST_INIT uint64_t g_heap_count ABSL_GUARDED_BY(g_heaps_lock) = 0;
ABSL_CONST_INIT uint64_t g_abandoned_count ABSL_GUARDED_BY(g_heaps_lock) = 0;
// The metadata arena Heap objects are placed in.
ABSL_CONST_INIT char* g_arena_cursor ABSL_GUARDED_BY(g_heaps_lock) = nullptr;
ABSL_CONST_INIT char* g_arena_end ABSL_GUARDED_BY(g_heaps_lock) = nullptr;

// The background release: whether the program's main has started (its thread
// starts no earlier), and the lock it holds for a pass (fork takes it, so that
// no heap lock is held by a thread the child lacks).
ABSL_CONST_INIT std::atomic<bool> g_main_started{false};
ABSL_CONST_INIT platform::SpinLock g_release_pass_lock;

constexpr size_t kArenaChunk = size_t{1} << 20;
constexpr size_t kHeapBytes = (sizeof(Heap) + 63) & ~size_t{63};

// `bytes` (a multiple of 64) of zeroed metadata memory from the arena, never
// given back; nullptr when no chunk can be mapped.
void* ArenaCarveLocked(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_heaps_lock) {
  if (g_arena_end - g_arena_cursor < static_cast<ptrdiff_t>(bytes)) {
    char* chunk = static_cast<char*>(platform::Reserve(kArenaChunk, platform::kPageSize));
    if (chunk == nullptr) return nullptr;
    g_arena_cursor = chunk;
    g_arena_end = chunk + kArenaChunk;
  }
  void* memory = g_arena_cursor;
  g_arena_cursor += bytes;
  return memory;
}

// A zeroed Heap from the metadata arena.
Heap* NewHeapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_heaps_lock) {
  InitBlockSecrets();  // before the first block exists
  void** cache_slots = static_cast<void**>(platform::Reserve(kCacheSlotBytes, platform::kPageSize));
  if (cache_slots == nullptr) return nullptr;
  void* memory = ArenaCarveLocked(kHeapBytes);
  if (memory == nullptr) {
    platform::Release(cache_slots, kCacheSlotBytes);
    return nullptr;
  }
  Heap* heap = new (memory) Heap();
  heap->seal = HeapSeal(heap);
  heap->cache_slots = cache_slots;
  heap->next_all = g_all_heaps;
  g_all_heaps = heap;
  ++g_heap_count;
  return heap;
}

// After a change of ss's backed-run bound: the heap's bound covers it, and ss is
// on the heap's backed list if and only if its bound is not 0. (A bound that
// AllocRun lowers to 0 elsewhere is noted by the next search or decay tick.)
void NoteBackedRuns(Heap* heap, SuperSlab* ss) {
  if (ss->longest_backed_run > heap->backed_run_bound)
    heap->backed_run_bound = ss->longest_backed_run;
  const bool listed = heap->backed.Holds(ss);
  if (ss->longest_backed_run != 0 && !listed) {
    heap->backed.PushFront(ss);
  } else if (ss->longest_backed_run == 0 && listed) {
    heap->backed.Remove(ss);
  }
}

void LinkSuperSlab(Heap* heap, SuperSlab* ss) {
  heap->superslabs.PushFront(ss);
  NoteBackedRuns(heap, ss);
}

void UnlinkSuperSlab(Heap* heap, SuperSlab* ss) {
  HAKMEM_DCHECK(ss->owner.load(std::memory_order_relaxed) == heap);
  ThreadHot* hot = heap->hot;  // (nullptr: no thread, no shortcut)
  // Leaving the heap: no longer proof of ownership.
  if (hot != nullptr) hot->ForgetOwned(reinterpret_cast<uintptr_t>(ss));
  heap->superslabs.Remove(ss);
  if (heap->backed.Holds(ss)) heap->backed.Remove(ss);
  ++heap->superslabs_unlinked;
}

void PushPartial(Heap* heap, SlabMeta* slab) {
  HAKMEM_DCHECK(slab->cls < kNumClasses && slab->state != SlabState::kPartial);
  slab->state = SlabState::kPartial;
  heap->partial[slab->cls].PushFront(slab);
}

void RemovePartial(Heap* heap, SlabMeta* slab) { heap->partial[slab->cls].Remove(slab); }

void ReleaseKeptEmptySlabs(Heap* heap, bool cold_only = false);
void ReleaseCachedLargeRuns(Heap* heap);

// Whether the heap's dense blocks already fill kSmallPageSuperSlabs superslabs,
// so that its next dense superslab is worth a huge page. Its sparse superslabs do
// not count: a heap of big blocks (mid_large_mt, cross_thread) that holds a
// little of every small class would otherwise back that little with 2 MiB pages.
bool HasBigDenseDemand(const Heap* heap) {
  uint32_t dense = 0;
  for (const SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
    if (ss->occupancy == Occupancy::kDense && ss->used_units != 0 &&
        ++dense >= kSmallPageSuperSlabs)
      return true;
  }
  return false;
}

// A run of `units` for blocks of `occupancy`: backed units of any of the heap's
// superslabs, else untouched ones of a superslab of that occupancy or an empty
// one, else a newly acquired superslab. Memory already backed comes first, in
// every superslab of the heap, before any is taken untouched: a
// run of backed free units; else one of the units the heap keeps against churn
// (the kept empty slabs of classes that took none since the last decay tick, and
// cached large runs, are released for it: the heap does not grow for them); then
// untouched units; then a new superslab. So the heap's RSS grows only when
// nothing it has touched fits, but for the kept slabs of classes still reusing
// them: a slab carved for another class over their units would touch new pages
// where its blocks start (the old blocks' pages, those of a big class above all,
// are not the new ones'), and the class would carve new slabs in turn.
SlabMeta* AllocRunInHeap(Heap* heap, size_t units, size_t align_units, Occupancy occupancy,
                         bool* fresh) {
  // Backed units: the superslabs of the heap's backed list (a superslab whose
  // bound a failed search lowered to 0 leaves it).
  auto carve_backed = [&]() -> SlabMeta* {
    if (units > heap->backed_run_bound) return nullptr;
    uint8_t longest_backed = 0;  // over the superslabs passed
    for (SuperSlab* ss = heap->backed.head(); ss != nullptr;) {
      SuperSlab* next = heap->backed.Next(ss);
      if (MayFitRun(ss, units, RunUnits::kBackedOnly)) {
        const bool was_empty = ss->used_units == 0;
        if (SlabMeta* slab = AllocRun(ss, units, align_units, fresh, RunUnits::kBackedOnly)) {
          if (was_empty) {
            --heap->empty_superslabs;
            ss->occupancy = occupancy;
          }
          return slab;
        }
        if (ss->longest_backed_run == 0) heap->backed.Remove(ss);
      }
      if (ss->longest_backed_run > longest_backed) longest_backed = ss->longest_backed_run;
      ss = next;
    }
    // Every superslab with backed units passed: the bound is now as tight as
    // theirs.
    heap->backed_run_bound = longest_backed;
    return nullptr;
  };
  // Untouched units too (backed ones first in each superslab).
  auto carve = [&]() -> SlabMeta* {
    for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
      if (!MayFitRun(ss, units, RunUnits::kAny)) continue;
      const bool was_empty = ss->used_units == 0;
      // Backed units cost no more memory whatever blocks they take, so any
      // superslab's will do; untouched ones only in a superslab of the blocks'
      // occupancy (its pages: 2 MiB ones would back a big block's untouched
      // pages, 4 KiB ones fault the dense blocks in page by page).
      if (ss->occupancy != occupancy && !was_empty) continue;
      if (SlabMeta* slab = AllocRun(ss, units, align_units, fresh, RunUnits::kAny)) {
        if (was_empty) {
          --heap->empty_superslabs;
          ss->occupancy = occupancy;
        }
        return slab;
      }
      NoteBackedRuns(heap, ss);  // (a failed search may have lowered the bound)
    }
    return nullptr;
  };
  if (SlabMeta* slab = carve_backed()) return slab;
  if (heap->empty_total != 0 || heap->large_cache_count != 0) {
    ReleaseKeptEmptySlabs(heap, /*cold_only=*/true);
    ReleaseCachedLargeRuns(heap);
    if (SlabMeta* slab = carve_backed()) return slab;
  }
  if (SlabMeta* slab = carve()) return slab;
  SuperSlab* ss = AcquireSuperSlab(
      heap, occupancy,
      occupancy == Occupancy::kDense && HasBigDenseDemand(heap) ? Pages::kHuge : Pages::kSmall);
  if (ss == nullptr) return nullptr;
  LinkSuperSlab(heap, ss);
  return AllocRun(ss, units, align_units, fresh);
}

// Whether `cls` took one of its kept slabs since the last decay tick.
bool ReusesKeptSlabs(const Heap* heap, int cls) {
  return (heap->empty_taken[cls / 64] & (uint64_t{1} << (cls % 64))) != 0;
}

// An empty slab of `cls` is kept (not released) while the class has fewer kept
// than its thread cache holds, in slabs: what one cache's worth of demand takes,
// so a class that empties and refills slabs in a cycle reuses them instead of
// carving new ones. At least one. The limit is ACE's for the calling thread (the
// owner: every caller of FreeBlock is), the fixed one with --define hakmem_ace=off.
// A class that took a kept slab since the last decay tick is in such a cycle,
// wider than its cache (blocks freed by other threads, whose demand swings by
// more than a cache, to and fro): it keeps up to a superslab's worth of units.
bool KeepEmpty(const Heap* heap, int cls) {
  if (ReusesKeptSlabs(heap, cls)) {
    return (heap->empty[cls].size() + 1) * kSizeClasses[cls].slab_units <= kCarvableUnits;
  }
  const uint32_t blocks = kSizeClasses[cls].blocks;
  const uint32_t slabs = (ace::LimitOf(ace::tls_ace, cls) + blocks - 1) / blocks;
  return heap->empty[cls].size() < (slabs > 1 ? slabs : 1);
}

void PushEmpty(Heap* heap, SlabMeta* slab) {
  slab->state = SlabState::kPartial;  // free blocks, not current: as a partial slab
  heap->empty[slab->cls].PushFront(slab);
  ++heap->empty_total;
}

void RemoveEmpty(Heap* heap, SlabMeta* slab) {
  heap->empty[slab->cls].Remove(slab);
  --heap->empty_total;
}

// A kept slab for a refill of `cls` (noted: the class is using its kept slabs).
SlabMeta* PopEmpty(Heap* heap, int cls) {
  SlabMeta* slab = heap->empty[cls].head();
  if (slab == nullptr) return nullptr;
  RemoveEmpty(heap, slab);
  heap->empty_taken[cls / 64] |= uint64_t{1} << (cls % 64);
  return slab;
}

void StartDecayClock(Heap* heap) {
  if (heap->next_decay_ns != 0) return;
  heap->next_decay_ns = heap->clock_ns + DecayTickNanos();
  if (ABSL_PREDICT_FALSE(g_release_thread.load(std::memory_order_relaxed) == ReleaseThread::kOff)) {
    WantReleaseThread(heap);
  } else {
    g_release_wakeup.Wake();  // (one load, unless the thread sleeps idle)
  }
}

// `slab` has no block out: its units go back to the superslab; a superslab left
// empty is kept (one per heap, against churn) or given back to the cache.
// `clean`: its units were just decommitted (nothing for decay to wait for).
void ReleaseSlab(Heap* heap, SuperSlab* ss, SlabMeta* slab, bool clean = false) {
  HAKMEM_DCHECK(ss->owner.load(std::memory_order_relaxed) == heap);
  HAKMEM_DCHECK(slab->used == 0);  // a large run's, too: FreeLarge and the cache set 0
  FreeRun(ss, slab);
  NoteBackedRuns(heap, ss);
  Count(Counter::k_slabs_released);
  if (!clean) {
    // Its units are free and dirty now (young: FreeRun): start the decay clock if
    // it is not running.
    StartDecayClock(heap);
  }
  if (ss->used_units != 0) return;
  if (heap->in_background) {  // kept, decommitted: see Heap::in_background
    ++heap->empty_superslabs;
    return;
  }
  if (heap->empty_superslabs == 0) {
    heap->empty_superslabs = 1;
    return;
  }
  UnlinkSuperSlab(heap, ss);
  ReleaseSuperSlab(ss);
}

void ReleaseCachedLargeRuns(Heap* heap) {
  while (heap->large_cache_count != 0) {
    SlabMeta* run = heap->large_cache[--heap->large_cache_count];
    heap->large_cache_units -= run->units;
    ReleaseSlab(heap, SuperSlabOf(run->start), run);
  }
}

// Releases the empty slabs FreeBlock kept (`cold_only`: those of classes that
// took none since the last decay tick).
void ReleaseKeptEmptySlabs(Heap* heap, bool cold_only) {
  if (heap->empty_total == 0) return;
  for (int cls = 0; cls < kNumClasses; ++cls) {
    if (cold_only && ReusesKeptSlabs(heap, cls)) continue;
    while (SlabMeta* slab = heap->empty[cls].head()) {
      RemoveEmpty(heap, slab);
      ReleaseSlab(heap, SuperSlabOf(slab->start), slab);
    }
  }
  if (!cold_only) heap->empty_taken[0] = heap->empty_taken[1] = 0;
}

// A decay tick of the kept slabs: a class that took none since the last tick has
// left them unused for a decay tick at least, so they are decommitted and
// released (a stale free of one of their blocks then finds no slab, as after any
// release).
void DecayKeptEmptySlabs(Heap* heap) {
  if (heap->empty_total == 0) return;
  for (int cls = 0; cls < kNumClasses; ++cls) {
    if ((heap->empty_taken[cls / 64] & (uint64_t{1} << (cls % 64))) != 0) continue;
    while (SlabMeta* slab = heap->empty[cls].head()) {
      SuperSlab* ss = SuperSlabOf(slab->start);
      RemoveEmpty(heap, slab);
      DecommitRun(ss, slab);
      ReleaseSlab(heap, ss, slab, /*clean=*/true);
    }
  }
  heap->empty_taken[0] = heap->empty_taken[1] = 0;
}

// A run of units as one large block, in use. Its units' entries stay at
// kNoListOffset (AllocRun), so the free fast path's block-start test fails for
// every pointer into it, and its div_magic is 0, so the slow paths' IsBlockStart
// does too: a large block goes to FreeSlow without a class test (a run aligned
// for posix_memalign may be shorter than kPoolMax, where the test would
// otherwise pass).
void InitLargeRun(SlabMeta* run) {
  InitSlabBlocks(run, static_cast<uint32_t>(run->units * kUnitSize));
  run->div_magic = 0;
  run->cls = kLargeClass;
  run->state = SlabState::kLarge;
  run->used = 1;
  run->bump = run->end;
}

SlabMeta* NewSlab(Heap* heap, int cls) {
  bool fresh;
  SlabMeta* slab = AllocRunInHeap(heap, kSizeClasses[cls].slab_units, 1,
                                  OccupancyOfBlock(kSizeClasses[cls].size), &fresh);
  if (slab == nullptr) return nullptr;
  InitClassSlab(SuperSlabOf(slab->start), slab, cls);
  slab->fresh = fresh;
  slab->state = SlabState::kCurrent;
  Count(Counter::k_slabs_created);
  return slab;
}

// The next slab to carve `cls` from: a partial slab (remote frees were drained at
// the start of the batch), then a kept empty one, then a new slab. Partial slabs
// first, so the kept ones stay empty for decay to release if demand falls.
SlabMeta* NextSlab(Heap* heap, int cls) {
  SlabMeta* slab = heap->partial[cls].head();
  if (slab != nullptr) {
    RemovePartial(heap, slab);
  } else {
    slab = PopEmpty(heap, cls);
    if (slab == nullptr) return NewSlab(heap, cls);
  }
  slab->state = SlabState::kCurrent;
  return slab;
}

}  // namespace

void ReportCorruptOwner(const SuperSlab* ss, const void* block) {
  platform::DiagLine line;
  line.Str("hakmem: corrupted superslab header at ")
      .Hex(reinterpret_cast<uintptr_t>(ss))
      .Str(" (its owner heap fails its check: overwritten by an overflow?) freeing ")
      .Hex(reinterpret_cast<uintptr_t>(block));
  ReportMisuse(line);  // nothing is written through the forged owner; the block is leaked
}

namespace {

bool SlabHasFree(const SlabMeta* slab) {
  return slab->free_list != nullptr || slab->bump < slab->end;
}

}  // namespace

Heap* AttachHeap(ThreadHot* hot) {
  Heap* heap;
  bool adopted;
  {
    platform::SpinLockHolder hold(&g_heaps_lock);
    heap = g_abandoned;
    if (heap != nullptr) {
      g_abandoned = heap->next_abandoned;
      heap->next_abandoned = nullptr;
      --g_abandoned_count;
    } else {
      heap = NewHeapLocked();
      if (heap == nullptr) return nullptr;
    }
    // Set up before it is live: the background release reads live heaps only.
    heap->thread_id = platform::ThreadId();
    heap->clock_ns = platform::NowNanos();
    hot->ForgetOwned();
    heap->hot = hot;
    adopted = !heap->superslabs.empty() || heap->remote.MaybeNonEmpty();
    __atomic_store_n(&heap->live, true, __ATOMIC_RELAXED);
  }
  Count(adopted ? Counter::k_heaps_adopted : Counter::k_heaps_created);
  tls_heap = heap;
  stats::AttachThread(&hot->counters);
  if constexpr (config::kDebugLog) {
    platform::DiagLine()
        .Str("hakmem: thread ")
        .Dec(heap->thread_id)
        .Str(" attached heap ")
        .Hex(reinterpret_cast<uintptr_t>(heap))
        .Write();
  }
  return heap;
}

void AbandonHeap() {
  Heap* heap = tls_heap;
  if (heap == &g_sentinel_heap) return;
  HeapLock hold(&heap->lock);  // until it is off its thread (live false)
  DrainRemote(heap);
  for (int cls = 0; cls < kNumClasses; ++cls) {
    SlabMeta* slab = heap->current[cls];
    if (slab == nullptr) continue;
    heap->current[cls] = nullptr;
    if (slab->used == 0) {
      ReleaseSlab(heap, SuperSlabOf(slab->start), slab);
    } else if (SlabHasFree(slab)) {
      PushPartial(heap, slab);
    } else {
      slab->state = SlabState::kFull;
    }
  }
  // Kept slabs and runs go back; empty superslabs go to the shared cache, where
  // any thread can reuse them.
  TrimHeap(heap);
  tls_heap = &g_sentinel_heap;
  heap->hot->ForgetOwned();
  heap->hot = nullptr;
  stats::DetachThread();
  Count(Counter::k_heaps_abandoned);
  platform::SpinLockHolder hold_heaps(&g_heaps_lock);
  __atomic_store_n(&heap->live, false, __ATOMIC_RELAXED);
  heap->next_abandoned = g_abandoned;
  g_abandoned = heap;
  ++g_abandoned_count;
}

void ReclaimAbandoned(Heap* heap) {
  {
    platform::SpinLockHolder hold(&g_heaps_lock);
    if (heap->live) return;
    // Off the abandoned list (no thread can adopt it meanwhile), like a short
    // adoption without a thread.
    Heap** link = &g_abandoned;
    while (*link != nullptr && *link != heap) link = &(*link)->next_abandoned;
    if (*link == nullptr) return;  // being reclaimed by another thread
    *link = heap->next_abandoned;
    heap->next_abandoned = nullptr;
    --g_abandoned_count;
  }
  {
    HeapLock hold(&heap->lock);
    DrainRemote(heap);
    TrimHeap(heap);
  }
  Count(Counter::k_heaps_reclaimed);
  platform::SpinLockHolder hold(&g_heaps_lock);
  heap->next_abandoned = g_abandoned;
  g_abandoned = heap;
  ++g_abandoned_count;
}

namespace {

// The block after `block` on its slab's free list (nullptr at the end). A slab's
// list links blocks of that slab only (IsBlockStart is exact for addresses
// inside the slab): any other link is reported, and the list ends there.
void* NextOnSlabList(const SlabMeta* slab, const void* block) {
  void* next = LoadLink(block);
  if (next != nullptr && !(next >= slab->start && next < slab->end && IsBlockStart(slab, next)))
    return ReportCorruptLink(block, reinterpret_cast<uintptr_t>(next));
  return next;
}

// Word 2 of a free block of a sparse class (> 8 KiB) on its slab's free list: its
// purge mark (FreeBlock clears it; a block handed out keeps whatever the
// program writes there, and gets a clear mark when it is freed to its slab).
constexpr uint64_t kPurgeSeen = 1;  // free at a decay tick: its pages go at the next
constexpr uint64_t kPurgeDone = 2;  // its pages past the first are decommitted

uint64_t& PurgeMarkOf(void* block) { return static_cast<uint64_t*>(block)[2]; }

// The first class of blocks above kDenseBlockMax: the ones whose free blocks decay
// purges (each spans a whole page past the one holding its first words).
constexpr int kFirstSparseClass = [] {
  int cls = 0;
  while (kSizeClasses[cls].size <= kDenseBlockMax) ++cls;
  return cls;
}();
static_assert(kSizeClasses[kFirstSparseClass].size >=
                  2 * platform::kPageSize + 3 * sizeof(uint64_t),
              "a sparse block spans a whole page past its first words");

// The whole pages of `block` (of `size` bytes) past the page holding its first
// three words (link, tag, purge mark): what PurgeFreeBlocks gives back.
void PagesPastFirst(void* block, size_t size, char** begin, char** end) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(block);
  *begin =
      reinterpret_cast<char*>(platform::RoundUp(start + 3 * sizeof(uint64_t), platform::kPageSize));
  *end = reinterpret_cast<char*>((start + size) & ~(platform::kPageSize - 1));
}

// The free blocks of `slab` (a sparse class's, with blocks out): each one found
// free at the last tick too, or every one (`all`), has its pages past the first
// decommitted, once. A slab's free list stays linked through its blocks' first
// pages, so the blocks stay on it. Returns whether blocks wait for the next tick.
bool PurgeSlabFreeBlocks(SlabMeta* slab, bool all) {
  bool waiting = false;
  for (void* block = slab->free_list; block != nullptr;) {
    uint64_t& mark = PurgeMarkOf(block);
    if (mark != kPurgeDone) {
      if (mark == kPurgeSeen || all) {
        char* begin;
        char* end;
        PagesPastFirst(block, slab->block_size, &begin, &end);
        if (begin < end && platform::Decommit(begin, static_cast<size_t>(end - begin))) {
          mark = kPurgeDone;
          Count(Counter::k_blocks_purged);
        }
      } else {
        mark = kPurgeSeen;
        waiting = true;
      }
    }
    block = NextOnSlabList(slab, block);
  }
  return waiting;
}

// PurgeSlabFreeBlocks over the sparse classes' slabs with free blocks (current
// and partial; empty ones are kept or released whole) of superslabs in 4 KiB
// pages (a huge page is given up by its units' decay only).
bool PurgeFreeBlocks(Heap* heap, bool all) {
  bool waiting = false;
  for (int cls = kFirstSparseClass; cls < kNumClasses; ++cls) {
    auto purge = [&](SlabMeta* slab) {
      if (slab->free_list != nullptr && !SuperSlabOf(slab->start)->huge_pages)
        waiting |= PurgeSlabFreeBlocks(slab, all);
    };
    if (heap->current[cls] != nullptr) purge(heap->current[cls]);
    for (SlabMeta* slab = heap->partial[cls].head(); slab != nullptr; slab = slab->next)
      purge(slab);
  }
  return waiting;
}

}  // namespace

void DecayHeap(Heap* heap) {
  const uint64_t now = platform::NowNanos();
  heap->clock_ns = now;
  const uint64_t delay = DecayTickNanos();
  // Free units that were free at the last tick, a tick ago or more, first
  // (the runs freed since wait for the next tick): a superslab that the kept
  // slabs below leave empty then goes to the shared cache clean.
  for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
    DecayFreeUnits(ss, /*all=*/false);
    NoteBackedRuns(heap, ss);
  }
  DecayKeptEmptySlabs(heap);
  ReleaseCachedLargeRuns(heap);
  bool dirty_left = false;  // free units still waiting (just released runs among them)
  for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
    dirty_left |= HasDirtyFreeUnits(ss);
  }
  dirty_left |= PurgeFreeBlocks(heap, /*all=*/false);
  heap->next_decay_ns = dirty_left || heap->empty_total != 0 ? now + delay : 0;
}

// The heap's empty superslabs (one is kept against churn) to the shared cache.
void ReleaseEmptySuperSlabs(Heap* heap) {
  for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr;) {
    SuperSlab* next = ss->next;
    if (ss->used_units == 0) {
      UnlinkSuperSlab(heap, ss);
      ReleaseSuperSlab(ss);
    }
    ss = next;
  }
  heap->empty_superslabs = 0;
}

void DecommitFree(Heap* heap) {
  for (SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
    DecayFreeUnits(ss, /*all=*/true);
    NoteBackedRuns(heap, ss);
  }
  PurgeFreeBlocks(heap, /*all=*/true);
}

void TrimHeap(Heap* heap) {
  ReleaseKeptEmptySlabs(heap);
  ReleaseCachedLargeRuns(heap);
  ReleaseEmptySuperSlabs(heap);
}

namespace {

// Whether `heap` (locked) holds memory the background release would give back:
// a decay tick due, kept empty slabs or cached large runs.
bool HoldsReleasable(const Heap* heap) {
  return heap->next_decay_ns != 0 || heap->empty_total != 0 || heap->large_cache_count != 0;
}

// A heap whose owner made no slow-path call for a whole period: what it keeps
// against churn goes, and every free unit of its superslabs is decommitted now
// (the owner, when it comes back, carves them again: page faults, no syscall).
// Superslabs left empty stay in the heap, decommitted (Heap::in_background); the
// owner's next trim or exit gives them to the shared cache.
void TrimQuietHeap(Heap* heap) {
  const uint64_t now = platform::NowNanos();
  heap->clock_ns = now;
  ReleaseKeptEmptySlabs(heap);
  ReleaseCachedLargeRuns(heap);
  DecommitFree(heap);
  heap->next_decay_ns = 0;
}

// A decay tick (10 ms to 1 s): a heap quiet for a whole interval is trimmed by
// the next pass, so memory freed before a program goes quiet is back within
// about two intervals.
uint64_t ReleaseIntervalNanos() {
  const uint64_t tick = DecayTickNanos();
  constexpr uint64_t kMin = 10'000'000, kMax = 1'000'000'000;
  return tick < kMin ? kMin : tick > kMax ? kMax : tick;
}

// One pass over every heap with a thread (see ReleaseThread in heap.h).
void ReleasePass() {
  platform::SpinLockHolder pass(&g_release_pass_lock);
  bool all_quiet = true;
  {
    platform::SpinLockHolder hold_heaps(&g_heaps_lock);
    const uint64_t now = platform::NowNanos();
    for (Heap* heap = g_all_heaps; heap != nullptr; heap = heap->next_all) {
      if (!heap->live) continue;
      if (!heap->lock.TryLock()) {  // busy: its owner decays it
        all_quiet = false;
        continue;
      }
      const bool quiet = heap->slow_calls == heap->slow_calls_seen;
      all_quiet &= quiet;
      heap->slow_calls_seen = heap->slow_calls;
      if (HoldsReleasable(heap)) {
        heap->in_background = true;
        if (quiet) {
          TrimQuietHeap(heap);
          Count(Counter::k_background_trims);
        } else if (heap->next_decay_ns != 0 && now >= heap->next_decay_ns) {
          DecayHeap(heap);
        }
        heap->in_background = false;
      }
      heap->lock.Unlock();
    }
  }
  // A process whose threads are all quiet gives back the shared caches too (what
  // their last frees put there); else what has waited there for a purge delay.
  if (all_quiet) {
    PurgeCaches(/*force=*/true);
  } else {
    MaybePurge();
  }
  Count(Counter::k_background_passes);
}

// Whether a pass would find nothing to give back: no live heap holds memory
// waiting for a decay tick (nor is busy: its owner may be making some), and the
// shared caches hold nothing to purge.
bool NothingToRelease() {
  if (CachesHoldPurgeable()) return false;
  platform::SpinLockHolder hold_heaps(&g_heaps_lock);
  for (Heap* heap = g_all_heaps; heap != nullptr; heap = heap->next_all) {
    if (!heap->live) continue;
    if (!heap->lock.TryLock()) return false;
    const bool holds = HoldsReleasable(heap);
    heap->lock.Unlock();
    if (holds) return false;
  }
  return true;
}

// How long the thread sleeps idle before it looks again anyway (a safety net:
// every path that makes work wakes it).
constexpr uint64_t kIdleWaitNanos = 60'000'000'000;

void* ReleaseLoop(void*) {
  for (;;) {
    const uint64_t interval = ReleaseIntervalNanos();
    struct timespec ts = {static_cast<time_t>(interval / 1'000'000'000),
                          static_cast<long>(interval % 1'000'000'000)};
    while (nanosleep(&ts, &ts) != 0) {
    }
    ReleasePass();
    // Idle until something is held again: armed before the last look, so that
    // work made after it finds the thread armed and wakes it (platform::Wakeup).
    g_release_wakeup.Arm();
    if (NothingToRelease()) {
      Count(Counter::k_background_idle_waits);
      g_release_wakeup.Wait(kIdleWaitNanos);
    }
    g_release_wakeup.Disarm();
  }
  return nullptr;
}

}  // namespace

void WantReleaseThread(const Heap* heap) {
  // Memory waits for a decay tick, and the thread may start: AfterSlowPath
  // starts it.
  if (heap->next_decay_ns == 0 || !g_main_started.load(std::memory_order_relaxed) ||
      !config::GetOptions().background_release) {
    return;
  }
  ReleaseThread expected = ReleaseThread::kOff;
  g_release_thread.compare_exchange_strong(expected, ReleaseThread::kWanted,
                                           std::memory_order_relaxed);
}

void StartReleaseThread() {
  ReleaseThread expected = ReleaseThread::kWanted;
  if (!g_release_thread.compare_exchange_strong(expected, ReleaseThread::kStarting,
                                                std::memory_order_acq_rel)) {
    return;  // started, or being started (pthread_create's own malloc calls land here)
  }
  pthread_attr_t attr;
  bool ok = pthread_attr_init(&attr) == 0;
  if (ok) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 << 10);
    // Every signal blocked: the program's handlers never run on this thread.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    ok = pthread_create(&thread, &attr, ReleaseLoop, nullptr) == 0;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
  }
  g_release_thread.store(ok ? ReleaseThread::kRunning : ReleaseThread::kFailed,
                         std::memory_order_release);
}

void NoteMainStarted() { g_main_started.store(true, std::memory_order_relaxed); }

int AllocBatch(Heap* heap, int cls, int max, void** head, CarvedRange* range) {
  // Blocks other threads freed come back before anything new is carved, so a
  // producer/consumer pair reuses memory instead of growing.
  if (heap->remote.MaybeNonEmpty()) DrainRemote(heap);
  const uint32_t size = kSizeClasses[cls].size;
  void* first = nullptr;
  void* last = nullptr;  // the list is built in order: each block links to the next
  auto append = [&](void* block) {
    if (last != nullptr)
      StoreLink(last, block);
    else
      first = block;
    last = block;
  };
  int got = 0;
  SlabMeta* slab = heap->current[cls];
  while (got < max) {
    if (slab == nullptr) {
      slab = NextSlab(heap, cls);
      if (slab == nullptr) break;
    }
    int taken = 0;
    while (got + taken < max && slab->free_list != nullptr) {
      void* block = slab->free_list;
      slab->free_list = NextOnSlabList(slab, block);
      append(block);
      ++taken;
    }
    uint32_t carved = 0;  // blocks of the slab's tail handed over as a range
    if (got + taken < max && slab->bump < slab->end) {
      if (range != nullptr) {
        // Lazy carving: the whole untouched tail, no block written.
        carved = static_cast<uint32_t>((slab->end - slab->bump) / size);
        range->next = slab->bump;
        range->end = slab->end;
        range->zeroed = slab->fresh;
        slab->bump = slab->end;
      } else {
        while (got + taken < max && slab->bump < slab->end) {
          void* block = slab->bump;
          slab->bump += size;
          append(block);
          ++taken;
        }
      }
    }
    slab->used += static_cast<uint32_t>(taken) + carved;
    HAKMEM_DCHECK(slab->used <= slab->capacity);
    got += taken;
    if (!SlabHasFree(slab)) {
      slab->state = SlabState::kFull;
      slab = nullptr;
    }
    if (carved != 0) break;  // the range serves the cache until it runs out
  }
  if (last != nullptr) StoreLink(last, nullptr);
  heap->current[cls] = slab;
  *head = first;
  return got;
}

namespace {

// AfterBlocksReturned for a slab that is full, or partial and now empty.
ABSL_ATTRIBUTE_NOINLINE void SlabStateAfterBlocksReturned(Heap* heap, SuperSlab* ss,
                                                          SlabMeta* slab) {
  if (slab->state == SlabState::kFull) PushPartial(heap, slab);
  if (slab->used != 0) return;
  RemovePartial(heap, slab);
  if (KeepEmpty(heap, slab->cls)) {
    // Kept although empty: a later refill of its class reuses it instead of
    // carving a new slab (churn). Decay, trim or thread exit releases it.
    PushEmpty(heap, slab);
    StartDecayClock(heap);
    return;
  }
  ReleaseSlab(heap, ss, slab);
}

// Blocks of `slab` came back (its `used` already lowered): the slab state machine
// of a free. A slab being carved stays current; a full one becomes partial; an
// empty partial one is released, or kept when it is its class's only partial.
// Most frees change no state: that test is inline, the change is not.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AfterBlocksReturned(Heap* heap, SuperSlab* ss,
                                                             SlabMeta* slab) {
  HAKMEM_DCHECK(slab->state == SlabState::kCurrent || slab->state == SlabState::kFull ||
                slab->state == SlabState::kPartial);
  if (slab->state == SlabState::kCurrent) return;
  if (slab->state == SlabState::kPartial && slab->used != 0) return;
  SlabStateAfterBlocksReturned(heap, ss, slab);
}

ABSL_ATTRIBUTE_NOINLINE void StartDecayClockThenAfterBlocksReturned(Heap* heap, SuperSlab* ss,
                                                                    SlabMeta* slab) {
  StartDecayClock(heap);
  AfterBlocksReturned(heap, ss, slab);
}

}  // namespace

void FreeBlock(Heap* heap, SuperSlab* ss, SlabMeta* slab, void* block) {
  HAKMEM_DCHECK(ss->owner.load(std::memory_order_relaxed) == heap);
  HAKMEM_DCHECK(slab->cls < kNumClasses && slab->used != 0);
  HAKMEM_DCHECK(IsBlockStart(slab, block));
  MarkFree(block);
  StoreLink(block, slab->free_list);
  slab->free_list = block;
  --slab->used;
  if (slab->block_size > kDenseBlockMax) {
    // Its pages wait for a decay tick (PurgeFreeBlocks). The clock runs almost
    // always: its start is a tail call, so the common path saves no registers.
    PurgeMarkOf(block) = 0;
    if (ABSL_PREDICT_FALSE(heap->next_decay_ns == 0)) {
      return StartDecayClockThenAfterBlocksReturned(heap, ss, slab);
    }
  }
  AfterBlocksReturned(heap, ss, slab);
}

void ReturnRange(Heap* heap, const CarvedRange& range) {
  if (range.next == range.end) return;
  SuperSlab* ss = SuperSlabOf(range.next);
  SlabMeta* slab = SlabOf(ss, range.next);
  // AllocBatch handed out the slab's whole tail and nothing carves it meanwhile.
  if (slab->bump != range.end) platform::Fatal("hakmem: a carved range is not its slab's tail");
  slab->bump = range.next;
  HAKMEM_DCHECK(slab->used >= (range.end - range.next) / slab->block_size);
  slab->used -= static_cast<uint32_t>((range.end - range.next) / slab->block_size);
  AfterBlocksReturned(heap, ss, slab);
}

void FreeBlocks(Heap* heap, void* const* blocks, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    void* block = blocks[i];
    SuperSlab* ss = SuperSlabOf(block);
    FreeBlock(heap, ss, SlabOf(ss, block), block);
  }
}

void FreeBlockList(Heap* heap, void* head) {
  while (head != nullptr) {
    void* next = LoadLink(head);
    SuperSlab* ss = SuperSlabOf(head);
    FreeBlock(heap, ss, SlabOf(ss, head), head);
    head = next;
  }
}

void ReportRemoteLargeDoubleFree(const void* block) {
  ReportInvalidFree(block, "double free of a large block, from another thread", "free");
}

void DrainRemote(Heap* heap) {
  DrainRemoteInto(heap, [](const SlabMeta&, void*) { return false; });
}

namespace {

// The free batch records (RemoteNode), of every thread.
ABSL_CONST_INIT RemoteNodeStack g_free_remote_nodes;
// Records a thread takes from the pool at once (one per batch slot), and carved
// at once when the pool is empty.
constexpr uint32_t kRemoteNodeTake = 4;
constexpr uint32_t kRemoteNodeChunk = 8;
constexpr size_t kRemoteNodeBytes = sizeof(RemoteNode);
static_assert(kRemoteNodeChunk * kRemoteNodeBytes % 64 == 0, "the arena stays 64-byte aligned");
ABSL_CONST_INIT std::atomic<bool> g_remote_nodes_exhausted{false};

}  // namespace

void SetRemoteNodesExhaustedForTesting(bool exhausted) {
  g_remote_nodes_exhausted.store(exhausted, std::memory_order_relaxed);
}

RemoteNode* TakeRemoteNodes() {
  if (ABSL_PREDICT_FALSE(g_remote_nodes_exhausted.load(std::memory_order_relaxed))) return nullptr;
  // The heaps lock serialises the pool's pops (and is held across fork).
  platform::SpinLockHolder hold(&g_heaps_lock);
  if (RemoteNode* nodes = g_free_remote_nodes.PopChain(kRemoteNodeTake)) return nodes;
  char* memory = static_cast<char*>(ArenaCarveLocked(kRemoteNodeChunk * kRemoteNodeBytes));
  if (memory == nullptr) return nullptr;
  Count(Counter::k_remote_records, kRemoteNodeChunk);
  RemoteNode* chain = nullptr;
  for (uint32_t i = kRemoteNodeChunk; i-- > 0;) {
    RemoteNode* node = reinterpret_cast<RemoteNode*>(memory + i * kRemoteNodeBytes);
    node->next = chain;
    chain = node;
  }
  return chain;
}

void ReturnRemoteNodes(RemoteNode* first, RemoteNode* last) {
  g_free_remote_nodes.Push(first, last);
}

void* AllocLarge(Heap* heap, size_t size, size_t alignment, bool* zeroed, Occupancy occupancy) {
  MaybeDecay(heap);
  if (heap->remote.MaybeNonEmpty()) DrainRemote(heap);
  const size_t units = LargeUnits(size);
  const size_t align_units = alignment > kUnitSize ? alignment / kUnitSize : 1;
  // A run starts at a multiple of align_units among the carvable units: one that
  // cannot fits no superslab (the caller maps it).
  if ((align_units > kFirstCarvableUnit ? align_units : kFirstCarvableUnit) + units >
      kUnitsPerSuperSlab)
    return nullptr;
  if (align_units == 1) {
    // A cached run of the same length, or up to 1/8 longer.
    for (uint32_t i = 0; i < heap->large_cache_count; ++i) {
      SlabMeta* run = heap->large_cache[i];
      if (run->units < units || run->units > units + units / 8) continue;
      heap->large_cache[i] = heap->large_cache[--heap->large_cache_count];
      heap->large_cache_units -= run->units;
      run->used = 1;
      *zeroed = false;
      Count(Counter::k_large_runs);
      return run->start;
    }
  }
  SlabMeta* run = AllocRunInHeap(heap, units, align_units, occupancy, zeroed);
  if (run == nullptr) return nullptr;
  InitLargeRun(run);
  Count(Counter::k_large_runs);
  return run->start;
}

void FreeLarge(Heap* heap, SuperSlab* ss, SlabMeta* slab) {
  HAKMEM_DCHECK(slab->cls == kLargeClass && slab->used == 1);
  slab->used = 0;  // free (cached or released): a second free of it is a double free
  if (heap->large_cache_count < sizeof(heap->large_cache) / sizeof(heap->large_cache[0]) &&
      heap->large_cache_units + slab->units <= kLargeCacheUnits) {
    heap->large_cache[heap->large_cache_count++] = slab;
    heap->large_cache_units += slab->units;
    StartDecayClock(heap);
    return;
  }
  ReleaseSlab(heap, ss, slab);
}

bool GrowLargeInPlace(Heap* heap, void* block, size_t size) {
  SuperSlab* ss = SuperSlabOf(block);
  if (ss->owner.load(std::memory_order_relaxed) != heap) return false;
  SlabMeta* run = SlabOf(ss, block);
  bool fresh;
  if (!GrowRun(ss, run, LargeUnits(size), &fresh)) return false;
  InitLargeRun(run);
  return true;
}

namespace {

void CensusOf(const SuperSlab* ss, HeapCensus* census) {
  ++census->superslabs;
  char* const base = reinterpret_cast<char*>(const_cast<SuperSlab*>(ss));
  for (size_t unit = kFirstCarvableUnit; unit < kUnitsPerSuperSlab;) {
    const uint64_t bit = uint64_t{1} << (unit % 64);
    if (ss->free_units[unit / 64] & bit) {
      ++census->free_units;
      if (ss->dirty_units[unit / 64] & bit) ++census->free_committed_units;
      ++unit;
      continue;
    }
    const SlabMeta* slab = SlabOf(const_cast<SuperSlab*>(ss), base + unit * kUnitSize);
    if (slab->cls == kNoClass || slab->units == 0) {  // (not carved: never so when in use)
      ++unit;
      continue;
    }
    const int lane = slab->cls == kLargeClass      ? HeapCensus::kLargeLane
                     : slab->cls < kFirstPoolClass ? HeapCensus::kTinyLane
                                                   : HeapCensus::kPoolLane;
    HeapCensus::Lane& l = census->lanes[lane];
    ++l.slabs;
    l.units += slab->units;
    if (lane == HeapCensus::kLargeLane) {
      l.bytes_out += slab->used != 0 ? slab->block_size : 0;
      l.bytes_capacity += slab->block_size;
    } else {
      l.bytes_out += uint64_t{slab->used} * slab->block_size;
      l.bytes_capacity += uint64_t{slab->capacity} * slab->block_size;
      const uint64_t used = slab->used, capacity = slab->capacity;
      const int bucket = used == 0                 ? 0
                         : used * 4 < capacity     ? 1
                         : used * 2 < capacity     ? 2
                         : used * 4 < 3 * capacity ? 3
                         : used < capacity         ? 4
                                                   : 5;
      ++census->fullness[bucket];
    }
    unit += slab->units;
  }
}

}  // namespace

HeapCensus TakeCensus() {
  HeapCensus census{};
  platform::SpinLockHolder hold_heaps(&g_heaps_lock);
  for (Heap* heap = g_all_heaps; heap != nullptr; heap = heap->next_all) {
    ++census.heaps;
    if (!heap->lock.TryLock()) {
      ++census.heaps_busy;
      continue;
    }
    for (const SuperSlab* ss = heap->superslabs.head(); ss != nullptr; ss = ss->next) {
      CensusOf(ss, &census);
    }
    heap->lock.Unlock();
  }
  return census;
}

bool IsFreeInSlab(Heap* heap, const SlabMeta* slab, const void* block) {
  if (heap->remote.MaybeNonEmpty()) DrainRemote(heap);
  for (void* p = slab->free_list; p != nullptr; p = LoadLink(p)) {
    if (p == block) return true;
  }
  return false;
}

HeapCounts GetHeapCounts() {
  platform::SpinLockHolder hold(&g_heaps_lock);
  return HeapCounts{g_heap_count, g_abandoned_count};
}

// Fork handlers hold the lock across fork(), from Prepare to the After
// handlers: beyond what -Wthread-safety follows.
// The release pass lock first: the background thread takes it before any heap's.
void PrepareForkHeaps() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_release_pass_lock.Lock();
  g_heaps_lock.Lock();
}
void ParentAfterForkHeaps() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_heaps_lock.Unlock();
  g_release_pass_lock.Unlock();
}

void ChildAfterForkHeaps() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (Heap* heap = g_all_heaps; heap != nullptr; heap = heap->next_all) {
    heap->remote.ResetAfterFork();
    heap->lock.ResetAfterFork();  // (held by a thread the child lacks, mid-slow-path)
    if (heap->live && heap != tls_heap) {
      // Its thread did not survive the fork; what its thread cache held is lost
      // in the child, the rest of its slabs is adopted by the child's next thread.
      heap->live = false;
      heap->hot = nullptr;  // that thread's TLS may be a new thread's now
      heap->next_abandoned = g_abandoned;
      g_abandoned = heap;
      ++g_abandoned_count;
    }
  }
  g_heaps_lock.ResetAfterFork();
  g_release_pass_lock.ResetAfterFork();
  g_release_wakeup.Disarm();  // (its sleeper is the thread the child lacks)
  // The background thread did not survive the fork: the child starts its own
  // when it has something to release.
  const ReleaseThread state = g_release_thread.load(std::memory_order_relaxed);
  if (state == ReleaseThread::kRunning || state == ReleaseThread::kStarting ||
      state == ReleaseThread::kWanted) {
    g_release_thread.store(ReleaseThread::kOff, std::memory_order_relaxed);
  }
}

}  // namespace hakmem
