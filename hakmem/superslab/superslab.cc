#include "hakmem/superslab/superslab.h"

#include <errno.h>

#include <cstring>
#include <initializer_list>

#include "hakmem/config/build_config.h"
#include "hakmem/config/check.h"
#include "hakmem/config/options.h"
#include "hakmem/platform/intrusive_list.h"
#include "hakmem/platform/platform.h"
#include "hakmem/platform/spin_lock.h"
#include "hakmem/stats/stats.h"

namespace hakmem {
namespace {

using stats::Count;
using stats::Counter;

ABSL_CONST_INIT platform::SpinLock g_lock;
// The reservation superslabs of one kind of pages are carved from, [cursor, end).
struct Reservation {
  char* cursor;
  char* end;
  // Whether [cursor, end) is advised MADV_HUGEPAGE: a reservation for huge pages
  // is advised whole when it is made, so carving stays free of syscalls.
  bool huge;
};
ABSL_CONST_INIT Reservation g_reserve[2] ABSL_GUARDED_BY(g_lock) = {};    // by Pages
ABSL_CONST_INIT IntrusiveList<SuperSlab> g_warm ABSL_GUARDED_BY(g_lock);  // empty, committed
ABSL_CONST_INIT IntrusiveList<SuperSlab> g_cold ABSL_GUARDED_BY(g_lock);  // empty, decommitted

ABSL_CONST_INIT std::atomic<uint64_t> g_superslab_bytes{0};
// Every reservation ever made, for ForEachSuperSlab (append-only: published with
// a release store of the count; superslabs are never unmapped).
constexpr size_t kMaxReservations = 4096;  // 256 GiB of superslabs
ABSL_CONST_INIT char* g_reservations[kMaxReservations] = {};
ABSL_CONST_INIT size_t g_reservation_lengths[kMaxReservations] = {};
ABSL_CONST_INIT std::atomic<size_t> g_reservation_count{0};
// mallopt(M_TRIM_THRESHOLD) overrides HAKMEM_RETAIN_MB (UINT64_MAX: not set).
ABSL_CONST_INIT std::atomic<uint64_t> g_retain_bytes_override{UINT64_MAX};
// Earliest time a cached item becomes due for purging (UINT64_MAX: nothing cached).
ABSL_CONST_INIT std::atomic<uint64_t> g_next_purge_ns{UINT64_MAX};

constexpr uint64_t kMillisecond = 1000000;

uint64_t PurgeDelayNs() { return config::GetOptions().purge_delay_ms * kMillisecond; }
uint64_t RetainBytes() {
  const uint64_t set = g_retain_bytes_override.load(std::memory_order_relaxed);
  return set != UINT64_MAX ? set : config::GetOptions().retain_mb << 20;
}

using UnitMask = unsigned __int128;

UnitMask Load(const uint64_t words[2]) {
  return (static_cast<UnitMask>(words[1]) << 64) | words[0];
}
void Store(uint64_t words[2], UnitMask mask) {
  words[0] = static_cast<uint64_t>(mask);
  words[1] = static_cast<uint64_t>(mask >> 64);
}
UnitMask RunMask(size_t first, size_t units) {
  const UnitMask ones = units >= 128 ? ~UnitMask{0} : ((UnitMask{1} << units) - 1);
  return ones << first;
}

// Bit i set iff units i .. i + units - 1 are all set in `mask`: the mask and-ed
// with itself shifted, doubling the run length each step.
UnitMask RunStarts(UnitMask mask, size_t units) {
  UnitMask starts = mask;
  size_t length = 1;
  while (length * 2 <= units) {
    starts &= starts >> length;
    length *= 2;
  }
  if (length < units) starts &= starts >> (units - length);
  return starts;
}

size_t CountTrailingZeros(UnitMask mask) {  // mask != 0
  const auto low = static_cast<uint64_t>(mask);
  return low != 0 ? static_cast<size_t>(__builtin_ctzll(low))
                  : 64 + static_cast<size_t>(__builtin_ctzll(static_cast<uint64_t>(mask >> 64)));
}

size_t CountLeadingZeros(UnitMask mask) {  // mask != 0
  const auto high = static_cast<uint64_t>(mask >> 64);
  return high != 0 ? static_cast<size_t>(__builtin_clzll(high))
                   : 64 + static_cast<size_t>(__builtin_clzll(static_cast<uint64_t>(mask)));
}

// The longest run of set bits in `mask`, one step per run.
size_t LongestRun(UnitMask mask) {
  size_t longest = 0;
  while (mask != 0) {
    mask >>= CountTrailingZeros(mask);
    const UnitMask clear = ~mask;
    const size_t length = clear == 0 ? kUnitsPerSuperSlab : CountTrailingZeros(clear);
    if (length > longest) longest = length;
    if (length >= kUnitsPerSuperSlab) break;
    mask >>= length;
  }
  return longest;
}

// The length of the run of set bits of `mask` that holds bits [first, first +
// units) (all set).
size_t RunAround(UnitMask mask, size_t first, size_t units) {
  const size_t end = first + units;
  size_t above = 0;
  if (end < kUnitsPerSuperSlab) {
    // The bits above the run, shifted down: the first clear one ends it (there is
    // one: the shift brings zeros in at the top).
    above = CountTrailingZeros(~(mask >> end));
  }
  size_t below = 0;
  if (first != 0) {
    // The bits below the run, shifted to the top: the first clear one from the top
    // ends it.
    const UnitMask low = ~(mask << (kUnitsPerSuperSlab - first));
    below = low == 0 ? first : CountLeadingZeros(low);
  }
  return below + units + above;
}

// Sets the run bounds to the exact longest runs (a fresh header, a decay tick).
void CountLongestRuns(SuperSlab* ss) {
  const UnitMask free_units = Load(ss->free_units);
  ss->longest_free_run = static_cast<uint8_t>(LongestRun(free_units));
  ss->longest_backed_run = static_cast<uint8_t>(LongestRun(free_units & Load(ss->dirty_units)));
}
static_assert(kUnitsPerSuperSlab <= 255, "run lengths fit a byte");

// The first time part of a huge-page superslab goes back to the OS, the whole
// superslab is advised MADV_NOHUGEPAGE, and stays in 4 KiB pages from then on:
// khugepaged (by default it collapses a 2 MiB range holding a single resident
// page) would otherwise fault what decay gave back in again as one huge page.
// One madvise per superslab, on the decay path. (Owner or g_lock holder only.)
void LeaveHugePages(SuperSlab* ss) {
  if (!ss->huge_pages) return;
  if (platform::AdviseNoHugePages(ss, kSuperSlabSize)) ss->huge_pages = false;
}

void DecommitLocked(SuperSlab* ss) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  LeaveHugePages(ss);
  // Units are marked clean (reading as zero, so calloc skips its memset) only
  // when the OS really dropped them.
  // Units 1..127 (an empty superslab's live map is all clear).
  if (!platform::Decommit(reinterpret_cast<char*>(ss) + kUnitSize, kSuperSlabSize - kUnitSize))
    return;
  Store(ss->dirty_units, 1);  // only the header unit stays touched
  ss->longest_backed_run = 0;
  ss->decommitted = true;
  Count(Counter::k_superslabs_purged);
  if constexpr (config::kDebugLog) {
    platform::DiagLine()
        .Str("hakmem: purged superslab ")
        .Hex(reinterpret_cast<uintptr_t>(ss))
        .Write();
  }
}

// Keeps the committed empty memory under HAKMEM_RETAIN_MB: oldest huge mappings
// go first, then the oldest warm superslabs are decommitted.
void EnforceRetainCapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  const uint64_t cap = RetainBytes();
  while (CachedHugeBytes() + g_warm.size() * kSuperSlabSize > cap && ReleaseOldestCachedHuge()) {
  }
  while (g_warm.tail() != nullptr && g_warm.size() * kSuperSlabSize > cap) {
    SuperSlab* ss = g_warm.tail();
    g_warm.Remove(ss);
    DecommitLocked(ss);
    g_cold.PushFront(ss);
  }
}

void UpdateNextPurgeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  uint64_t oldest = UINT64_MAX;
  if (g_warm.tail() != nullptr) oldest = g_warm.tail()->cached_at_ns;
  const uint64_t oldest_huge = OldestCachedHugeNs();
  if (oldest_huge < oldest) oldest = oldest_huge;
  g_next_purge_ns.store(oldest == UINT64_MAX ? UINT64_MAX : oldest + PurgeDelayNs(),
                        std::memory_order_relaxed);
  if (oldest != UINT64_MAX) g_release_wakeup.Wake();
}

// Points units [first, first + count) at slabs[slab], as units of no size
// class's slab (MapClassUnits makes them a class's).
void MapUnits(SuperSlab* ss, size_t first, size_t count, size_t slab) {
  const auto offset = static_cast<uint16_t>(reinterpret_cast<char*>(&ss->slabs[slab]) -
                                            reinterpret_cast<char*>(ss));
  for (size_t u = first; u < first + count; ++u) {
    UnitEntryAt(ss, u) = UnitEntry{/*phase=*/0, kNoListOffset, offset};
  }
}

void InitFreshHeader(SuperSlab* ss) {
  // Fresh reservation memory reads as zero: only non-zero fields are written.
  ss->magic = kSuperSlabMagic;
  UnitMask reserved = 1;  // the header
  if constexpr (kLiveMap) reserved |= ((UnitMask{1} << kLiveMapUnits) - 1) << kLiveMapUnit;
  Store(ss->free_units, ~reserved);
  Store(ss->dirty_units, 1);
  Store(ss->young_units, 0);
  CountLongestRuns(ss);
  for (SlabMeta& slab : ss->slabs) slab.cls = kNoClass;
  MapUnits(ss, 0, kUnitsPerSuperSlab, 0);  // every unit free: slabs[0], never a slab
  // The maps of the other colours are never read (a pointer into this superslab
  // picks this one's); they too say "no class", in case one ever is.
  for (UnitEntry& entry : ss->unit_map) entry.list_offset = kNoListOffset;
}

