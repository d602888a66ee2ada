// heap: one thread's memory: its superslabs, its slabs per class, its large runs
// and the remote queue other threads free into.
//
// Owns: Heap (in a metadata arena mapped by platform, never by malloc; a heap is
// never freed, it is handed to the next thread when its thread exits), the slab
// state machine (current -> full -> partial -> kept empty -> released), batch
// carving for the thread caches, the remote-queue drain, the list of abandoned
// heaps that new threads adopt, and the pool of remote-free batch records.
// Thread-safety: everything taking a Heap* runs on the thread that owns the heap
// (tls_heap) with the heap's lock held (HeapLock), except RemoteQueue pushes;
// attach/abandon take the heaps lock too. The background release thread takes
// a quiet heap's lock (try-lock only: it never makes an owner wait for long) to
// run its decay. The records' pool: any thread (TakeRemoteNodes under the heaps
// lock, ReturnRemoteNodes lock-free).
// Called by: thread_cache, free_dispatch, core.
#ifndef HAKMEM_HEAP_HEAP_H_
#define HAKMEM_HEAP_HEAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/ace/ace.h"
#include "hakmem/config/build_config.h"
#include "hakmem/config/options.h"
#include "hakmem/platform/intrusive_list.h"
#include "hakmem/platform/platform.h"
#include "hakmem/platform/spin_lock.h"
#include "hakmem/profiler/profiler.h"
#include "hakmem/registry/registry.h"
#include "hakmem/remote_queue/remote_queue.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/stats/stats.h"
#include "hakmem/superslab/free_link.h"
#include "hakmem/superslab/superslab.h"

