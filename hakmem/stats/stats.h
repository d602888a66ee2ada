// stats: hakmem's counters, from the one field list in stats_fields.h.
//
// Owns: global counters of rare events (relaxed atomics, counted where the event
// happens), per-thread counters of the hot paths (a constant-initialised TLS
// block, registered in a live list while its thread runs and merged into the
// global totals when it exits), and the size histogram.
// Thread-safety: Count*/Record* touch only the caller's TLS or relaxed atomics;
// a thread's counters have one writer (the thread, AddToThreadCounter) and are read
// by Collect with relaxed atomic loads, never a plain read of a changing word.
// AttachThread/DetachThread/Collect take the stats lock. With
// --define hakmem_stats=off every counter compiles away.
// Called by: registry, superslab, heap, thread_cache, free_dispatch, core.
#ifndef HAKMEM_STATS_STATS_H_
#define HAKMEM_STATS_STATS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/config.h"
#include "absl/base/optimization.h"
#include "hakmem/config/build_config.h"
#include "hakmem/platform/platform.h"
#include "hakmem/stats/stats_fields.h"

namespace hakmem::stats {

enum class Counter : int {
#define HAKMEM_STATS_ENUM(field, help) k_##field,
  HAKMEM_STATS_COUNTERS(HAKMEM_STATS_ENUM)
#undef HAKMEM_STATS_ENUM
      kCount
};
inline constexpr int kNumCounters = static_cast<int>(Counter::kCount);
inline constexpr int kNumClasses = HAKMEM_STATS_NUM_CLASSES;
inline constexpr int kNumLanes = HAKMEM_STATS_NUM_LANES;
inline constexpr int kNumHist = HAKMEM_STATS_NUM_HIST;

const char* CounterName(Counter counter);
const char* CounterHelp(Counter counter);

// The counters of one thread. While `attached` (the thread has a heap) every
// counter is counted here, without atomics: no cache line is shared between
// threads on any path; otherwise Count() falls back to the global atomics.
struct ThreadCounters {
  uint64_t counters[kNumCounters];
  uint64_t class_allocs[kNumClasses];
  // Live list links (under the stats lock).
  ThreadCounters* next;
  ThreadCounters* prev;
  bool attached;
};

// Constant-initialised to zero so counting needs no init branch; initial-exec so
// the fast path addresses it %fs-relative; __thread: no TLS init wrapper.
extern __thread ThreadCounters tls_counters HAKMEM_TLS;

// Adds `n` to the calling thread's counter tls_counters.<field>[index] (the field
// at byte offset kField): the thread is its one writer; other threads read it
// with relaxed atomic loads (LoadCounter, in Collect), so the add is a relaxed
// atomic load and store, not a plain `+=` (a data race). clang folds that pair
// into one %fs-relative `add` to memory, like the plain increment; gcc 12 makes
// it three instructions, so with gcc on x86-64 the `add` is written as asm (an
// aligned 8-byte store is single-copy atomic and, with no second writer, needs no
// lock prefix; the asm takes the thread-local's offset and the index in registers
// because gcc cannot put a variable index into an asm operand of a thread-local).
// No "memory" clobber: the counters are only ever read through LoadCounter. Under
// ThreadSanitizer, which does not see inside asm and checks this protocol, gcc
// takes the atomic pair too.
#if defined(__x86_64__) && !defined(__clang__) && !defined(ABSL_HAVE_THREAD_SANITIZER)
#define HAKMEM_STATS_ASM_ADD 1
#else
#define HAKMEM_STATS_ASM_ADD 0
#endif

#if HAKMEM_STATS_ASM_ADD
// tls_counters' offset from the thread pointer (%fs): compilers fold this into the
// initial-exec offset load (or the local-exec constant).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uintptr_t ThreadCountersOffset() {
  return reinterpret_cast<uintptr_t>(&tls_counters) -
         reinterpret_cast<uintptr_t>(__builtin_thread_pointer());
}
#endif