bool PurgeCachesLocked(bool force, uint64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock);

Reservation& ReservationFor(Pages pages) { return g_reserve[static_cast<int>(pages)]; }

// Guard builds: makes the guard chunk after each superslab slot of the
// reservation [r, r + length) inaccessible, now rather than when each is
// carved, so carving stays free of syscalls. Returns the length of the
// reservation's guarded prefix: the OS may refuse a split of the mapping
// (vm.max_map_count), and a superslab is never handed out unguarded.
size_t GuardSuperSlabs(char* r, size_t length) {
  size_t guarded = 0;
  while (guarded < length &&
         platform::Protect(r + guarded + kSuperSlabSize, kSuperSlabSize, false)) {
    guarded += kSuperSlabStride;
  }
  return guarded;
}

// A new reservation for superslabs in `pages`: 64 MiB, or when the OS refuses (an
// address space limit, a fragmented address space) the cached huge mappings are
// given back and ever smaller ones are tried, down to one superslab, before ENOMEM.
bool NewReservationLocked(Pages pages) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  for (int round = 0; round < 2; ++round) {
    for (size_t length = kReservationSize; length >= kSuperSlabStride; length /= 2) {
      char* r = static_cast<char*>(platform::Reserve(length, kSuperSlabSize));
      if (r == nullptr) continue;
      if (kGuardChunks) {  // (not constexpr: clang warns of an unused function)
        const size_t guarded = GuardSuperSlabs(r, length);
        if (guarded != length) platform::Release(r + guarded, length - guarded);
        if (guarded == 0) continue;
        length = guarded;
      }
      Count(Counter::k_reservations);
      const size_t n = g_reservation_count.load(std::memory_order_relaxed);
      if (n < kMaxReservations) {
        g_reservations[n] = r;
        g_reservation_lengths[n] = length;
        g_reservation_count.store(n + 1, std::memory_order_release);
      }
      const bool huge = pages == Pages::kHuge && platform::AdviseHugePages(r, length);
      ReservationFor(pages) = Reservation{r, r + length, huge};
      return true;
    }
    if (round == 0 && !PurgeCachesLocked(/*force=*/true, platform::NowNanos())) break;
  }
  errno = ENOMEM;
  return false;
}

// When the OS refuses a new mapping (an address space limit), the part of a
// superslab reservation not carved yet is address space like any other: a huge
// mapping takes `len` bytes of one from its cursor (superslab-aligned; the small
// pages' one first, whose pages are not advised), and the slack up to the next
// superslab goes back to the OS at once.
char* TakeFromReservation(size_t len) {
  platform::SpinLockHolder hold(&g_lock);
  // Whole strides, so the cursor stays at a superslab slot.
  const size_t whole = platform::RoundUp(len, kSuperSlabStride);
  for (Pages pages : {Pages::kSmall, Pages::kHuge}) {
    Reservation& r = ReservationFor(pages);
    if (static_cast<size_t>(r.end - r.cursor) < whole) continue;
    char* base = r.cursor;
    // The block's own guard page (kHugeGuardSize) replaces the guard chunks.
    if (kGuardChunks && !platform::Protect(base, whole, /*accessible=*/true)) return nullptr;
    r.cursor += whole;
    if (whole != len) platform::Release(base + len, whole - len);
    return base;
  }
  return nullptr;
}

}  // namespace