namespace hakmem {

struct ThreadHot;

struct Heap {
  RemoteQueue remote;  // written by other threads: on its own cache line
  // Held by the owner on its slow paths (HeapLock) and by the background release
  // thread while it works on the heap: one uncontended exchange per refill or
  // flush, never on the fast paths.
  alignas(64) platform::SpinLock lock;
  SlabMeta* current[kNumClasses];
  IntrusiveList<SlabMeta> partial[kNumClasses];  // slabs with free blocks, not current
  // Empty slabs kept for the next refills of their class instead of released and
  // carved again (churn): up to what the class's thread cache holds, a
  // superslab's worth for a class that took one of them since the last decay
  // tick (KeepEmpty in heap.cc). Linked through next/prev. A class that took none
  // of its kept slabs between two decay ticks has them decommitted and released
  // at the second, or before, when the heap is about to carve untouched units;
  // trim and thread exit release them all.
  IntrusiveList<SlabMeta> empty[kNumClasses];
  uint32_t empty_total;                 // kept slabs, all classes
  uint64_t empty_taken[2];              // classes that took a kept slab since the last tick
  IntrusiveList<SuperSlab> superslabs;  // owned superslabs
  uint32_t superslabs_unlinked;         // superslabs taken off the list, ever (a drain's check)
  uint32_t empty_superslabs;            // owned superslabs with no unit in use
  // No owned superslab has a longer run of backed free units than this (a bound
  // on their SuperSlab::longest_backed_run): raised where a superslab's is (a
  // run freed, a superslab linked), made exact by a search of them all that found
  // nothing. A new slab that cannot fit backed units then walks no superslab to
  // learn so.
  uint8_t backed_run_bound;
  // Every owned superslab whose longest_backed_run is not 0 (a bound: some may
  // have none left; one whose bound falls to 0 leaves at the next search or
  // decay tick that sees it): what a search for backed units walks. On
  // fragmentation, 70% of the superslabs a walk of them all passed had no
  // backed free unit.
  IntrusiveList<SuperSlab, &SuperSlab::backed_next, &SuperSlab::backed_prev> backed;
  // Freed large runs kept whole for reuse (at most kLargeCacheUnits units in all).
  SlabMeta* large_cache[8];
  uint32_t large_cache_count;
  uint32_t large_cache_units;
  uint64_t next_decay_ns;    // next decay tick; 0: nothing waits for one
  uint64_t clock_ns;         // the clock as last read by MaybeDecay
  int32_t decay_countdown;   // slow-path calls until the clock is read again
  uint32_t slow_calls;       // MaybeDecay calls: the background release's sign of life
  uint32_t slow_calls_seen;  // slow_calls at the background release's last look
  // The background release works on the heap: a superslab it leaves empty stays
  // in the heap (its units decommitted), since taking it off would write the
  // owner's ThreadHot, which the owner's free fast path reads without a lock.
  bool in_background;
  // This heap's address ^ the freed-block tag: a superslab's `owner` is written
  // through (remote frees) only after its seal checks, so an owner forged by an
  // overflow into a superslab header is reported instead of written to.
  uintptr_t seal;
  // The owner thread's ThreadHot (nullptr while the heap waits for a thread).
  ThreadHot* hot;
  // The slots of its thread's cache (CacheSlotsOf), mapped with the heap.
  void** cache_slots;
  bool live;  // a thread runs on it (under the heaps lock; IsAbandoned reads it without)
  uint32_t thread_id;
  Heap* next_all;        // every heap ever made (under the heaps lock)
  Heap* next_abandoned;  // heaps waiting for a thread
};

// A heap's thread-cache slots: each class's stack of cached block addresses
// (thread_cache's FreeList points into them). The slot below a stack's bottom
// stays nullptr: the bottom's sentinel, which the malloc fast path reads to find
// the stack empty. Mapped with the heap by platform (never by malloc:
// kCacheSlotBytes of address space, 1.45 MiB), kept with it from thread to
// thread, and backed only where stacks have been. Two areas:
//  - packed: kPackedStackSlots slots a class (its sentinel and 31 blocks), the
//    classes side by side, 16 to a page. Every stack starts here, so a program
//    that caches a few blocks of each of many classes touches a few pages, not
//    one page a class (ruby: its heap and stacks kept 72 pages resident when
//    each class started on a page of its own, 26 packed).
//  - own: kCacheSlotStride slots a class, enough for any limit ACE allows. A
//    stack moves here (ThreadCache::MoveToOwnSlots, one copy of at most 31
//    addresses) the first time it needs more than the packed slots hold: a
//    free finds it full below its limit, or a refill from the heap after its
//    first three (its first three slabs' blocks taken). The stride is a cache
//    line more than the stacks need: stacks 16 KiB apart would start in one L1
//    set, and a program using many classes would evict its own stack tops
//    (random_mixed: 5.7 times the D1 misses of lists through the blocks); a
//    line more, and class c's stack starts c sets further.
inline constexpr uint32_t kPackedStackSlots = 32;
inline constexpr size_t kPackedSlotBytes =
    platform::RoundUp(size_t{kNumClasses} * kPackedStackSlots * sizeof(void*), platform::kPageSize);
inline constexpr uint32_t kCacheSlotStride = ace::kMaxLimit + 8;
static_assert(kCacheSlotStride * sizeof(void*) % 4096 == 64,
              "consecutive stacks, consecutive sets");
inline constexpr size_t kCacheSlotBytes =
    kPackedSlotBytes +
    platform::RoundUp(size_t{kNumClasses} * kCacheSlotStride * sizeof(void*), platform::kPageSize);

// The bottom slot of class `cls`'s packed stack in `heap` (its sentinel just
// below); kPackedStackSlots - 1 blocks fit.
inline void** PackedSlotsOf(Heap* heap, int cls) {
  return heap->cache_slots + size_t{static_cast<uint32_t>(cls)} * kPackedStackSlots + 1;
}

// The bottom slot of class `cls`'s own stack in `heap` (its sentinel just
// below); kCacheSlotStride - 1 blocks fit.
inline void** CacheSlotsOf(Heap* heap, int cls) {
  return heap->cache_slots + kPackedSlotBytes / sizeof(void*) +
         size_t{static_cast<uint32_t>(cls)} * kCacheSlotStride + 1;
}

// The calling thread's heap. It starts at a sentinel that owns nothing, so the
// free fast path's owner test fails without an init branch and the first
// allocation takes the slow path, which attaches a real heap. Initial-exec TLS,
// declared __thread (not thread_local) so no TLS init wrapper is called on access.
extern __thread Heap* tls_heap HAKMEM_TLS;
extern Heap g_sentinel_heap HAKMEM_HIDDEN;

inline constexpr uintptr_t kNoOwnedSuperSlab = ~uintptr_t{0};
inline constexpr uint32_t kOwnedSlots = 32;
struct OwnedSlots {
  uintptr_t slot[kOwnedSlots];
};
constexpr OwnedSlots NoOwnedSlots() {
  OwnedSlots none{};
  for (uintptr_t& slot : none.slot) slot = kNoOwnedSuperSlab;
  return none;
}

// What a thread's fast paths read beside its cache lists and a heap keeps up to
// date. It lives in the fast paths' one TLS block (thread_cache's ThreadCache),
// so malloc and free reach lists, owned chunk and counters through one TLS
// offset; AttachHeap tells the heap (and stats) where it is.
struct ThreadHot {
  // Superslabs the thread's heap owns, one per slot (OwnedSlotOf), or
  // kNoOwnedSuperSlab (not 2 MiB-aligned: no address rounded down to 2 MiB is
  // it; nullptr rounds down to 0, where no superslab is): the free fast path's
  // shortcut past the registry and the owner test. Only the owner thread sets a
  // slot (after a free that passed the owner test) and clears it (when the
  // superslab leaves the heap, or the thread its heap), so a match proves
  // ownership. Slots, not one most recent superslab: a thread whose blocks span
  // several superslabs would fail the one-superslab test at random, a branch
  // mispredicted on about 0.4 frees in 1 (random_mixed over 8192 slots), and
  // would read each superslab's header line for its owner; those lines, all
  // 2 MiB-aligned, share one L1 set.
  OwnedSlots owned = NoOwnedSlots();
  stats::FastCounters counters = {};

