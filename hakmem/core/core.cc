#include "hakmem/core/core.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "hakmem/config/options.h"
#include "hakmem/heap/heap.h"
#include "hakmem/platform/platform.h"
#include "hakmem/registry/registry.h"
#include "hakmem/superslab/superslab.h"

extern "C" void* __libc_realloc(void* ptr, size_t size);  // glibc

namespace hakmem::core {
namespace {

using stats::Count;
using stats::Counter;

// 0: nothing done, 1: a thread is initialising, 2: ready.
ABSL_CONST_INIT std::atomic<int> g_init_state{0};
ABSL_CONST_INIT std::atomic<uint32_t> g_init_thread{0};
ABSL_CONST_INIT pthread_key_t g_thread_key = 0;
ABSL_CONST_INIT int g_report_fd = 2;

// Gives the calling thread's cached blocks back to their slabs and its caches'
// lists off the heap's slots, before the heap goes to another thread.
void FlushThreadCaches(Heap* heap) { thread_cache::Detach(heap); }

// Set once the thread's exit has begun (its key destructor ran): from then on a
// heap attached by a later destructor's allocation is handed back right after that
// allocation, since no destructor round may be left to hand it back (glibc runs
// PTHREAD_DESTRUCTOR_ITERATIONS rounds). Constant-initialised, so reading it needs
// no init branch; it is read on the slow paths only.
ABSL_CONST_INIT __thread bool tls_thread_exiting HAKMEM_TLS = false;

// Thread exit (pthread key destructor): caches back to the slabs, heap handed on.
void ThreadExit(void*) {
  tls_thread_exiting = true;
  if (!HasHeap()) return;
  FlushThreadCaches(tls_heap);
  AbandonHeap();
  MaybePurge();
}

// An allocation made after the thread's exit began: its heap goes back at once
// (thread caches flushed first), so nothing stays attached to a dead thread.
ABSL_ATTRIBUTE_NOINLINE void* HandBackExitingHeap(void* p) {
  if (HasHeap()) {
    FlushThreadCaches(tls_heap);
    AbandonHeap();
  }
  return p;
}

void PrepareFork() {
  profiler::PrepareFork();
  PrepareForkHeaps();
  PrepareForkSuperSlabs();
  registry::PrepareFork();
  stats::PrepareFork();
}

void ParentAfterFork() {
  stats::ParentAfterFork();
  registry::ParentAfterFork();
  ParentAfterForkSuperSlabs();
  ParentAfterForkHeaps();
  profiler::ParentAfterFork();
}

void ChildAfterFork() {
  stats::ChildAfterFork();
  registry::ChildAfterFork();
  ChildAfterForkSuperSlabs();
  ChildAfterForkHeaps();
  profiler::ChildAfterFork();
}

ABSL_ATTRIBUTE_NOINLINE void GlobalInit() {
  int expected = 0;
  if (!g_init_state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) {
    // Another thread initialises; the same thread re-entering (an allocation
    // made by pthread_atfork, say) goes on, the state it needs is ready.
    if (g_init_thread.load(std::memory_order_relaxed) == platform::ThreadId()) return;
    while (g_init_state.load(std::memory_order_acquire) != 2) sched_yield();
    return;
  }
  g_init_thread.store(platform::ThreadId(), std::memory_order_relaxed);
  platform::CheckPageSize();
  const config::Options& options = config::GetOptions();
  if (options.stats || options.size_hist) {
    const int fd = platform::DuplicateFd(2);
    if (fd >= 0) g_report_fd = fd;
  }
  profiler::Init();  // before any thread has a heap, so every one is uncached
  if (pthread_key_create(&g_thread_key, ThreadExit) != 0) {
    platform::Fatal("pthread_key_create failed: cannot hand back thread caches");
  }
  pthread_atfork(PrepareFork, ParentAfterFork, ChildAfterFork);
  g_init_state.store(2, std::memory_order_release);
}

// The calling thread's heap, attaching one on first use. nullptr: out of memory.
ABSL_ATTRIBUTE_NOINLINE Heap* AttachThread() {
  if (g_init_state.load(std::memory_order_acquire) != 2) GlobalInit();
  if (HasHeap()) return tls_heap;  // attached while initialising
  Heap* heap = thread_cache::AttachHeap();
  if (heap == nullptr) return nullptr;
  if (ABSL_PREDICT_FALSE(tls_thread_exiting)) return heap;  // handed back after this call
  pthread_setspecific(g_thread_key, heap);
  if (ABSL_PREDICT_FALSE(profiler::Enabled())) {
    thread_cache::SetUncached();
  } else {
    thread_cache::Prewarm(heap);
  }
  return heap;
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline Heap* CurrentHeap() {
  return ABSL_PREDICT_TRUE(HasHeap()) ? tls_heap : AttachThread();
}

void* Fail() {
  Count(Counter::k_alloc_failures);
  errno = ENOMEM;
  return nullptr;
}

// One block of size class `cls` through its thread cache; `*zeroed` tells
// whether it is known to read as zero. With the heap profiler on, a block a
// refill returns is offered to the sampler (`requested` bytes in a block of the
// class's size); the blocks the refill left cached were counted as unsampled by
// it (profiler.h).
HAKMEM_ALLOC_ENTRY void* AllocClass(Heap* heap, int cls, size_t requested, bool* zeroed) {
  *zeroed = false;
  void* p;
  bool refilled = false;
  p = thread_cache::TryAlloc(cls);
  if (p == nullptr) {
    p = thread_cache::Refill(heap, cls, zeroed);
    refilled = true;
  }
  if (p == nullptr) return Fail();
  thread_cache::CountAllocAt(ListOffset(static_cast<uint32_t>(cls)));
  if (ABSL_PREDICT_FALSE(profiler::Enabled()) && refilled) {
    profiler::OnAlloc(p, requested, ClassSize(cls));
  }
  return p;
}

// Any size, aligned to `alignment` (a power of two <= 1 MiB for the slab lanes).
// `*zeroed` tells whether the block is known to read as zero. A large run is
// carved among blocks of `large_occupancy`.
void* AllocateUnsampled(size_t size, size_t alignment, bool* zeroed,
                        Occupancy large_occupancy = Occupancy::kSparse) {
  *zeroed = false;
  if (size == 0) size = 1;  // a minimal block on every lane, aligned ones included
  if (size > kPoolMax) stats::RecordLargeSize(size);
  if (size > kHugeThreshold || alignment > kHugeThreshold) {
    void* p = HugeAlloc(size, alignment, zeroed);
    if (p == nullptr) return Fail();
    stats::CountLaneAlloc(static_cast<int>(Lane::kHuge), RoundedSize(size));
    return p;
  }
  Heap* heap = CurrentHeap();
  if (heap == nullptr) return Fail();
  void* p;
  if (size <= kPoolMax && alignment <= platform::kPageSize) {
    // A slab's blocks end on a unit boundary, after a tail of (units * 16 KiB)
    // mod size bytes: a class whose size is a multiple of the alignment (<= 16
    // KiB) has only aligned blocks; powers of two are classes, so one exists.
    int cls = SizeClass(size);
    while (ClassSize(cls) % alignment != 0) ++cls;
    p = AllocClass(heap, cls, size, zeroed);
  } else {
    {
      HeapLock hold(&heap->lock);
      p = AllocLarge(heap, size, alignment, zeroed, large_occupancy);
    }
    AfterSlowPath();
    if (p != nullptr) {
      stats::CountLaneAlloc(static_cast<int>(Lane::kLarge), LargeUnits(size) * kUnitSize);
    } else {
      // No superslab has the run and no new one can be had (an address space
      // limit), or its alignment fits no superslab's carvable units: a mapping
      // of its own needs only the block's pages.
      p = HugeAlloc(size, alignment, zeroed);
      if (p == nullptr) return Fail();
      stats::CountLaneAlloc(static_cast<int>(Lane::kHuge), RoundedSize(size));
    }
  }
  if (ABSL_PREDICT_FALSE(tls_thread_exiting)) return HandBackExitingHeap(p);
  return p;
}

// Allocate, seen by the heap profiler when it runs (the slab classes in AllocClass).
HAKMEM_ALLOC_ENTRY void* Allocate(size_t size, size_t alignment, bool* zeroed,
                                  Occupancy large_occupancy = Occupancy::kSparse) {
  void* p = AllocateUnsampled(size, alignment, zeroed, large_occupancy);
  if (ABSL_PREDICT_FALSE(profiler::Enabled()) && p != nullptr &&
      (size > kPoolMax || alignment > platform::kPageSize)) {
    profiler::OnAlloc(p, size);
  }
  return p;
}

constexpr bool MulOverflows(size_t a, size_t b, size_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

void* MallocSlow(size_t size) {
  if (size <= kPoolMax) {
    Heap* heap = CurrentHeap();
    if (heap == nullptr) return Fail();
    bool zeroed;
    void* p = AllocClass(heap, SizeClass(size), size, &zeroed);
    if (ABSL_PREDICT_FALSE(tls_thread_exiting)) return HandBackExitingHeap(p);
    return p;
  }
  bool zeroed;
  return Allocate(size, alignof(max_align_t), &zeroed);
}

void* CallocSlow(size_t count, size_t size) {
  size_t total;
  if (MulOverflows(count, size, &total)) return Fail();
  bool zeroed;
  void* p = Allocate(total, alignof(max_align_t), &zeroed);
  if (p != nullptr && !zeroed) memset(p, 0, total);
  return p;
}

namespace {

// What a block of a size class that realloc must move asks for: growth by a
// quarter of the old block at least (as tcmalloc's realloc does), so a buffer
// growing by small steps (python's lists grow by an eighth, and the classes are
// an eighth apart) moves every other step, not every step; within the size
// classes. Shrinking asks for `size`.
size_t GrownClassRequest(const free_dispatch::Found& found, size_t size) {
  if (size <= found.usable || found.kind != free_dispatch::Kind::kBlock) return size;
  const size_t quarter_more = found.usable + found.usable / 4;
  if (size >= quarter_more) return size;
  return quarter_more < kPoolMax ? quarter_more : kPoolMax;
}

// realloc of a large block of the calling thread's heap without moving it.
bool GrowInPlace(void* ptr, size_t size) {
  bool grown;
  {
    HeapLock hold(&tls_heap->lock);
    grown = GrowLargeInPlace(tls_heap, ptr, size);
  }
  AfterSlowPath();
  return grown;
}

}  // namespace

void* ReallocBlock(void* ptr, size_t size) {
  if (size == 0) {  // glibc: frees and returns nullptr
    Free(ptr);
    return nullptr;
  }
  const free_dispatch::Found found = free_dispatch::Find(ptr, free_dispatch::Call::kRealloc);
  switch (found.kind) {
    case free_dispatch::Kind::kInvalid:
      errno = EINVAL;
      return nullptr;
    case free_dispatch::Kind::kForeign:
      return __libc_realloc(ptr, size);  // stays the C library's
    case free_dispatch::Kind::kHuge:
      if (size > kHugeThreshold) {
        // nullptr: the pages could not be moved; a copy (below) may still succeed
        // (a sampled block is forgotten either way).
        const bool profiled = ABSL_PREDICT_FALSE(profiler::Enabled());
        if (profiled) profiler::OnFree(ptr);
        if (void* moved = HugeRealloc(HugeHeaderOf(ptr), size)) {
          if (profiled) profiler::OnAlloc(moved, size);
          if (moved == ptr) Count(Counter::k_realloc_in_place);
          return moved;
        }
      }
      break;
    case free_dispatch::Kind::kLarge:
      // Growing (a vector, a string builder): over the free units after the run.
      if (size > found.usable && size <= kHugeThreshold && HasHeap() && GrowInPlace(ptr, size)) {
        if (ABSL_PREDICT_FALSE(profiler::Enabled())) {
          profiler::OnFree(ptr);
          profiler::OnAlloc(ptr, size);
        }
        Count(Counter::k_realloc_in_place);
        return ptr;
      }
      [[fallthrough]];
    case free_dispatch::Kind::kBlock:
      // In place while it fits and leaves no more than half the block (or 128
      // bytes, whichever is more) unused.
      if (size <= found.usable && found.usable - size <= std::max<size_t>(found.usable / 2, 128)) {
        Count(Counter::k_realloc_in_place);
        return ptr;
      }
      break;
  }
  // A block that grows is written up to its old size at once (the copy) and
  // tends to fill: a large one is carved among the dense blocks, whose
  // superslabs are in 2 MiB pages once the heap is big, rather than among the
  // big blocks a program may write only the start of (4 KiB pages, a fault each).
  bool zeroed;
  void* fresh;
  if (size > found.usable && size > kPoolMax) {
    fresh = Allocate(size, alignof(max_align_t), &zeroed, Occupancy::kDense);
  } else {
    const size_t request = GrownClassRequest(found, size);
    fresh = Malloc(request);
    if (fresh == nullptr && request != size) fresh = Malloc(size);  // the room was extra
  }
  if (fresh == nullptr) return nullptr;  // errno set; the old block is intact
  memcpy(fresh, ptr, size < found.usable ? size : found.usable);
  Free(ptr);
  return fresh;
}

void* ReallocArray(void* ptr, size_t count, size_t size) {
  size_t total;
  if (MulOverflows(count, size, &total)) return Fail();
  return Realloc(ptr, total);
}

void* AlignedAlloc(size_t alignment, size_t size) {
  if (alignment <= alignof(max_align_t)) return Malloc(size);
  bool zeroed;
  return Allocate(size, alignment, &zeroed);
}

int PosixMemalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  const int saved = errno;
  void* p = AlignedAlloc(alignment, size);
  if (p == nullptr) {
    errno = saved;  // posix_memalign reports through its result only
    return ENOMEM;
  }
  *out = p;
  return 0;
}

void* Memalign(size_t alignment, size_t size) {
  // glibc: an alignment below 16 is raised; one that is not a power of two is
  // raised to the next power of two.
  if (alignment > (size_t{1} << 62)) {
    errno = EINVAL;
    return nullptr;
  }
  size_t a = alignment < alignof(max_align_t) ? alignof(max_align_t) : alignment;
  if ((a & (a - 1)) != 0) a = size_t{1} << (64 - __builtin_clzll(a));
  return AlignedAlloc(a, size);
}

void* AlignedAllocC11(size_t alignment, size_t size) {
  // glibc 2.36 accepts any power of two (including 1) and rejects the rest.
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  return AlignedAlloc(alignment, size);
}

void* Valloc(size_t size) { return AlignedAlloc(static_cast<size_t>(getpagesize()), size); }

void* Pvalloc(size_t size) {
  const size_t page = static_cast<size_t>(getpagesize());
  if (size > SIZE_MAX - page) return Fail();
  const size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
  return AlignedAlloc(page, rounded);
}

bool Purge() {
  free_dispatch::FlushRemoteFrees();
  if (HasHeap()) {  // the caller's cached blocks and spare superslab go first
    Heap* heap = tls_heap;
    thread_cache::FlushAll(heap);  // (the thread goes on: its lists keep their slots)
    HeapLock hold(&heap->lock);
    DrainRemote(heap);
    TrimHeap(heap);
    DecommitFree(heap);
  }
  return PurgeCaches(/*force=*/true);
}

void NoteMainStarted() { hakmem::NoteMainStarted(); }

int ReportFd() { return g_report_fd; }

}  // namespace hakmem::core