SuperSlab* AcquireSuperSlab(void* owner, Occupancy occupancy, Pages pages) {
  // One reservation will do without huge pages.
  if (pages == Pages::kHuge && !config::HugePagesEnabled()) pages = Pages::kSmall;
  SuperSlab* ss = nullptr;
  bool fresh = false;
  bool huge = false;  // a fresh superslab from the advised part of a reservation
  {
    platform::SpinLockHolder hold(&g_lock);
    if (g_warm.head() != nullptr) {
      ss = g_warm.head();
      g_warm.Remove(ss);
    } else if (g_cold.head() != nullptr) {
      // Decommitted: it left huge pages then (LeaveHugePages), and its header page
      // stays resident, so it faults in 4 KiB pages whatever `pages` asks.
      ss = g_cold.head();
      g_cold.Remove(ss);
      ss->decommitted = false;
    }
    if (ss == nullptr) {
      Reservation& r = ReservationFor(pages);
      if (r.cursor == r.end && !NewReservationLocked(pages)) return nullptr;  // errno is ENOMEM
      ss = reinterpret_cast<SuperSlab*>(r.cursor);
      huge = r.huge;
      r.cursor += kSuperSlabStride;
      fresh = true;
    }
    if (!fresh) {
      Count(Counter::k_superslabs_reused);
      UpdateNextPurgeLocked();
    }
  }
  if (fresh) {
    // As the process grows by a superslab, the huge mappings it has held idle
    // for an eighth of the purge delay go back (before the superslab is touched,
    // and outside the lock): a cached mapping serves only a huge block of about
    // its size. (Those cached a moment ago stay: a program that frees and maps
    // huge blocks in a cycle, realloc_grow, reuses them; giving them back ran it
    // at 0.65x instead of 1.2x.)
    ReleaseCachedHuge(platform::NowNanos(), PurgeDelayNs() / 8, /*force=*/false);
    ss->huge_pages = huge;  // the first touch: advised, it faults in the whole 2 MiB
    InitFreshHeader(ss);
    // Every unit of a huge page is resident from that first touch: dirty, so decay
    // gives back the free ones (they read as zero still, but calloc cannot know).
    if (huge) {
      Store(ss->dirty_units, ~UnitMask{0});
      ss->longest_backed_run = ss->longest_free_run;
    }
    if (!registry::Register(ss, kSuperSlabSize, ss)) {
      // No memory for a registry leaf. The superslab goes back to the
      // reservation when it is the last one carved (the usual case); its header
      // is written again, identically, when it is carved next time.
      platform::SpinLockHolder hold(&g_lock);
      Reservation& r = ReservationFor(pages);
      if (r.cursor == reinterpret_cast<char*>(ss) + kSuperSlabStride) r.cursor -= kSuperSlabStride;
      errno = ENOMEM;
      return nullptr;
    }
    g_superslab_bytes.fetch_add(kSuperSlabSize, std::memory_order_relaxed);
    Count(Counter::k_superslabs_mapped);
    if constexpr (config::kDebugLog) {
      platform::DiagLine()
          .Str("hakmem: new superslab ")
          .Hex(reinterpret_cast<uintptr_t>(ss))
          .Write();
    }
  }
  ss->next = ss->prev = nullptr;
  ss->occupancy = occupancy;
  ss->owner.store(owner, std::memory_order_release);
  return ss;
}

void ReleaseSuperSlab(SuperSlab* ss) {
  HAKMEM_DCHECK(ss->used_units == 0 && ss->magic == kSuperSlabMagic);
  ss->owner.store(nullptr, std::memory_order_release);
  const uint64_t now = platform::NowNanos();
  platform::SpinLockHolder hold(&g_lock);
  ss->cached_at_ns = now;
  if (ss->decommitted) {
    g_cold.PushFront(ss);
  } else {
    g_warm.PushFront(ss);
  }
  Count(Counter::k_superslabs_cached);
  EnforceRetainCapLocked();
  UpdateNextPurgeLocked();
}