  // The slot for the superslab at `base`: consecutive superslabs (a
  // reservation's) take consecutive slots (every other one in hardened builds,
  // whose superslabs are a guard chunk apart).
  static constexpr uint32_t OwnedSlotOf(uintptr_t base) {
    static_assert(kSuperSlabSize == size_t{1} << 21, "a slot per superslab address");
    return static_cast<uint32_t>(base >> 21) % kOwnedSlots;
  }
  // Whether the superslab at `base` is in its slot.
  // (Only the owner thread: the background release never takes a superslab off
  // a heap, see Heap::in_background.)
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool Owns(uintptr_t base) const {
    return owned.slot[OwnedSlotOf(base)] == base;
  }
  void NoteOwned(uintptr_t base) { owned.slot[OwnedSlotOf(base)] = base; }
  // Forgets every owned superslab (the thread leaves its heap, or takes one).
  void ForgetOwned() { owned = NoOwnedSlots(); }
  // Forgets the superslab at `base` (it leaves the heap).
  void ForgetOwned(uintptr_t base) {
    uintptr_t& slot = owned.slot[OwnedSlotOf(base)];
    if (slot == base) slot = kNoOwnedSuperSlab;
  }
};

ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool HasHeap() { return tls_heap != &g_sentinel_heap; }

static_assert(kSizeClasses[0].size >= 2 * sizeof(uint64_t), "every slab block has a word 1");

// Gives the calling thread a heap: an abandoned one (adopting its slabs and its
// pending remote frees) or a new one, with `hot`, the thread's (thread-local)
// ThreadHot. nullptr if no metadata memory is left.
Heap* AttachHeap(ThreadHot* hot);
// Hands the calling thread's heap back (its thread caches must be flushed first):
// drains remote frees, releases empty slabs and superslabs, and puts the heap on
// the abandoned list.
void AbandonHeap();

// ---- background release ----
// A thread that, every quarter purge delay (at least 10 ms, at most 1 s), runs the
// shared caches' purge and, for each heap whose owner made no slow-path call
// since its last look, what the owner's next slow path would have done: the
// decay tick when due, or, for a heap quiet for a whole period, a trim of what
// it keeps against churn with every free unit decommitted. So memory a program
// freed comes back to the OS within about half a purge delay of its going quiet,
// even if it never calls the allocator again (blocks its thread cache holds
// keep their slabs: the owner's fast paths own the cache). The thread is
// started (HAKMEM_BACKGROUND_RELEASE=1, the default) by the first slow path that
// finds memory waiting for a decay tick once the program's main runs
// (NoteMainStarted), never before; it blocks every signal, never allocates, and
// is started again in a fork child when there is something to release. Its
// work shows in the background_passes and background_trims counters. Wanted:
// the start is due at the end of the caller's slow path, outside every lock
// (pthread_create may call malloc).
enum class ReleaseThread : int { kOff, kWanted, kStarting, kRunning, kFailed };
extern std::atomic<ReleaseThread> g_release_thread HAKMEM_HIDDEN;
ABSL_ATTRIBUTE_NOINLINE void StartReleaseThread();
// Asks for the thread when `heap` has memory waiting for a decay tick and the
// thread may start (the option, main).
ABSL_ATTRIBUTE_NOINLINE void WantReleaseThread(const Heap* heap);
// At the end of a slow path, with no lock held.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AfterSlowPath() {
  if (ABSL_PREDICT_FALSE(g_release_thread.load(std::memory_order_relaxed) ==
                         ReleaseThread::kWanted))
    StartReleaseThread();
}
// The program's main has started (wrappers' __libc_start_main): from now on the
// thread may start. Without the wrappers (the hak_* API alone) nobody says so,
// and decay runs on the heaps' own slow paths only.
void NoteMainStarted();

