// superslab: hakmem's units of memory and everything that maps them.
//
// Owns:
//  - SuperSlab: a 2 MiB naturally aligned region of 128 units of 16 KiB. Unit 0 is
//    the header: owner heap, unit bitmaps, the unit maps (UnitEntry) and one SlabMeta
//    per possible slab (hardened builds add a live-block map in units 1..8, and a
//    guard chunk after each superslab). Slabs (blocks of one class) and large
//    runs (one block) are runs of units. Superslabs are carved from 64 MiB
//    reservations (one mmap each), registered in the registry once, and never
//    unmapped: an empty one goes to the cache, is reused warm, and is decommitted
//    (MADV_DONTNEED on units 1..127) after HAKMEM_PURGE_DELAY_MS or beyond
//    HAKMEM_RETAIN_MB.
//  - The policy of the empty memory kept mapped: cached superslabs and cached
//    huge mappings (hakmem/huge, which maps and caches them) go back to the OS
//    after HAKMEM_PURGE_DELAY_MS or beyond HAKMEM_RETAIN_MB (huge first), cached
//    huge mappings idle for an eighth of the delay also as a new superslab is
//    carved, and HugeAlloc/HugeFree, the huge lane's entry points, apply it: a refused
//    mapping gives back the caches, then takes address space from a reservation.
// Thread-safety: a superslab's units, slabs and SlabMetas are touched only by the
// thread of its owner heap; `owner` is read by any thread (relaxed). The cache,
// the reservations are under one spin lock, off the fast path, taken before the
// huge box's (never after it).
// Called by: heap (superslabs, runs), free_dispatch and core (huge, lookups).
#ifndef HAKMEM_SUPERSLAB_SUPERSLAB_H_
#define HAKMEM_SUPERSLAB_SUPERSLAB_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/config/build_config.h"
#include "hakmem/huge/huge.h"
#include "hakmem/registry/registry.h"
#include "hakmem/size_class/size_class.h"

namespace hakmem {

inline constexpr uint32_t kSuperSlabMagic = 0x534c4142;  // "SLAB"
inline constexpr size_t kReservationSize = size_t{64} << 20;

// How a superslab's blocks are touched, which decides its pages (HAKMEM_THP).
// Programs write most of a block of a few KiB or less, so the superslabs of those
// classes are dense: once a heap is big, they get 2 MiB pages (one fault per
// 2 MiB). Bigger blocks are often written in part (a 32 KiB buffer holding 3 KiB),
// and 2 MiB pages would back what 4 KiB pages leave untouched: their superslabs
// are sparse, in 4 KiB pages. A heap keeps the two apart in the memory it has not
// touched yet, so that neither kind of page is wasted on the other's blocks; its
// backed free units take either kind (they cost the same whatever they hold).
enum class Occupancy : uint8_t { kDense, kSparse };
inline constexpr size_t kDenseBlockMax = size_t{8} << 10;  // sparse from 8 KiB + 1
inline constexpr Occupancy OccupancyOfBlock(size_t block_size) {
  return block_size <= kDenseBlockMax ? Occupancy::kDense : Occupancy::kSparse;
}
// A heap's first dense superslabs stay in 4 KiB pages (its sparse ones always do):
// a small program or thread grows its RSS by what it touches, not by 2 MiB steps.
inline constexpr uint32_t kSmallPageSuperSlabs = 4;  // 8 MiB

// The pages a superslab is carved with: each kind has its own reservation, the
// huge one advised MADV_HUGEPAGE whole when it is made (when HugePagesEnabled()).
enum class Pages : uint8_t { kSmall, kHuge };

// Hardened builds follow every superslab with a guard chunk: the 2 MiB after it
// in its reservation are PROT_NONE, so an overflow off the superslab's last block
// faults before it reaches the next superslab's header (or whatever follows).
// Whole chunks, not a page: a superslab keeps its 2 MiB pages. Each costs 2 MiB
// of address space (not memory) and one more entry of the process's map count
// (vm.max_map_count: 65530 by default, about 64 GiB of superslabs).
inline constexpr bool kGuardChunks = config::kHardened;
// From one superslab of a reservation to the next.
inline constexpr size_t kSuperSlabStride = kGuardChunks ? 2 * kSuperSlabSize : kSuperSlabSize;

// Hardened builds also keep a live-block map in units 1..8: one byte per 16-byte
// granule of the superslab, set while the block that starts there is handed out.
// The owner sets a byte when it hands the block out; whichever thread frees the
// block clears it (a remote free too: the program's hand-over of the block
// orders the two), so a free of a block whose byte is clear is a double free,
// whatever a use-after-free write did to the block's words. Bytes, not bits:
// blocks share no word, so consecutive mallocs and frees make no chain of
// read-modify-writes, and threads freeing neighbouring blocks write apart. It
// costs 1/16 of the touched superslab memory, and 8 of its 128 units.
inline constexpr bool kLiveMap = config::kHardened;
inline constexpr size_t kLiveMapUnit = 1;
inline constexpr size_t kLiveMapUnits = kSuperSlabSize / 16 / kUnitSize;  // 8
// The units a superslab can carve: [kFirstCarvableUnit, 128), all but the
// header and the live map.
inline constexpr size_t kFirstCarvableUnit = kLiveMap ? kLiveMapUnit + kLiveMapUnits : 1;
inline constexpr size_t kCarvableUnits = kUnitsPerSuperSlab - kFirstCarvableUnit;
static_assert(kHugeThreshold <= kCarvableUnits * kUnitSize, "a large run fits a superslab");

// The byte of the live map for the block at p.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uint8_t* LiveByteOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t offset = a & (kSuperSlabSize - 1);
  return reinterpret_cast<uint8_t*>((a - offset) + kLiveMapUnit * kUnitSize + (offset >> 4));
}
// Block `p` is handed out (owner thread; nothing without kLiveMap).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void MarkLive(const void* p) {
  if constexpr (kLiveMap) *LiveByteOf(p) = 1;
}
// Block `p` is freed (by any thread): clears its byte and returns whether it
// was set; false is a double free (always true without kLiveMap).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool TakeLive(const void* p) {
  if constexpr (!kLiveMap) return true;
  uint8_t* live = LiveByteOf(p);
  const bool was = *live != 0;
  *live = 0;
  return was;
}

