#include "hakmem/stats/stats.h"

#include <cstring>

#include "hakmem/platform/intrusive_list.h"
#include "hakmem/platform/spin_lock.h"

namespace hakmem::stats {

ABSL_CONST_INIT __thread ThreadCounters tls_counters HAKMEM_TLS = {};

ABSL_CONST_INIT std::atomic<uint64_t> g_counters[kNumCounters] = {};
ABSL_CONST_INIT std::atomic<uint64_t> g_lane_allocs[kNumLanes] = {};
ABSL_CONST_INIT std::atomic<uint64_t> g_lane_bytes[kNumLanes] = {};
ABSL_CONST_INIT std::atomic<uint64_t> g_size_hist[kNumHist] = {};

namespace {

ABSL_CONST_INIT platform::SpinLock g_lock;
ABSL_CONST_INIT IntrusiveList<ThreadCounters> g_live ABSL_GUARDED_BY(g_lock);
// Counters of exited threads.
ABSL_CONST_INIT uint64_t g_retired_class_allocs[kNumClasses] ABSL_GUARDED_BY(g_lock) = {};
ABSL_CONST_INIT uint64_t g_retired_counters[kNumCounters] ABSL_GUARDED_BY(g_lock) = {};

constexpr const char* kNames[] = {
#define HAKMEM_STATS_NAME(field, help) #field,
    HAKMEM_STATS_COUNTERS(HAKMEM_STATS_NAME)
#undef HAKMEM_STATS_NAME
};
constexpr const char* kHelps[] = {
#define HAKMEM_STATS_HELP(field, help) help,
    HAKMEM_STATS_COUNTERS(HAKMEM_STATS_HELP)
#undef HAKMEM_STATS_HELP
};

void Unlink(ThreadCounters* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  g_live.Remove(t);
  t->attached = false;
}

// Adds `t`'s counts, its fast-path counters' included, to `counters` and
// `class_allocs`.
void AddCounts(const ThreadCounters* t, uint64_t* counters, uint64_t* class_allocs) {
  for (int i = 0; i < kNumCounters; ++i) counters[i] += LoadCounter(&t->counters[i]);
  if (const FastCounters* fast = t->fast; fast != nullptr) {
    for (int c = 0; c < kNumClasses; ++c) {
      class_allocs[c] += LoadCounter(&fast->classes[c].allocs);
      counters[static_cast<int>(Counter::k_frees_local)] +=
          LoadCounter(&fast->classes[c].local_frees);
    }
  }
}

// Moves `t`'s counts into the retired totals and zeroes them.
void Retire(ThreadCounters* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  AddCounts(t, g_retired_counters, g_retired_class_allocs);
  memset(t->counters, 0, sizeof(t->counters));
  if (t->fast != nullptr) memset(t->fast, 0, sizeof(*t->fast));
}

}  // namespace

const char* CounterName(Counter counter) { return kNames[static_cast<int>(counter)]; }
const char* CounterHelp(Counter counter) { return kHelps[static_cast<int>(counter)]; }

void AttachThread(FastCounters* fast) {
  ThreadCounters* t = &tls_counters;
  if (t->attached) return;
  platform::SpinLockHolder hold(&g_lock);
  if (t->fast != fast) {
    if (t->fast != nullptr) Retire(t);  // (counts of a FastCounters no longer counted)
    t->fast = fast;
  }
  g_live.PushFront(t);
  t->attached = true;
}

void DetachThread() {
  ThreadCounters* t = &tls_counters;
  platform::SpinLockHolder hold(&g_lock);
  Retire(t);
  if (t->attached) Unlink(t);
}

void Collect(Snapshot* out) {
  memset(out, 0, sizeof(*out));
  for (int i = 0; i < kNumCounters; ++i)
    out->counters[i] = g_counters[i].load(std::memory_order_relaxed);
  for (int l = 0; l < kNumLanes; ++l) {
    out->lane_allocs[l] = g_lane_allocs[l].load(std::memory_order_relaxed);
    out->lane_bytes[l] = g_lane_bytes[l].load(std::memory_order_relaxed);
  }
  platform::SpinLockHolder hold(&g_lock);
  auto add = [out](const ThreadCounters* t) { AddCounts(t, out->counters, out->class_allocs); };
  for (int i = 0; i < kNumCounters; ++i) out->counters[i] += g_retired_counters[i];
  for (int c = 0; c < kNumClasses; ++c) out->class_allocs[c] = g_retired_class_allocs[c];
  for (int b = 0; b < kNumHist; ++b)
    out->size_hist[b] = g_size_hist[b].load(std::memory_order_relaxed);
  // Other threads' counters are read while they run (relaxed loads of words
  // their owners add to): a snapshot, not a barrier.
  for (const ThreadCounters* t = g_live.head(); t != nullptr; t = t->next) add(t);
  if (!tls_counters.attached) add(&tls_counters);  // the caller may not be listed
}

// Fork handlers hold the lock across fork(), from Prepare to the After
// handlers: beyond what -Wthread-safety follows.
void PrepareFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Lock(); }
void ParentAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Unlock(); }

void ChildAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  ThreadCounters* self = &tls_counters;
  ThreadCounters* t = g_live.head();
  while (t != nullptr) {
    ThreadCounters* next = t->next;
    if (t != self) {
      Retire(t);
      Unlink(t);
    }
    t = next;
  }
  g_lock.ResetAfterFork();
}

}  // namespace hakmem::stats