// One decay tick: releases kept empty slabs and cached large runs, and decommits
// the free units of the heap's superslabs and the pages of its free sparse
// blocks that have been free for a whole tick (DecayFreeUnits, PurgeFreeBlocks).
ABSL_ATTRIBUTE_NOINLINE void DecayHeap(Heap* heap);

// How far apart a heap's decay ticks are: a quarter of the purge delay (250 ms by
// default), so memory freed inside a heap's superslabs goes back after one to
// two quarters. Their reuse costs page faults only; the shared caches' empty
// superslabs and huge mappings, whose reuse saves a mapping and its huge pages,
// wait the whole delay. (A purge delay of 250 ms for everything: python3 ast
// 33.0 -> 30.8 MiB but large_huge at 0.60x; a quarter for the heaps alone:
// 33.1 -> 30.2 MiB and large_huge unchanged, docs/real_programs.md.)
inline uint64_t DecayTickNanos() { return PurgeDelayNanos() / 4; }

// The decay clock, ticked on slow paths only: every kDecayCheckInterval-th call
// reads the clock into heap->clock_ns (what slab releases are stamped with, so a
// release needs no clock read) and runs the shared caches' purge and this heap's
// decay when due.
inline constexpr int32_t kDecayCheckInterval = 16;
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void MaybeDecay(Heap* heap) {
  ++heap->slow_calls;
  if (ABSL_PREDICT_TRUE(--heap->decay_countdown > 0)) return;
  heap->decay_countdown = kDecayCheckInterval;
  heap->clock_ns = platform::NowNanos();
  if (ABSL_PREDICT_FALSE(g_release_thread.load(std::memory_order_relaxed) == ReleaseThread::kOff))
    WantReleaseThread(heap);
  MaybePurge();
  if (heap->next_decay_ns != 0 && heap->clock_ns >= heap->next_decay_ns) DecayHeap(heap);
}

