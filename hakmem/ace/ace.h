// ace: adaptive thread caches. How many blocks each thread-cache list may hold
// (thread_cache's FreeList::limit) and how many a refill or flush moves, per thread and per
// class, learned from the program's own refills and flushes.
//
// Owns: the calling thread's ACE state (tls_ace: each class's limit, heat and last
// event, the thread's byte budget and its event clock), the policy that moves the
// limits, and the process-wide peak limit of each class (the HAKMEM_STATS report).
// The policy runs on the thread caches' slow paths only: a refill (the list ran
// empty) or a flush (the list was full) is an *event* of its class, and the event
// clock counts them, so nothing here reads a clock or runs on a fast path.
//  - A class starts at its fixed limit (kSizeClasses[cls].cache_max) at its first
//    event, and each later event raises the limit by half (slow start), up to
//    half the budget (and kMaxLimit blocks).
//  - Budget: the limits of one thread (limit x class size, summed over the
//    classes it has used) stay within HAKMEM_ACE_BUDGET_KB. A class that would
//    go past it grows by an eighth instead, taking the bytes from colder classes:
//    idle ones (no event for a window), the longest idle first, then ones with a
//    quarter of its events per byte of limit or fewer (a steal). With nothing to
//    take, it stays. A class's first event takes its floor from the coldest
//    classes if it must, so the budget holds whenever the floors of the classes
//    in use fit in it.
//  - Decay: at the end of each window (WindowOf), each class that had no event
//    for a whole window halves its limit, down to its floor (16 KiB, at least one
//    block, at most its fixed limit), and every class's heat (its recent events)
//    halves.
//  - A refill or flush moves half the limit (BatchFor).
//  - Shed: after kShedAfter flushes of a class in a row with no refill between,
//    each further flush halves its limit, down to its floor, and gives its whole
//    list back; such a flush is not an event of the clock.
// A lowered limit reaches its list at the thread cache's next slow path (trims:
// the list gives back what it holds beyond it). With --define hakmem_ace=off, the
// thread cache never calls this box and the limits stay the table's.
// Thread-safety: a State belongs to one thread (tls_ace; tests make their own);
// the peak table is relaxed atomics, read and written by any thread.
// Called by: thread_cache (ThreadCache::Refill and Flush), heap (the empty-slab keep policy),
// //hakmem (the stats report).
#ifndef HAKMEM_ACE_ACE_H_
#define HAKMEM_ACE_ACE_H_

#include <cstdint>

#include "absl/base/attributes.h"
#include "hakmem/config/build_config.h"
#include "hakmem/platform/platform.h"
#include "hakmem/size_class/size_class.h"