SlabMeta* AllocRun(SuperSlab* ss, size_t units, size_t align_units, bool* fresh, RunUnits which) {
  const UnitMask free_units = Load(ss->free_units);
  const UnitMask dirty = Load(ss->dirty_units);
  UnitMask aligned = ~UnitMask{0};
  if (align_units > 1) {
    aligned = 0;
    for (size_t u = align_units; u < kUnitsPerSuperSlab; u += align_units)
      aligned |= UnitMask{1} << u;
  }
  // Memory already backed first: a run of dirty free units costs no page fault
  // and leaves the clean ones (never touched, or decommitted) unbacked.
  UnitMask starts = RunStarts(free_units & dirty, units) & aligned;
  // A search that finds no run where the bound let it look makes the bound exact
  // (unaligned: an aligned search may fail where a run of that length exists).
  if (starts == 0 && align_units <= 1 && ss->longest_backed_run >= units)
    ss->longest_backed_run = static_cast<uint8_t>(LongestRun(free_units & dirty));
  if (starts == 0 && which == RunUnits::kAny) {
    starts = RunStarts(free_units, units) & aligned;
    if (starts == 0 && align_units <= 1 && ss->longest_free_run >= units)
      ss->longest_free_run = static_cast<uint8_t>(LongestRun(free_units));
  }
  if (starts == 0) return nullptr;
  const size_t first = CountTrailingZeros(starts);
  const UnitMask mask = RunMask(first, units);
  HAKMEM_DCHECK(first != 0 && (free_units & mask) == mask);
  Store(ss->free_units, free_units & ~mask);
  *fresh = (dirty & mask) == 0;
  Store(ss->dirty_units, dirty | mask);
  ss->used_units += static_cast<uint32_t>(units);
  MapUnits(ss, first, units, first);
  SlabMeta* slab = &ss->slabs[first];
  slab->start = reinterpret_cast<char*>(ss) + first * kUnitSize;
  slab->units = static_cast<uint16_t>(units);
  if constexpr (config::kPrefault) {
    if (*fresh) platform::Populate(slab->start, units * kUnitSize);
  }
  return slab;
}

size_t SlabIndexOfUnit(const SuperSlab* ss, size_t unit) {
  return static_cast<size_t>((reinterpret_cast<const char*>(ss) +
                              UnitEntryAt(ss, unit).slab_offset -
                              reinterpret_cast<const char*>(ss->slabs)) /
                             static_cast<ptrdiff_t>(sizeof(SlabMeta)));
}

bool GrowRun(SuperSlab* ss, SlabMeta* run, size_t units, bool* fresh) {
  const size_t first = static_cast<size_t>(run - ss->slabs);
  if (units <= run->units || first + units > kUnitsPerSuperSlab) return false;
  const size_t added = units - run->units;
  const UnitMask mask = RunMask(first + run->units, added);
  const UnitMask free_units = Load(ss->free_units);
  if ((free_units & mask) != mask) return false;
  Store(ss->free_units, free_units & ~mask);
  const UnitMask dirty = Load(ss->dirty_units);
  *fresh = (dirty & mask) == 0;
  Store(ss->dirty_units, dirty | mask);
  ss->used_units += static_cast<uint32_t>(added);
  MapUnits(ss, first + run->units, added, first);
  run->units = static_cast<uint16_t>(units);
  return true;
}

void FreeRun(SuperSlab* ss, SlabMeta* slab) {
  const size_t first = static_cast<size_t>(slab - ss->slabs);
  HAKMEM_DCHECK(first != 0 && slab->units != 0 && ss->used_units >= slab->units);
  HAKMEM_DCHECK((Load(ss->free_units) & RunMask(first, slab->units)) == 0);  // its units are in use
  const UnitMask mask = RunMask(first, slab->units);
  const UnitMask free_units = Load(ss->free_units) | mask;
  Store(ss->free_units, free_units);
  Store(ss->young_units, Load(ss->young_units) | mask);
  // The runs grow only around the freed units.
  const size_t free_run = RunAround(free_units, first, slab->units);
  if (free_run > ss->longest_free_run) ss->longest_free_run = static_cast<uint8_t>(free_run);
  const UnitMask backed = free_units & Load(ss->dirty_units);
  if ((backed & mask) == mask) {
    const size_t backed_run = RunAround(backed, first, slab->units);
    if (backed_run > ss->longest_backed_run)
      ss->longest_backed_run = static_cast<uint8_t>(backed_run);
  } else if ((backed & mask) != 0) {  // partly backed: not a run of AllocRun's making
    ss->longest_backed_run = static_cast<uint8_t>(LongestRun(backed));
  }
  ss->used_units -= slab->units;
  MapUnits(ss, first, slab->units, 0);
  *slab = SlabMeta{};
  slab->cls = kNoClass;
  slab->state = SlabState::kFree;
}