inline constexpr uint8_t kNoClass = 0xFF;     // unit not in a slab
inline constexpr uint8_t kLargeClass = 0xFE;  // a large run (one block)

enum class SlabState : uint8_t { kFree, kCurrent, kPartial, kFull, kLarge };

// The bytes of one class's list head in a thread cache (thread_cache's FreeList
// asserts it): SlabMeta::list_offset is a class times this.
inline constexpr uint32_t kClassListStride = 16;

// The fast paths name a class by its list offset: the byte offset of its list
// in a thread cache's lists (SlabMeta::list_offset), which is also the offset of
// its counts in the thread's stats::FastCounters.
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr uint32_t ListOffset(uint32_t cls) {
  return cls * kClassListStride;
}

// The list offset of every unit outside a size class's slab (free units, the
// header, large runs): past the classes' lists. Thread caches keep a DivMagic of
// 0 there, so the free fast path's block-start test fails for such a unit
// whatever the pointer.
inline constexpr uint16_t kNoListOffset = kNumClasses * kClassListStride;
static_assert(kNumClasses * kClassListStride <= UINT16_MAX);

// ceil(2^40 / size) << 24: the multiplier of the one-multiply divisibility test
// (IsMultiple).
constexpr uint64_t DivMagic(uint32_t size) {
  return (((uint64_t{1} << 40) + size - 1) / size) << 24;
}

// Whether `offset` (below 2^21) is a multiple of the size whose DivMagic is
// `div_magic` (sizes up to 2^17; false for every offset when div_magic is 0).
// Divisibility with one multiply (Lemire, Kaser, Kurz 2019): offset % size == 0
// exactly when (offset * ceil(2^40 / size)) mod 2^40 < ceil(2^40 / size). Both
// sides shifted left by 24 (the magic is stored shifted) compare the same low 40
// bits with no mask: one multiply and one compare.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool IsMultiple(uint64_t offset, uint64_t div_magic) {
  return offset * div_magic < div_magic;
}

// One unit's entry in its superslab's unit map: 8 bytes, 8 units to a cache
// line. Besides the unit's SlabMeta, it holds all the free fast path needs to
// test a pointer into the unit (with the class's DivMagic, which thread caches
// keep beside their lists), so a free reads this one line of the header, not
// also the SlabMeta's (a second line, and often a third: SlabMetas straddle
// lines). The owner thread writes it (MapUnits, InitClassSlab).
struct UnitEntry {
  // A size class's slab: the block size - the slab's first block, modulo 2^32,
  // so that the low 32 bits of p plus the phase, modulo 2^32, are p's offset from
  // the block before the first, never negative (GridOffset). 0 elsewhere.
  uint32_t phase;
  // A size class's slab: the class's list offset (SlabMeta::list_offset);
  // kNoListOffset elsewhere.
  uint16_t list_offset;
  // The byte offset from the superslab to the SlabMeta of the slab holding the
  // unit (slabs[its first unit]; slabs[0]'s for a free unit). An offset, not an
  // index: SlabOf adds it instead of multiplying by sizeof(SlabMeta).
  uint16_t slab_offset;
};
static_assert(sizeof(UnitEntry) == 8, "eight entries to a cache line");