namespace hakmem::ace {

// A window: the events of a thread between two decay scans, and how long a class
// must go without an event to count as idle: kWindow, or kWindowPerClass per
// class in use when that is longer, so a class at the average rate of a thread
// with many classes is never taken for idle by chance (it expects 16 events in
// a window).
inline constexpr uint32_t kWindow = 256;
inline constexpr uint32_t kWindowPerClass = 16;
// Most blocks one list may hold, whatever the budget: what a class's slots in
// its heap hold (heap.h's kCacheSlotStride); a limit above it would only take
// budget from other classes.
inline constexpr uint32_t kMaxLimit = 2048;
// A class keeps at least this many bytes of limit (and one block), at most its
// fixed limit: the floor that decay and steals stop at.
inline constexpr uint32_t kFloorBytes = 16 << 10;

struct ClassState {
  uint16_t limit;  // blocks its list may hold; 0: no event yet (not in use)
  uint16_t heat;   // events, halved every window (saturates)
  // Its heat when its last search for a class to take from found none: it
  // searches again once its heat has doubled, or after the next decay scan (so a
  // full budget costs a few searches per window, not one per event). 0: none.
  uint16_t search_heat;
  uint32_t last_event;  // the thread's event clock at its last event
  uint16_t flush_run;   // flushes since its last refill, up to kShedAfter
};

struct State {
  ClassState classes[kNumClasses];
  uint64_t budget;        // bytes
  uint64_t used;          // limit x class size, summed over the classes in use
  uint32_t clock;         // events so far
  uint32_t window_start;  // the clock at the last decay scan
  uint32_t in_use;        // classes with a limit (an event so far)
  bool configured;        // budget read from the options
  uint64_t trims[2];      // classes whose limit went down since their list looked
  // Classes whose limit is above their floor: the only ones a steal may take
  // from, so its search visits them alone instead of every class.
  uint64_t givers[2];
};

// What happened to a class's list: it ran empty (a refill) or full (a flush).
enum class Event : uint8_t { kRefill, kFlush };

// A class whose list ran full kShedAfter times in a row, with no refill
// between, is freed and not taken back (a program dropping a structure, a phase
// ending): cached blocks would only pin their slabs. Each further flush of the
// run halves its limit, down to its floor, and empties its list (a shed). The
// run's first flushes still grow the limit, so a list learns bursts of frees
// that the next mallocs take back.
// On fragmentation, once every block is freed and the program sleeps a second,
// hakmem held 47 MiB without this and 19 MiB with it (docs/real_programs.md).
inline constexpr uint32_t kShedAfter = 4;

// The calling thread's state. Constant-initialised (all zero: every class not in
// use, the budget read at the first event).
extern __thread State tls_ace HAKMEM_TLS;

// What an event leaves: the class's limit (its list's max) and the blocks a
// refill or flush moves.
struct Decision {
  uint32_t limit;
  uint32_t batch;
};

constexpr uint32_t BatchFor(uint32_t limit) { return limit > 1 ? limit / 2 : 1; }
constexpr uint32_t DefaultLimit(int cls) {
  return kSizeClasses[cls].cache_max < kMaxLimit ? kSizeClasses[cls].cache_max : kMaxLimit;
}
constexpr uint32_t FloorLimit(int cls) {
  const uint32_t blocks = kFloorBytes / kSizeClasses[cls].size;
  const uint32_t floor = blocks > 0 ? blocks : 1;
  return floor < DefaultLimit(cls) ? floor : DefaultLimit(cls);
}
static_assert(kMaxLimit <= UINT16_MAX, "limits are uint16_t");

constexpr bool BatchesAreHalfTheLimits() {
  for (int cls = 0; cls < kNumClasses; ++cls) {
    if (BatchFor(DefaultLimit(cls)) != kSizeClasses[cls].batch) return false;
  }
  return true;
}
static_assert(BatchesAreHalfTheLimits(),
              "at its fixed limit a class moves the table's batch, as with hakmem_ace=off");

// The most blocks `cls` may reach in `s`: half the budget, at least its fixed
// limit, at most kMaxLimit.
uint32_t CapLimit(const State& s, int cls);

// Sets the budget of `s` (bytes). The first event reads HAKMEM_ACE_BUDGET_KB
// unless this was called first (tests).
void Configure(State* s, uint64_t budget_bytes);

// One refill or flush of `cls` (the thread cache of `s`'s thread): moves the
// limits as the policy above says and returns what `cls` has now. A shed's batch
// is kMaxLimit: the whole list goes back.
Decision OnEvent(State* s, int cls, Event event);

// The limit of `cls` now: its fixed limit before its first event.
inline uint32_t LimitOf(const State& s, int cls) {
  const uint32_t limit = s.classes[cls].limit;
  return limit != 0 ? limit : DefaultLimit(cls);
}

// Whether any class has a lowered limit its list has not taken yet.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool HasTrims(const State& s) {
  return (s.trims[0] | s.trims[1]) != 0;
}

// Events in a window of `s`.
inline uint32_t WindowOf(const State& s) {
  const uint32_t scaled = kWindowPerClass * s.in_use;
  return scaled > kWindow ? scaled : kWindow;
}

// Takes (clears) the next such class in [first, first + count); -1 when none is.
int TakeTrim(State* s, int first, int count);

// The largest limit any thread has given `cls` (0: never above its fixed limit).
uint32_t PeakLimit(int cls);

}  // namespace hakmem::ace

#endif  // HAKMEM_ACE_ACE_H_