// Gives back what the heap keeps against churn: empty slabs, cached large runs,
// and empty superslabs (to the shared cache).
void TrimHeap(Heap* heap);
// Decommits now what decay would give back over its next ticks: every dirty free
// unit of the heap's superslabs, and the pages past the first of every free block
// of its sparse classes (> 8 KiB) on a slab's free list (malloc_trim, a quiet
// heap). The caller holds the heap's lock.
void DecommitFree(Heap* heap);

// The owner's hold on its heap for one slow path (see Heap::lock).
using HeapLock = platform::SpinLockHolder;

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
// The same for the `n` blocks at `blocks` (a thread cache's slots), in that order:
// no list is linked through them first, so each block's line is written once.
void FreeBlocks(Heap* heap, void* const* blocks, uint32_t n);

// A large run of `size` bytes (kPoolMax < size, or smaller with alignment)
// aligned to `alignment` (<= 1 MiB). `*zeroed` tells whether it reads as zero. A
// recently freed run of about the same length is reused first; else the run is
// carved among blocks of `occupancy` (sparse: big blocks, which a program may
// write only the start of; dense: a run that will be written through, such as
// one that realloc grows into).
void* AllocLarge(Heap* heap, size_t size, size_t alignment, bool* zeroed,
                 Occupancy occupancy = Occupancy::kSparse);
// Frees a large run of the calling thread's heap: kept whole in the heap's large
// cache (used = 0) when it fits there, else its units go back to the superslab.
void FreeLarge(Heap* heap, SuperSlab* ss, SlabMeta* slab);
inline constexpr uint32_t kLargeCacheUnits = 256;  // 4 MiB

// Every build checks each link between the blocks pushed on their own onto a
// remote queue before following it (batch records hold no link): a forged one
// would be cached and handed out, or freed and written through. A link must
// start a block of a slab of the draining heap. The links fall into a few
// superslabs, so the check keeps those it found registered and sealed by their
// address bits (superslabs are never unmapped nor unregistered), and most links
// skip the registry lookup. One per drain (DrainRemoteInto).
//
// A superslab enters the table owned by the heap. It stays the heap's while the
// drain runs (the drain holds the heap's lock, and only the heap's lock holder
// takes superslabs off it), unless the drain itself empties it and it goes back
// to the cache, where another heap may take it: then the heap's
// superslabs_unlinked changes and the drain forgets the table (Forget).
class RemoteLinkCheck {
 public:
  explicit RemoteLinkCheck(const Heap* heap) : heap_(heap) { Forget(); }

  // No superslab lies at address 1: an empty entry matches none (nullptr, which
  // SuperSlabOf gives for a link below 2 MiB, included).
  void Forget() {
    for (const SuperSlab*& entry : seen_) entry = reinterpret_cast<const SuperSlab*>(1);
  }

  // The slab of `p` if `p` starts a block (of a class, or a large run) in a slab
  // of the heap; nullptr if not.
  ABSL_ATTRIBUTE_ALWAYS_INLINE SlabMeta* SlabOfBlock(const void* p) {
    SuperSlab* ss = SuperSlabOf(p);
    const SuperSlab*& entry = seen_[(reinterpret_cast<uintptr_t>(ss) / kSuperSlabSize) % kEntries];
    if (ABSL_PREDICT_FALSE(entry != ss)) {
      if (registry::Lookup(p) != ss || ss->magic != kSuperSlabMagic ||
          ss->owner.load(std::memory_order_relaxed) != heap_)
        return nullptr;
      entry = ss;
    }
    SlabMeta* slab = SlabOf(ss, p);
    // A large run's div_magic is 0: IsBlockStart fails for it.
    if (ABSL_PREDICT_TRUE(IsBlockStart(slab, p)) || (slab->cls == kLargeClass && p == slab->start))
      return slab;
    return nullptr;
  }

 private:
  static constexpr size_t kEntries = 16;
  const Heap* heap_;
  const SuperSlab* seen_[kEntries];
};

// A large run freed twice, the second time by another thread: found only when
// its owner drains the remote queue.
ABSL_ATTRIBUTE_NOINLINE void ReportRemoteLargeDoubleFree(const void* block);