bool RunIsDirty(const SuperSlab* ss, const SlabMeta* slab) {
  const size_t first = static_cast<size_t>(slab - ss->slabs);
  return (Load(ss->dirty_units) & RunMask(first, slab->units)) != 0;
}

void DecommitRun(SuperSlab* ss, const SlabMeta* slab) {
  const size_t first = static_cast<size_t>(slab - ss->slabs);
  LeaveHugePages(ss);
  if (platform::Decommit(slab->start, size_t{slab->units} * kUnitSize)) {
    Store(ss->dirty_units, Load(ss->dirty_units) & ~RunMask(first, slab->units));
    Count(Counter::k_units_purged, slab->units);
  }
}

bool HasDirtyFreeUnits(const SuperSlab* ss) {
  return (Load(ss->free_units) & Load(ss->dirty_units)) != 0;
}

bool DecayFreeUnits(SuperSlab* ss, bool all) {
  const UnitMask young = all ? 0 : Load(ss->young_units);
  Store(ss->young_units, 0);
  const UnitMask free_dirty = Load(ss->free_units) & Load(ss->dirty_units) & ~young;
  if (free_dirty == 0) return HasDirtyFreeUnits(ss);
  LeaveHugePages(ss);
  // Decommit each maximal run of free dirty units with one madvise.
  for (size_t unit = 1; unit < kUnitsPerSuperSlab;) {
    if (((free_dirty >> unit) & 1) == 0) {
      ++unit;
      continue;
    }
    size_t end = unit;
    while (end < kUnitsPerSuperSlab && ((free_dirty >> end) & 1) != 0) ++end;
    if (platform::Decommit(reinterpret_cast<char*>(ss) + unit * kUnitSize,
                           (end - unit) * kUnitSize)) {
      // Clean (reads as zero) only when the OS really dropped the pages.
      Store(ss->dirty_units, Load(ss->dirty_units) & ~(RunMask(unit, end - unit)));
      Count(Counter::k_units_purged, end - unit);
    }
    unit = end;
  }
  CountLongestRuns(ss);
  return HasDirtyFreeUnits(ss);
}

void InitSlabBlocks(SlabMeta* slab, uint32_t block_size) {
  slab->block_size = block_size;
  slab->capacity = static_cast<uint32_t>(slab->units * kUnitSize / block_size);
  slab->end = slab->start + slab->units * kUnitSize;
  slab->first_block = slab->end - size_t{slab->capacity} * block_size;
  slab->bump = slab->first_block;
  slab->free_list = nullptr;
  slab->used = 0;
  slab->div_magic = DivMagic(block_size);
  slab->next = slab->prev = nullptr;
}

void InitClassSlab(SuperSlab* ss, SlabMeta* slab, int cls) {
  InitSlabBlocks(slab, kSizeClasses[cls].size);
  slab->cls = static_cast<uint8_t>(cls);
  slab->list_offset = static_cast<uint16_t>(cls * kClassListStride);
  const size_t first = static_cast<size_t>(slab - ss->slabs);
  HAKMEM_DCHECK(cls >= 0 && cls < kNumClasses && slab->units <= kUnitsPerSuperSlab / 4);
  // (The same phase for every unit of the slab: GridOffset adds it to the whole
  // low half of the pointer.)
  const auto phase =
      static_cast<uint32_t>(slab->block_size - reinterpret_cast<uintptr_t>(slab->first_block));
  for (size_t u = 0; u < slab->units; ++u) {
    UnitEntry& entry = UnitEntryAt(ss, first + u);
    entry.phase = phase;
    entry.list_offset = slab->list_offset;
  }
}

bool PurgeCaches(bool force) {
  const uint64_t now = platform::NowNanos();
  platform::SpinLockHolder hold(&g_lock);
  return PurgeCachesLocked(force, now);
}