// Unit maps per superslab header (see SuperSlab::unit_map). A free reads one
// line of its superslab's map; with one map at one offset, the maps of a heap's
// superslabs compete for the same 16 L1 sets (mid_large_mt: 11 superslabs, 176
// lines, 0.43 D1 misses per free).
inline constexpr size_t kUnitMapColors = 4;
static_assert((kUnitMapColors & (kUnitMapColors - 1)) == 0,
              "the free fast path's asm masks the map index: a power of two");

// One slab (or large run), indexed by its first unit. Owner thread only.
struct SlabMeta {
  void* free_list;  // freed blocks of this slab
  char* bump;       // next never-used block
  char* end;        // end of the last block: the end of the slab's units
  char* start;      // the slab's first unit (a large run: its block)
  // The first block: start + the slab's tail (units * 16 KiB mod block size). The
  // tail sits before the first block, not after the last, so every block start
  // in [first_block, end) is a block (IsBlockStart needs no end test).
  char* first_block;
  uint64_t div_magic;  // DivMagic(block_size); 0 for a large run (see IsBlockStart)
  uint32_t block_size;
  uint32_t used;      // blocks out: in use, in a thread cache or in a remote queue
  uint32_t capacity;  // blocks in the slab
  uint16_t units;
  uint8_t cls;  // size class, kLargeClass or kNoClass
  // A size class's slab: cls * kClassListStride, the byte offset of the class's
  // list in a thread cache (its units' entries carry it for the free fast path).
  uint16_t list_offset;
  SlabState state;
  bool fresh;      // its units were untouched when carved: [bump, end) reads as zero
  SlabMeta* next;  // the heap's partial list of this class
  SlabMeta* prev;
};

struct SuperSlab : ChunkHeader {
  uint64_t free_units[2];   // bit set: unit free (the header and live map never are)
  uint64_t dirty_units[2];  // bit set: unit touched since mapped or decommitted
  // Bit set: unit freed since its heap's last decay tick. Such a unit waits one
  // more tick before decay decommits it, so a unit goes back to the OS once it
  // has been free for a whole tick (heap.h: DecayTickNanos), however busy the rest of
  // its superslab is.
  uint64_t young_units[2];
  uint32_t used_units;
  // Bounds on the longest run of free units, and of free backed (dirty) units:
  // no longer run exists. A freed run raises them to the run it joins; taking
  // or decommitting units leaves them; a search that finds no run (AllocRun)
  // lowers them to the exact length, and a decay tick counts them again. So a
  // heap looking for a run skips, with one load (MayFitRun), the superslabs
  // where it cannot fit, instead of searching their masks (fragmentation: 39
  // superslabs searched per new slab).
  uint8_t longest_free_run;
  uint8_t longest_backed_run;
  bool decommitted;
  bool huge_pages;      // advised MADV_HUGEPAGE when carved
  Occupancy occupancy;  // of the blocks the owner carves from it now
  uint64_t cached_at_ns;
  SuperSlab* next;  // in the owner heap's list, or in the cache
  SuperSlab* prev;
  // In the owner heap's list of superslabs with backed free units (heap.h:
  // Heap::backed).
  SuperSlab* backed_next;
  SuperSlab* backed_prev;
  // The unit map: kUnitMapColors maps of kUnitsPerSuperSlab entries, of which a
  // superslab uses the one its address picks (UnitEntryAt), so the maps of
  // consecutive superslabs, all 2 MiB-aligned, sit in different L1 sets.
  UnitEntry unit_map[kUnitMapColors * kUnitsPerSuperSlab];
  SlabMeta slabs[kUnitsPerSuperSlab];  // by first unit; slabs[0] stays kNoClass
};
static_assert(sizeof(SuperSlab) <= kUnitSize, "the header fits unit 0");
// Where the unit map starts in the header, for the free fast path's asm. (The
// header is not standard-layout, deriving from ChunkHeader, but has no virtual
// base: gcc and clang give the offset.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
inline constexpr size_t kUnitMapAt = offsetof(SuperSlab, unit_map);
#pragma GCC diagnostic pop
static_assert(kSuperSlabSize == registry::kChunkSize, "one registry chunk each");

ABSL_ATTRIBUTE_ALWAYS_INLINE inline SuperSlab* SuperSlabOf(const void* p) {
  return reinterpret_cast<SuperSlab*>(reinterpret_cast<uintptr_t>(p) & ~(kSuperSlabSize - 1));
}