// The records of batched remote frees (RemoteNode) come from one process-wide
// pool. A freeing thread takes a few at once (TakeRemoteNodes, under the heaps
// lock: once per few batches), or a new chunk of records carved from the heaps'
// metadata arena when the pool is empty, and keeps them for its batches; a drain
// gives back every record it took in one push (ReturnRemoteNodes, lock-free).
// Records are never unmapped: there are as many as batches were ever in flight
// or held at once.
// A chain of free records (linked through next, ending in nullptr); nullptr:
// none can be made.
RemoteNode* TakeRemoteNodes();
void ReturnRemoteNodes(RemoteNode* first, RemoteNode* last);
// While set, TakeRemoteNodes makes none, as if no memory were left (tests).
void SetRemoteNodesExhaustedForTesting(bool exhausted);

// A block other threads freed, of `slab`, back from its owner's drain: a large
// run to FreeLarge (one already back is a double free, reported), a block of a
// class to `keep(slab, block)` (see DrainRemoteInto) or else its slab. Returns
// whether it went back to its superslab (where a free may empty the superslab
// and take it off the heap).
template <typename Keep>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool ReturnDrainedBlock(Heap* heap, SlabMeta* slab, void* block,
                                                            Keep& keep) {
  if (ABSL_PREDICT_FALSE(slab->cls == kLargeClass)) {
    if (slab->used == 0) {
      ReportRemoteLargeDoubleFree(block);
      return false;
    }
    FreeLarge(heap, SuperSlabOf(block), slab);
    return true;
  }
  if (keep(*slab, block)) return false;
  FreeBlock(heap, SuperSlabOf(block), slab, block);
  return true;
}

// The blocks of the batch records `nodes` (a chain) back (ReturnDrainedBlock);
// the records go back to the pool. Returns the blocks. Every block was checked
// by the free that put it in its record (free_dispatch), and no record lies in
// memory a program can write: nothing is checked again.
template <typename Keep>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uint64_t DrainRemoteNodes(Heap* heap, RemoteNode* nodes,
                                                              Keep& keep) {
  uint64_t drained = 0;
  RemoteNode* last = nodes;
  for (RemoteNode* node = nodes; node != nullptr; node = node->next) {
    last = node;
    const uint32_t count = node->count;
    drained += count;
    for (uint32_t i = 0; i < count; ++i) {
      void* block = node->blocks[i];
      ReturnDrainedBlock(heap, SlabOf(SuperSlabOf(block), block), block, keep);
    }
    node->count = 0;
  }
  ReturnRemoteNodes(nodes, last);
  return drained;
}

// The blocks pushed on their own, the list from `block` (linked through first
// words), back (ReturnDrainedBlock), each link checked before it is followed.
// Returns the blocks.
template <typename Keep>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uint64_t DrainRemoteList(Heap* heap, void* block, Keep& keep) {
  uint64_t drained = 0;
  RemoteLinkCheck check(heap);
  uint32_t unlinked = heap->superslabs_unlinked;
  // The check of the link that led to a block found its slab, which stays the
  // block's while the block is queued (the block counts as used there). The
  // first block came from a free that checked it (free_dispatch).
  SlabMeta* slab = SlabOf(SuperSlabOf(block), block);
  while (block != nullptr) {
    ++drained;
    void* next = LoadLink(block);
    SlabMeta* next_slab = nullptr;
    if (next != nullptr) {
      next_slab = check.SlabOfBlock(next);
      if (ABSL_PREDICT_FALSE(next_slab == nullptr))
        next = ReportCorruptLink(block, reinterpret_cast<uintptr_t>(next));
    }
    // Only a block back in its superslab may empty it and take it off the heap.
    if (ReturnDrainedBlock(heap, slab, block, keep) &&
        ABSL_PREDICT_FALSE(heap->superslabs_unlinked != unlinked) && next != nullptr) {
      // A superslab left the heap: the next block is checked again.
      unlinked = heap->superslabs_unlinked;
      check.Forget();
      next_slab = check.SlabOfBlock(next);
      if (next_slab == nullptr) next = ReportCorruptLink(block, reinterpret_cast<uintptr_t>(next));
    }
    block = next;
    slab = next_slab;
  }
  return drained;
}