namespace {

bool PurgeCachesLocked(bool force, uint64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  const uint64_t delay = PurgeDelayNs();
  bool purged = ReleaseCachedHuge(now, delay, force);
  while (g_warm.tail() != nullptr && (force || now - g_warm.tail()->cached_at_ns >= delay)) {
    SuperSlab* ss = g_warm.tail();
    g_warm.Remove(ss);
    DecommitLocked(ss);
    g_cold.PushFront(ss);
    purged = true;
  }
  UpdateNextPurgeLocked();
  return purged;
}

}  // namespace

uint64_t PurgeDelayNanos() { return PurgeDelayNs(); }

ABSL_CONST_INIT platform::Wakeup g_release_wakeup;

bool CachesHoldPurgeable() { return g_next_purge_ns.load(std::memory_order_relaxed) != UINT64_MAX; }

void MaybePurge() {
  const uint64_t due = g_next_purge_ns.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_TRUE(due == UINT64_MAX)) return;
  if (platform::NowNanos() >= due) PurgeCaches(false);
}

void* HugeAlloc(size_t size, size_t alignment, bool* zeroed) {
  if (size > kMaxHugeSize || alignment > kMaxAlignment) {
    errno = ENOMEM;
    return nullptr;
  }
  if (size == 0) size = 1;  // a minimal block, never a pointer one past the mapping
  const HugeLayout layout = LayoutOfHuge(size, alignment);
  if (layout.offset == kHugeHeaderSize) {
    if (void* user = ReuseCachedHuge(size, layout)) {
      *zeroed = false;
      return user;
    }
  }
  void* user = MapHuge(size, alignment, layout, nullptr);
  if (user == nullptr) {
    PurgeCaches(true);  // give back what is cached and try once more
    user = MapHuge(size, alignment, layout, nullptr);
  }
  if (user == nullptr && alignment <= kSuperSlabSize) {
    if (char* base = TakeFromReservation(layout.length))
      user = MapHuge(size, alignment, layout, base);
  }
  if (user == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  *zeroed = true;
  return user;
}

void HugeFree(HugeHeader* h) {
  CacheHuge(h, platform::NowNanos());
  platform::SpinLockHolder hold(&g_lock);
  EnforceRetainCapLocked();
  UpdateNextPurgeLocked();
}

SuperSlabStats GetSuperSlabStats() {
  SuperSlabStats s;
  s.superslab_bytes = g_superslab_bytes.load(std::memory_order_relaxed);
  platform::SpinLockHolder hold(&g_lock);
  s.cached_superslabs = g_warm.size() + g_cold.size();
  s.warm_superslabs = g_warm.size();
  return s;
}

void SetRetainBytes(uint64_t bytes) {
  g_retain_bytes_override.store(bytes, std::memory_order_relaxed);
  platform::SpinLockHolder hold(&g_lock);
  EnforceRetainCapLocked();
  UpdateNextPurgeLocked();
}

void ForEachSuperSlab(void (*fn)(const SuperSlab* ss, void* arg), void* arg) {
  const size_t n = g_reservation_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    char* base = g_reservations[i];
    char* limit = base + g_reservation_lengths[i];
    for (char* p = base; p < limit; p += kSuperSlabSize) {
      // Only a chunk the registry maps to itself can hold a superslab header: the
      // chunks not carved yet are not registered (nor read), and under address
      // space pressure a huge mapping may have taken part of a reservation
      // (TakeFromReservation), and may be gone since.
      if (registry::Lookup(p) != p) continue;
      const SuperSlab* ss = reinterpret_cast<const SuperSlab*>(p);
      // A superslab whose header is not written yet (carved a moment ago) is skipped.
      if (__atomic_load_n(&ss->magic, __ATOMIC_ACQUIRE) == kSuperSlabMagic) fn(ss, arg);
    }
  }
}

// Fork handlers hold the lock across fork(), from Prepare to the After
// handlers: beyond what -Wthread-safety follows.
// The huge box's lock is taken after this one, as everywhere.
void PrepareForkSuperSlabs() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_lock.Lock();
  PrepareForkHuge();
}
void ParentAfterForkSuperSlabs() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  ParentAfterForkHuge();
  g_lock.Unlock();
}
void ChildAfterForkSuperSlabs() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  ChildAfterForkHuge();
  g_lock.ResetAfterFork();
}

}  // namespace hakmem