// `ss` is SuperSlabOf(p). (The unit is taken from `p` alone: the free fast path
// then needs no copy of `ss` for it.)
ABSL_ATTRIBUTE_ALWAYS_INLINE inline const UnitEntry& UnitEntryOf(const SuperSlab* ss,
                                                                 const void* p) {
  // (The address bits of `p` above the superslab's units pick its map: those of
  // `ss`.)
  return ss->unit_map[(reinterpret_cast<uintptr_t>(p) / kUnitSize) %
                      (kUnitsPerSuperSlab * kUnitMapColors)];
}

// The entry of unit `unit` of `ss`.
inline UnitEntry& UnitEntryAt(SuperSlab* ss, size_t unit) {
  const size_t color = (reinterpret_cast<uintptr_t>(ss) / kSuperSlabSize) % kUnitMapColors;
  return ss->unit_map[color * kUnitsPerSuperSlab + unit];
}
inline const UnitEntry& UnitEntryAt(const SuperSlab* ss, size_t unit) {
  return UnitEntryAt(const_cast<SuperSlab*>(ss), unit);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline SlabMeta* SlabOf(SuperSlab* ss, const void* p) {
  return reinterpret_cast<SlabMeta*>(reinterpret_cast<char*>(ss) + UnitEntryOf(ss, p).slab_offset);
}

// The offset of `p`, a pointer into the unit of `unit`, from the block before
// its slab's first block: a multiple of the block size exactly when `p` is a
// block start (a pointer into the tail before the first block gives a smaller
// offset than the block size, never 0). Below 2^20: a class's slab spans at most
// 32 units (size_class.h) and blocks are at most 2^17 bytes, so arithmetic
// modulo 2^32 gives it exactly (p - first block + block size, with the phase
// holding block size - first block modulo 2^32): one `add` of the entry's phase
// to the pointer's low half.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uint64_t GridOffset(const UnitEntry& unit, const void* p) {
  return static_cast<uint32_t>(static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p)) + unit.phase);
}

// The first unit of the slab holding `unit` (0 for a free unit): tests.
size_t SlabIndexOfUnit(const SuperSlab* ss, size_t unit);

// Whether `p` (an address inside `slab`'s units) is the first byte of one of its
// blocks, not an interior pointer nor the tail before the first block: whether
// its offset from the first block IsMultiple of the block size (the slow paths'
// test; the free fast path's is GridOffset's). The tail (p below first_block by
// d <= size - 16, the tail being a multiple of 16 below the size) fails too:
// 2^40 - d * ceil(2^40 / size) >= ceil(2^40 / size) there for sizes <= 2^17
// (superslab_test checks every class and offset). Past the last block are the
// next slab's units, which the unit map does not lead to this slab. False for
// every pointer into a slab that is not a class's (a large run, free units:
// their div_magic is 0), so a true answer also proves the slab's class is a
// size class.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool IsBlockStart(const SlabMeta* slab, const void* p) {
  const uint64_t offset = static_cast<uint64_t>(static_cast<const char*>(p) - slab->first_block);
  return IsMultiple(offset, slab->div_magic);
}
static_assert(kPoolMax <= (size_t{1} << 17) && kSuperSlabSize <= (size_t{1} << 21),
              "IsBlockStart's one-multiply test needs offsets < 2^21, sizes <= 2^17");

// Takes an empty superslab for `owner` to carve blocks of `occupancy` from, in
// `pages` where it is new: warm from the cache (its pages are resident already),
// then decommitted from the cache (in 4 KiB pages, see LeaveHugePages), then carved
// from the reservation of `pages`.
// nullptr when the OS refuses memory.
SuperSlab* AcquireSuperSlab(void* owner, Occupancy occupancy, Pages pages);

// Gives back an empty superslab (no unit in use) to the cache.
void ReleaseSuperSlab(SuperSlab* ss);

// Which free units a run may take: any (backed ones first), or backed ones only
// (every unit touched since mapped or decommitted: resident already, so taking
// them does not grow the process's RSS).
enum class RunUnits : uint8_t { kAny, kBackedOnly };

// Whether a run of `units` free units (backed ones, with kBackedOnly) may fit in
// `ss`: false means AllocRun would return nullptr; true, that it may (after an
// unaligned search for `units` failed, this says false).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool MayFitRun(const SuperSlab* ss, size_t units,
                                                   RunUnits which) {
  return (which == RunUnits::kBackedOnly ? ss->longest_backed_run : ss->longest_free_run) >= units;
}

