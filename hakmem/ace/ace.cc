#include "hakmem/ace/ace.h"

#include <atomic>

#include "hakmem/config/check.h"
#include "hakmem/config/options.h"
#include "hakmem/stats/stats.h"

namespace hakmem::ace {

ABSL_CONST_INIT __thread State tls_ace HAKMEM_TLS = {};

namespace {

using stats::Count;
using stats::Counter;

ABSL_CONST_INIT std::atomic<uint32_t> g_peak[kNumClasses] = {};

constexpr uint64_t kMaxBudget = uint64_t{1} << 40;

struct Floors {
  uint16_t blocks[kNumClasses];
};
constexpr Floors MakeFloors() {
  Floors f{};
  for (int cls = 0; cls < kNumClasses; ++cls)
    f.blocks[cls] = static_cast<uint16_t>(FloorLimit(cls));
  return f;
}
constexpr Floors kFloors = MakeFloors();  // no division in the searches

uint64_t Bytes(int cls, uint32_t blocks) { return uint64_t{blocks} * kSizeClasses[cls].size; }

uint64_t Room(const State& s) { return s.budget > s.used ? s.budget - s.used : 0; }

void RecordPeak(int cls, uint32_t limit) {
  uint32_t seen = g_peak[cls].load(std::memory_order_relaxed);
  while (seen < limit &&
         !g_peak[cls].compare_exchange_weak(seen, limit, std::memory_order_relaxed)) {
  }
}

bool Idle(const State& s, const ClassState& c) { return s.clock - c.last_event >= WindowOf(s); }

// A class may give limit to the one that searches (Steal: `heat` events, `held`
// bytes of limit) when it is idle, or has at most 1/kGiveRatio of its events per
// byte of limit.
// Events per byte of limit is what one more byte is worth (fewer events), so
// taking from the lower moves the budget where it saves the most; the ratio is
// the hysteresis that keeps two busy classes from taking from each other in turn
// (2 took four times as many steals as 4 on cross_thread and fragmentation, for
// the same number of refills and flushes).
constexpr uint64_t kGiveRatio = 4;

// Every change of a class's limit: the limit and whether the class may give.
void SetLimit(State* s, int cls, uint32_t limit) {
  s->classes[cls].limit = static_cast<uint16_t>(limit);
  const uint64_t bit = uint64_t{1} << (cls % 64);
  if (limit > kFloors.blocks[cls]) {
    s->givers[cls / 64] |= bit;
  } else {
    s->givers[cls / 64] &= ~bit;
  }
}

void Lower(State* s, int cls, uint32_t limit) {
  ClassState& c = s->classes[cls];
  s->used -= Bytes(cls, c.limit - limit);
  SetLimit(s, cls, limit);
  s->trims[cls / 64] |= uint64_t{1} << (cls % 64);
}

// Takes up to `bytes` of limit (rounded up to whole blocks of the giver) for
// `cls`, which would hold `held` bytes, from the classes that may give to it,
// coldest first (idle before busy, the longer idle first, then the fewer events
// per byte of limit), none below its floor (`any`: from every class above its
// floor, coldest first). Returns the bytes taken.
uint64_t Steal(State* s, int cls, uint64_t held, uint64_t bytes, bool any = false) {
  ClassState& c = s->classes[cls];
  if (!any && c.search_heat != 0 && c.heat < 2 * uint32_t{c.search_heat}) return 0;
  // Each class's idleness and bytes of limit are worked out once per look, and
  // the victim's are kept (a search looks at every class).
  const uint32_t window = WindowOf(*s);
  const uint64_t heat = c.heat;
  uint64_t taken = 0;
  while (taken < bytes) {
    int victim = -1;
    bool victim_idle = false;
    uint32_t victim_age = 0;
    uint64_t victim_heat = 0;
    uint64_t victim_bytes = 0;
    for (int word = 0; word < 2; ++word) {
      for (uint64_t bits = s->givers[word]; bits != 0; bits &= bits - 1) {
        const int v = word * 64 + __builtin_ctzll(bits);
        const ClassState& cv = s->classes[v];
        if (v == cls) continue;
        HAKMEM_DCHECK(cv.limit > kFloors.blocks[v]);
        const uint32_t age = s->clock - cv.last_event;
        const bool idle = age >= window;
        const uint64_t v_bytes = Bytes(v, cv.limit);
        if (!idle && !any && uint64_t{cv.heat} * kGiveRatio * held > heat * v_bytes) continue;
        bool colder;
        if (victim < 0) {
          colder = true;
        } else if (idle != victim_idle) {
          colder = idle;
        } else if (idle) {
          colder = age > victim_age;
        } else {
          colder = uint64_t{cv.heat} * victim_bytes < victim_heat * v_bytes;
        }
        if (colder) {
          victim = v;
          victim_idle = idle;
          victim_age = age;
          victim_heat = cv.heat;
          victim_bytes = v_bytes;
        }
      }
    }
    if (victim < 0) break;
    const uint32_t limit = s->classes[victim].limit;
    const uint64_t size = kSizeClasses[victim].size;
    const uint64_t want = (bytes - taken + size - 1) / size;
    const uint32_t spare = limit - kFloors.blocks[victim];
    const uint32_t give = want < spare ? static_cast<uint32_t>(want) : spare;
    Lower(s, victim, limit - give);
    taken += give * size;
    Count(Counter::k_ace_steals);
  }
  if (!any) c.search_heat = taken == 0 ? c.heat : 0;
  return taken;
}

// First event of `cls`: its fixed limit, or what the budget has room for after
// taking from idle classes, but at least its floor.
void Activate(State* s, int cls) {
  uint32_t limit = DefaultLimit(cls);
  const uint64_t need = Bytes(cls, limit);
  if (need > Room(*s)) Steal(s, cls, need, need - Room(*s));
  if (need > Room(*s)) {
    const uint64_t floor = Bytes(cls, kFloors.blocks[cls]);
    if (floor > Room(*s)) Steal(s, cls, floor, floor - Room(*s), /*any=*/true);
    const uint64_t fits = Room(*s) / kSizeClasses[cls].size;
    limit = fits > kFloors.blocks[cls] ? static_cast<uint32_t>(fits) : kFloors.blocks[cls];
  }
  SetLimit(s, cls, limit);
  s->used += Bytes(cls, limit);
  ++s->in_use;
}

// A later event: half as much again while the budget has room; when it is full,
// an eighth, taken from colder classes.
void Grow(State* s, int cls) {
  ClassState& c = s->classes[cls];
  const uint32_t cap = CapLimit(*s, cls);
  if (c.limit >= cap) return;
  const uint64_t size = kSizeClasses[cls].size;
  uint32_t step = c.limit / 2 > 1 ? c.limit / 2 : 1;
  if (step > cap - c.limit) step = cap - c.limit;
  if (Bytes(cls, step) > Room(*s)) {
    uint64_t fits = Room(*s) / size;
    if (fits == 0) {
      uint32_t small = c.limit / 8 > 1 ? c.limit / 8 : 1;
      if (small > step) small = step;
      Steal(s, cls, Bytes(cls, c.limit), Bytes(cls, small) - Room(*s));
      fits = Room(*s) / size;
      if (fits > small) fits = small;
      if (fits == 0) return;
    }
    step = static_cast<uint32_t>(fits);
  }
  SetLimit(s, cls, c.limit + step);
  s->used += Bytes(cls, step);
  RecordPeak(cls, c.limit);
  Count(Counter::k_ace_grows);
}

// The end of a window: idle classes halve their limits, every heat halves.
void Decay(State* s) {
  s->window_start = s->clock;
  for (int cls = 0; cls < kNumClasses; ++cls) {
    ClassState& c = s->classes[cls];
    if (c.limit == 0) continue;
    if (Idle(*s, c) && c.limit > kFloors.blocks[cls]) {
      const uint32_t half = c.limit / 2;
      Lower(s, cls, half > kFloors.blocks[cls] ? half : kFloors.blocks[cls]);
      Count(Counter::k_ace_shrinks);
    }
    c.heat = static_cast<uint16_t>(c.heat >> 1);
    c.search_heat = 0;
  }
}

}  // namespace

uint32_t CapLimit(const State& s, int cls) {
  uint64_t cap = s.budget / 2 / kSizeClasses[cls].size;
  if (cap < DefaultLimit(cls)) cap = DefaultLimit(cls);
  if (cap > kMaxLimit) cap = kMaxLimit;
  return static_cast<uint32_t>(cap);
}

void Configure(State* s, uint64_t budget_bytes) {
  s->budget = budget_bytes < kMaxBudget ? budget_bytes : kMaxBudget;
  s->configured = true;
}

Decision OnEvent(State* s, int cls, Event event) {
  ClassState& c = s->classes[cls];
  if (event == Event::kRefill) {
    c.flush_run = 0;
  } else if (c.flush_run < kShedAfter) {
    ++c.flush_run;
  } else if (c.limit != 0) {
    // A shed: neither an event of the clock nor heat (the class is not asked
    // for), and at its floor no work beyond the flush itself.
    if (c.limit > kFloors.blocks[cls]) {
      const uint32_t half = c.limit / 2;
      Lower(s, cls, half > kFloors.blocks[cls] ? half : kFloors.blocks[cls]);
      Count(Counter::k_ace_sheds);
    }
    return Decision{c.limit, kMaxLimit};
  }
  if (!s->configured) {
    const uint64_t kb = config::GetOptions().ace_budget_kb;
    Configure(s, kb < (kMaxBudget >> 10) ? kb << 10 : kMaxBudget);
  }
  const uint32_t now = ++s->clock;
  c.last_event = now;
  if (c.heat < UINT16_MAX) ++c.heat;
  if (c.limit == 0) {
    Activate(s, cls);
  } else {
    Grow(s, cls);
  }
  if (now - s->window_start >= WindowOf(*s)) Decay(s);
  return Decision{c.limit, BatchFor(c.limit)};
}

int TakeTrim(State* s, int first, int count) {
  for (int word = 0; word < 2; ++word) {
    for (uint64_t bits = s->trims[word]; bits != 0; bits &= bits - 1) {
      const int cls = word * 64 + __builtin_ctzll(bits);
      if (cls < first || cls >= first + count) continue;
      s->trims[word] &= ~(uint64_t{1} << (cls % 64));
      return cls;
    }
  }
  return -1;
}

uint32_t PeakLimit(int cls) { return g_peak[cls].load(std::memory_order_relaxed); }

}  // namespace hakmem::ace
