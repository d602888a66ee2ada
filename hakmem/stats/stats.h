// stats: hakmem's counters, from the one field list in stats_fields.h.
//
// Owns: global counters of rare events (relaxed atomics, counted where the event
// happens), per-thread counters of the slow paths (a constant-initialised TLS
// block, registered in a live list while its thread runs and merged into the
// global totals when it exits), the layout of the fast paths' counters (which
// live in the fast paths' own TLS block, see FastCounters), and the size
// histogram.
// Thread-safety: Count*/Record* touch only the caller's TLS or relaxed atomics;
// a thread's counters have one writer (the thread, AddToThreadWord) and are read
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

// The counters of the fast paths (a malloc a thread cache serves, a free by the
// owner thread). They live in the fast paths' own TLS block (thread_cache's
// ThreadCache), not in ThreadCounters: the fast paths then reach the cache and
// the counters through one TLS offset (one GOT load in libhakmem.so, not two).
// Their thread's ThreadCounters point at them (AttachThread).
// A class's counts, 16 bytes: a thread cache's list of the class is 16 bytes
// too, so the fast paths index both with one offset (cls * 16).
struct ClassCounts {
  uint64_t allocs;       // blocks served from the thread's cache
  uint64_t local_frees;  // blocks freed by their owner thread (in total: frees_local)
};
struct FastCounters {
  ClassCounts classes[kNumClasses];
};
// The byte offset of class `cls`'s counts in FastCounters.
inline constexpr uintptr_t ClassCountsOffset(uint32_t cls) {
  return uintptr_t{cls} * sizeof(ClassCounts);
}

// The counters of one thread. While `attached` (the thread has a heap) every
// counter is counted here, without atomics: no cache line is shared between
// threads on any path; otherwise Count() falls back to the global atomics.
struct ThreadCounters {
  uint64_t counters[kNumCounters];
  FastCounters* fast;  // the thread's fast-path counters (nullptr: none yet)
  // Live list links (under the stats lock).
  ThreadCounters* next;
  ThreadCounters* prev;
  bool attached;
};

// Constant-initialised to zero so counting needs no init branch; initial-exec so
// Count() addresses it %fs-relative; __thread: no TLS init wrapper.
extern __thread ThreadCounters tls_counters HAKMEM_TLS;

// A thread's counters (tls_counters, its FastCounters) have one writer, the
// thread; other threads read them with relaxed atomic loads (LoadCounter, in
// Collect), so an add (AddToThreadWord) is a relaxed atomic load and store, not
// a plain `+=` (a data race). clang folds that pair
// into one %fs-relative `add` to memory, like the plain increment; gcc 12 makes
// it three instructions, so with gcc, where platform.h's HAKMEM_FS_ASM allows,
// the `add` is written as asm (an aligned 8-byte store is single-copy atomic and,
// with no second writer, needs no lock prefix). No "memory" clobber: the counters
// are only ever read through LoadCounter. Under ThreadSanitizer, which checks
// this protocol, gcc takes the atomic pair too.
#if HAKMEM_FS_ASM && !defined(__clang__)
#define HAKMEM_STATS_ASM_ADD 1
#else
#define HAKMEM_STATS_ASM_ADD 0
#endif

// Adds `n` to the word at byte offset kField + 8 * index of the calling thread's
// thread-local `object` (tls_counters, or a FastCounters in a TLS block).
template <size_t kField, typename T>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AddToThreadWord(T& object, uintptr_t index, uint64_t n) {
#if HAKMEM_STATS_ASM_ADD
  const uintptr_t tls_offset = platform::ThreadOffset(object);
  asm volatile("addq %2, %%fs:%c3(%0,%1,8)" : : "r"(tls_offset), "r"(index), "er"(n), "i"(kField));
#else
  uint64_t* counter =
      reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(&object) + kField) + index;
  __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
#endif
}

// The same for the word at byte offset kField + `offset`.
template <size_t kField, typename T>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AddToThreadWordAt(T& object, uintptr_t offset,
                                                           uint64_t n) {
#if HAKMEM_STATS_ASM_ADD
  const uintptr_t tls_offset = platform::ThreadOffset(object);
  asm volatile("addq %2, %%fs:%c3(%0,%1)" : : "r"(tls_offset), "r"(offset), "er"(n), "i"(kField));
#else
  uint64_t* counter =
      reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(&object) + kField + offset);
  __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
#endif
}

// Reads a thread's counter (see AddToThreadWord).
inline uint64_t LoadCounter(const uint64_t* counter) {
  return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

extern std::atomic<uint64_t> g_counters[kNumCounters];
extern std::atomic<uint64_t> g_lane_allocs[kNumLanes];
extern std::atomic<uint64_t> g_lane_bytes[kNumLanes];

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Count(Counter counter, uint64_t n = 1) {
  if constexpr (config::kStats) {
    if (ABSL_PREDICT_TRUE(tls_counters.attached)) {
      AddToThreadWord<offsetof(ThreadCounters, counters)>(tls_counters,
                                                          static_cast<uint32_t>(counter), n);
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

// A block served from the calling thread's cache, of the class whose counts are
// at byte `class_offset` (ClassCountsOffset). `block` is the thread-local object
// holding the thread's FastCounters at byte kAt (a TLS symbol and a constant, so
// that the counter's address folds into the one TLS offset the fast path loads
// anyway).
template <size_t kAt, typename Block>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountClassAlloc(Block& block, uintptr_t class_offset) {
  if constexpr (config::kStats) {
    AddToThreadWordAt<kAt + offsetof(ClassCounts, allocs)>(block, class_offset, 1);
  }
}

// A block of that class freed by its owner thread (the same `block` and kAt).
template <size_t kAt, typename Block>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountLocalFree(Block& block, uintptr_t class_offset) {
  if constexpr (config::kStats) {
    AddToThreadWordAt<kAt + offsetof(ClassCounts, local_frees)>(block, class_offset, 1);
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

// Puts the calling thread's counters in the live list (idempotent), with `fast`,
// its fast-path counters (thread-local; they are counted from then on).
void AttachThread(FastCounters* fast);
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