// Allocates a run of `units` units whose first unit index is a multiple of
// `align_units`, and returns its SlabMeta with start/units/unit map set (state
// kFree, the caller sets the rest). `*fresh` says whether every unit of the run is
// untouched since mapped or decommitted (reads as zero). nullptr if no room (of
// backed units, with kBackedOnly).
SlabMeta* AllocRun(SuperSlab* ss, size_t units, size_t align_units, bool* fresh,
                   RunUnits which = RunUnits::kAny);

// Returns the units of `slab` to its superslab.
void FreeRun(SuperSlab* ss, SlabMeta* slab);

// Extends `run` to `units` units (more than it has) over the free units right
// after it; false (nothing changed) when they are not all free. `*fresh` says
// whether the added units are untouched (read as zero).
bool GrowRun(SuperSlab* ss, SlabMeta* run, size_t units, bool* fresh);
// Whether any unit of the run `slab` (in use) was touched since it was mapped or
// decommitted.
bool RunIsDirty(const SuperSlab* ss, const SlabMeta* slab);
// Decommits the units of the run `slab` (in use, its contents no longer needed:
// an empty slab heap keeps for its class) and marks them clean. Owner thread.
void DecommitRun(SuperSlab* ss, const SlabMeta* slab);

// One decay tick of an owned superslab (owner thread): its dirty free units that
// were already free at the last tick (`all`: every dirty free unit) are
// decommitted, and the units freed from now on are young until the next tick.
// Returns whether dirty free units are left waiting (so the caller keeps ticking).
bool DecayFreeUnits(SuperSlab* ss, bool all);
// Whether `ss` has free units still backed (dirty).
bool HasDirtyFreeUnits(const SuperSlab* ss);

// Sets up `slab` (just returned by AllocRun) to hold blocks of `block_size`.
void InitSlabBlocks(SlabMeta* slab, uint32_t block_size);

// Sets up `slab` of superslab `ss` (just returned by AllocRun) to hold blocks
// of size class `cls`: InitSlabBlocks, its class and list offset, and its units'
// entries, which get the class's phase and list offset so that the free fast
// path recognises its blocks. (AllocRun and FreeRun leave entries at
// kNoListOffset.)
void InitClassSlab(SuperSlab* ss, SlabMeta* slab, int cls);

// Decommits cached superslabs and unmaps cached huge mappings older than the
// purge delay, or all of them with `force`. Cheap when nothing is due. Returns
// whether anything was given back.
bool PurgeCaches(bool force);
// Called from refill slow paths: purges when the next purge time has passed.
void MaybePurge();
// Whether the shared caches hold anything a purge will give back.
bool CachesHoldPurgeable();
// The background release thread (hakmem/heap) sleeps on it while nothing waits to
// be given back; what the shared caches take wakes it, as a heap's decay clock
// does.
extern platform::Wakeup g_release_wakeup HAKMEM_HIDDEN;
// HAKMEM_PURGE_DELAY_MS in nanoseconds.
uint64_t PurgeDelayNanos();

// ---- the huge lane (mappings: hakmem/huge) ----

// Maps (or takes from the huge cache) a huge block of `size` bytes aligned to
// `alignment` (a power of two). `*zeroed` tells whether it reads as zero.
// nullptr with errno ENOMEM when the OS refuses, after giving back the caches and
// trying the reservations' unused address space.
void* HugeAlloc(size_t size, size_t alignment, bool* zeroed);
// Caches a freed huge block's mapping, under the retain cap.
void HugeFree(HugeHeader* h);

// (The huge mappings' figures: GetHugeStats, huge.h.)
struct SuperSlabStats {
  uint64_t superslab_bytes;    // carved from reservations
  uint64_t cached_superslabs;  // in the cache now (warm or decommitted)
  uint64_t warm_superslabs;    // in the cache and still committed
};
SuperSlabStats GetSuperSlabStats();

// Caps the empty memory kept committed (mallopt M_TRIM_THRESHOLD), overriding
// HAKMEM_RETAIN_MB; what is cached beyond the new cap goes back at once.
void SetRetainBytes(uint64_t bytes);

// Calls `fn` for every superslab carved so far (in use or cached), from any
// thread, without stopping the owners: their slab descriptors are read while they
// change, so what `fn` computes is a snapshot (mallinfo, malloc_info).
void ForEachSuperSlab(void (*fn)(const SuperSlab* ss, void* arg), void* arg);

void PrepareForkSuperSlabs();
void ParentAfterForkSuperSlabs();
void ChildAfterForkSuperSlabs();

}  // namespace hakmem

#endif  // HAKMEM_SUPERSLAB_SUPERSLAB_H_
