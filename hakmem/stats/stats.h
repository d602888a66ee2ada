// stats: hakmem's counters, from the one field list in stats_fields.h.
//
// Owns: global counters of rare events (relaxed atomics, counted where the event
// happens), per-thread counters of the hot paths (a constant-initialised TLS
// block, registered in a live list while its thread runs and merged into the
// global totals when it exits), and the size histogram.
// Thread-safety: Count*/Record* touch only the caller's TLS or relaxed atomics;
// AttachThread/DetachThread/Collect take the stats lock. With
// --define hakmem_stats=off every counter compiles away.
// Called by: registry, superslab, heap, thread_cache, free_dispatch, core.
#ifndef HAKMEM_STATS_STATS_H_
#define HAKMEM_STATS_STATS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
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
extern __thread ThreadCounters tls_counters
    HAKMEM_TLS;

extern std::atomic<uint64_t> g_counters[kNumCounters];
extern std::atomic<uint64_t> g_lane_allocs[kNumLanes];
extern std::atomic<uint64_t> g_lane_bytes[kNumLanes];

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Count(Counter counter, uint64_t n = 1) {
  if constexpr (config::kStats) {
    if (ABSL_PREDICT_TRUE(tls_counters.attached)) {
      tls_counters.counters[static_cast<int>(counter)] += n;
    } else {
      g_counters[static_cast<int>(counter)].fetch_add(n, std::memory_order_relaxed);
    }
  }
}

// Allocations of the lanes without thread caches (large, huge).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountLaneAlloc(int lane, uint64_t bytes) {
  if constexpr (config::kStats) {
    g_lane_allocs[lane].fetch_add(1, std::memory_order_relaxed);
    g_lane_bytes[lane].fetch_add(bytes, std::memory_order_relaxed);
  }
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountClassAlloc(int cls) {
  if constexpr (config::kStats) ++tls_counters.class_allocs[static_cast<uint32_t>(cls)];
}

// The fast path's local free: its thread always has a heap, so it is attached.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CountLocalFree() {
  if constexpr (config::kStats) ++tls_counters.counters[static_cast<int>(Counter::k_frees_local)];
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