// Takes the blocks other threads freed into `heap` back: a block of a size class
// to `keep(slab, block)` first (the owner's thread cache: true when it took the
// block, which stays counted in its slab as handed out, as every cached block
// is), else into its slab. The batch records first, then the blocks pushed on
// their own. A template, so that the thread cache's push is inlined into the
// walks.
template <typename Keep>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void DrainRemoteInto(Heap* heap, Keep keep) {
  uint64_t drained = 0;
  if (RemoteNode* nodes = heap->remote.TakeNodes()) drained += DrainRemoteNodes(heap, nodes, keep);
  if (void* list = heap->remote.TakeAll()) drained += DrainRemoteList(heap, list, keep);
  if (drained != 0) stats::Count(stats::Counter::k_remote_drained, drained);
}

// What the heaps' superslabs hold, for the stats report: per lane (tiny and pool
// slabs, large runs) the slabs, their units and bytes, and the bytes of the blocks
// out of them (in use, in a thread cache or in a remote queue); the size classes'
// slabs by how full they are; the free units and how many of them are committed
// (touched since mapped or decommitted).
struct HeapCensus {
  struct Lane {
    uint64_t slabs;
    uint64_t units;
    uint64_t bytes_out;       // blocks out * block size
    uint64_t bytes_capacity;  // blocks * block size
  };
  static constexpr int kTinyLane = 0, kPoolLane = 1, kLargeLane = 2;
  Lane lanes[3];
  // Class slabs with none out, under a quarter, under a half, under three
  // quarters, under all, and all of their blocks out.
  static constexpr int kFullnessBuckets = 6;
  uint64_t fullness[kFullnessBuckets];
  uint64_t superslabs;
  uint64_t free_units;
  uint64_t free_committed_units;
  uint32_t heaps;
  uint32_t heaps_busy;  // skipped: their lock was held (the report does not wait)
};
// Sums every heap's superslabs (each heap's lock tried in turn): any thread, off
// the allocation paths.
HeapCensus TakeCensus();

// DrainRemoteInto with every block back to its slab.
void DrainRemote(Heap* heap);

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
// `large_run`: whether `block` is a large run (which carries no tag) rather than
// a block of a size class, when the caller knows.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Heap* TakeForRemoteFree(SuperSlab* ss, void* block,
                                                            bool large_run) {
  Heap* owner = static_cast<Heap*>(ss->owner.load(std::memory_order_acquire));
  if (ABSL_PREDICT_FALSE(ss->magic != kSuperSlabMagic || owner->seal != HeapSeal(owner))) {
    ReportCorruptOwner(ss, block);
    return nullptr;
  }
  if (!large_run) MarkFree(block);
  stats::Count(stats::Counter::k_frees_remote);
  return owner;
}
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Heap* TakeForRemoteFree(SuperSlab* ss, void* block) {
  return TakeForRemoteFree(ss, block, SlabOf(ss, block)->cls == kLargeClass);
}

// Frees `block` of `ss` from a thread that does not own it, with a push of its
// own (free_dispatch batches them instead).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void PushRemote(SuperSlab* ss, void* block) {
  if (Heap* owner = TakeForRemoteFree(ss, block)) owner->remote.Push(block);
}

// Whether `block`, a block of `slab` owned by the calling thread's `heap`, is free
// on its slab's list or in the heap's remote queue (drained first): the owner's
// double-free search past its thread cache.
bool IsFreeInSlab(Heap* heap, const SlabMeta* slab, const void* block);

// Whether no thread runs on `heap` now (a hint, read without the heaps lock).
inline bool IsAbandoned(const Heap* heap) {
  return !__atomic_load_n(&heap->live, __ATOMIC_RELAXED);
}

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