template <size_t kField>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AddToThreadCounter(uintptr_t index, uint64_t n) {
#if HAKMEM_STATS_ASM_ADD
  const uintptr_t tls_offset = ThreadCountersOffset();
  asm volatile("addq %2, %%fs:%c3(%0,%1,8)" : : "r"(tls_offset), "r"(index), "er"(n), "i"(kField));
#else
  uint64_t* counter =
      reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(&tls_counters) + kField) + index;
  __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
#endif
}

// The same for a counter whose index is a constant: no index register.
template <size_t kField, size_t kIndex>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AddToThreadCounterAt(uint64_t n) {
#if HAKMEM_STATS_ASM_ADD
  const uintptr_t tls_offset = ThreadCountersOffset();
  asm volatile("addq %1, %%fs:%c2(%0)"
               :
               : "r"(tls_offset), "er"(n), "i"(kField + kIndex * sizeof(uint64_t)));
#else
  AddToThreadCounter<kField>(kIndex, n);
#endif
}

// Reads a thread's counter (see AddToThreadCounter).
inline uint64_t LoadCounter(const uint64_t* counter) {
  return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

extern std::atomic<uint64_t> g_counters[kNumCounters];
extern std::atomic<uint64_t> g_lane_allocs[kNumLanes];
extern std::atomic<uint64_t> g_lane_bytes[kNumLanes];

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Count(Counter counter, uint64_t n = 1) {
  if constexpr (config::kStats) {
    if (ABSL_PREDICT_TRUE(tls_counters.attached)) {
      AddToThreadCounter<offsetof(ThreadCounters, counters)>(static_cast<uint32_t>(counter), n);
    } else {
      g_counters[static_cast<int>(counter)].fetch_add(n, std::memory_order_relaxed);
    }
  }
}

// The calling thread's own count of `counter` (tests).
inline uint64_t ThreadCount(Counter counter) {
  return LoadCounter(&tls_counters.counters[static_cast<int>(counter)]);
}

// Allocations of the lanes without thread caches (large, huge).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountLaneAlloc(int lane, uint64_t bytes) {
  if constexpr (config::kStats) {
    g_lane_allocs[lane].fetch_add(1, std::memory_order_relaxed);
    g_lane_bytes[lane].fetch_add(bytes, std::memory_order_relaxed);
  }
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountClassAlloc(uint32_t cls) {
  if constexpr (config::kStats) AddToThreadCounter<offsetof(ThreadCounters, class_allocs)>(cls, 1);
}

// The fast path's local free: its thread always has a heap, so it is attached.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountLocalFree() {
  if constexpr (config::kStats) {
    AddToThreadCounterAt<offsetof(ThreadCounters, counters),
                         static_cast<size_t>(Counter::k_frees_local)>(1);
  }
}

// Histogram bucket of a requested size: [2^(i-1), 2^i), bucket 0 for size 0.
inline int HistBucket(size_t size) {
  if (size == 0) return 0;
  const int bucket = 64 - __builtin_clzll(size);
  return bucket < kNumHist ? bucket : kNumHist - 1;
}

extern std::atomic<uint64_t> g_size_hist[kNumHist];

// Requested sizes of the large and huge lanes (slow paths only; the tiny and
// pool lanes' sizes are known from their class counts, at no cost to the fast
// path).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void RecordLargeSize(size_t size) {
  if constexpr (config::kStats) {
    g_size_hist[HistBucket(size)].fetch_add(1, std::memory_order_relaxed);
  }
}

// Puts the calling thread's counters in the live list (idempotent).
void AttachThread();
// Merges the calling thread's counters into the totals and unlists them.
void DetachThread();

struct Snapshot {
  uint64_t counters[kNumCounters];
  uint64_t lane_allocs[kNumLanes];  // large and huge only; tiny/pool come from classes
  uint64_t lane_bytes[kNumLanes];
  uint64_t class_allocs[kNumClasses];
  uint64_t size_hist[kNumHist];  // requests above kPoolMax, by power of two
};

// Totals of exited threads plus the current counters of live ones.
void Collect(Snapshot* out);

// fork(): the stats lock is held across it; the child folds the counters of the
// threads that did not survive into the totals.
void PrepareFork();
void ParentAfterFork();
void ChildAfterFork();

}  // namespace hakmem::stats

#endif  // HAKMEM_STATS_STATS_H_
