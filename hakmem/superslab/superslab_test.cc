#include "hakmem/superslab/superslab.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config/options.h"
#include "hakmem/platform/platform.h"
#include "hakmem/registry/registry.h"

namespace hakmem {
namespace {

int g_owner;  // stands for a heap

TEST(SuperSlabTest, AcquiredSuperSlabIsAlignedRegisteredAndOwned) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ss) % kSuperSlabSize, 0u);
  EXPECT_EQ(ss->magic, kSuperSlabMagic);
  EXPECT_EQ(ss->owner.load(), &g_owner);
  EXPECT_EQ(registry::Lookup(reinterpret_cast<char*>(ss) + 12345), ss);
  EXPECT_EQ(ss->used_units, 0u);
  EXPECT_EQ(ss->slabs[0].cls, kNoClass);
  ReleaseSuperSlab(ss);
  EXPECT_EQ(ss->owner.load(), nullptr);
  EXPECT_EQ(registry::Lookup(ss), ss);  // stays registered while cached
}

// Every unit but the header (and in hardened builds units 1..8, the live map) can
// be carved; in hardened builds the 2 MiB after a superslab are inaccessible, so
// an overflow off its last block faults there, short of the next header.
TEST(SuperSlabTest, HardenedSuperSlabsAreFollowedByAGuardChunk) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  bool fresh;
  EXPECT_EQ(AllocRun(ss, kCarvableUnits + 1, 1, &fresh), nullptr);
  SlabMeta* run = AllocRun(ss, kCarvableUnits, 1, &fresh);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->start, reinterpret_cast<char*>(ss) + kFirstCarvableUnit * kUnitSize);
  char* const end = run->start + kCarvableUnits * kUnitSize;
  EXPECT_EQ(end, reinterpret_cast<char*>(ss) + kSuperSlabSize);
  end[-1] = 1;  // the run's last byte is its own
  if (kGuardChunks) {
    EXPECT_EQ(registry::Lookup(end), nullptr);
    EXPECT_EXIT(*static_cast<volatile char*>(end) = 1, testing::KilledBySignal(SIGSEGV), "");
    EXPECT_EXIT(end[kSuperSlabSize - 1] = 1, testing::KilledBySignal(SIGSEGV), "");
  }
  FreeRun(ss, run);
  ReleaseSuperSlab(ss);
}

// Superslabs for huge pages come from a reservation advised MADV_HUGEPAGE when
// huge pages are on, the others from one that never is. A superslab decommitted
// in the cache leaves huge pages (see DecayedHugePageSuperSlabLeavesHugePages),
// so reused it is in 4 KiB pages, for either kind.
TEST(SuperSlabTest, PagesPickTheReservationAndDecommittedOnesLeaveHugePages) {
  if (!config::HugePagesEnabled()) GTEST_SKIP() << "huge pages are off: " << config::ThpStatus();
  // The cache's superslabs go first; fresh ones for huge pages are advised.
  std::vector<SuperSlab*> taken;
  std::vector<SuperSlab*> huge;
  while (huge.size() < 3 && taken.size() < 64) {
    SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kHuge);
    ASSERT_NE(ss, nullptr);
    EXPECT_EQ(ss->occupancy, Occupancy::kDense);
    (ss->huge_pages ? huge : taken).push_back(ss);
  }
  ASSERT_EQ(huge.size(), 3u);
  SuperSlab* small = AcquireSuperSlab(&g_owner, Occupancy::kSparse, Pages::kSmall);
  ASSERT_NE(small, nullptr);
  EXPECT_FALSE(small->huge_pages);
  EXPECT_EQ(small->occupancy, Occupancy::kSparse);
  SetRetainBytes(0);  // what is released now is decommitted at once (cold)
  for (SuperSlab* ss : huge) {
    ReleaseSuperSlab(ss);
    EXPECT_FALSE(ss->huge_pages) << "decommitted: advised MADV_NOHUGEPAGE";
  }
  SuperSlab* again = AcquireSuperSlab(&g_owner, Occupancy::kSparse, Pages::kSmall);
  ASSERT_NE(again, nullptr);
  EXPECT_FALSE(again->huge_pages);
  taken.push_back(again);
  taken.push_back(small);
  for (SuperSlab* ss : taken) ReleaseSuperSlab(ss);
  SetRetainBytes(UINT64_MAX);
}

// The VmFlags line of the mapping of /proc/self/smaps that holds `p`.
std::string VmFlagsOf(const void* p) {
  FILE* f = fopen("/proc/self/smaps", "re");
  if (f == nullptr) return "";
  char line[512];
  bool inside = false;
  std::string flags;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  while (fgets(line, sizeof(line), f) != nullptr) {
    unsigned long start, end;
    // A mapping's line starts with its address in lowercase hex; field lines
    // ("Size:", "AnonHugePages:", "VmFlags:") with a capital letter.
    const bool mapping = (line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f');
    if (mapping && sscanf(line, "%lx-%lx ", &start, &end) == 2) {
      inside = a >= start && a < end;
    } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      flags = line;
      break;
    }
  }
  fclose(f);
  return flags;
}

// Decay that gives units of a huge-page superslab back also advises it
// MADV_NOHUGEPAGE, so khugepaged cannot fault them back in as a huge page.
TEST(SuperSlabTest, DecayedHugePageSuperSlabLeavesHugePages) {
  if (!config::HugePagesEnabled()) GTEST_SKIP() << "huge pages are off: " << config::ThpStatus();
  std::vector<SuperSlab*> taken;
  SuperSlab* ss = nullptr;
  while (ss == nullptr && taken.size() < 64) {
    SuperSlab* s = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kHuge);
    ASSERT_NE(s, nullptr);
    (s->huge_pages ? ss : taken.emplace_back(s)) = s;
  }
  ASSERT_NE(ss, nullptr);
  EXPECT_NE(VmFlagsOf(ss).find(" hg"), std::string::npos) << VmFlagsOf(ss);
  bool fresh;
  SlabMeta* run = AllocRun(ss, 8, 1, &fresh);
  ASSERT_NE(run, nullptr);
  memset(run->start, 1, 8 * kUnitSize);
  FreeRun(ss, run);
  EXPECT_FALSE(DecayFreeUnits(ss, /*all=*/true));
  EXPECT_FALSE(ss->huge_pages);
  EXPECT_NE(VmFlagsOf(ss).find(" nh"), std::string::npos) << VmFlagsOf(ss);
  ReleaseSuperSlab(ss);
  for (SuperSlab* s : taken) ReleaseSuperSlab(s);
}

// Decay gives a free run back once it has been free for a whole tick, however
// busy the rest of its superslab is: a run freed between two ticks waits for
// the second, and a run freed later does not hold it back.
TEST(SuperSlabTest, DecayDecommitsEachRunAfterOneWholeTick) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  bool fresh;
  SlabMeta* a = AllocRun(ss, 4, 1, &fresh);
  ASSERT_NE(a, nullptr);
  SlabMeta* b = AllocRun(ss, 4, 1, &fresh);
  ASSERT_NE(b, nullptr);
  SlabMeta* kept = AllocRun(ss, 1, 1, &fresh);  // in use throughout
  ASSERT_NE(kept, nullptr);
  char* a_start = a->start;
  char* b_start = b->start;
  memset(a_start, 1, 4 * kUnitSize);
  memset(b_start, 1, 4 * kUnitSize);
  // (A superslab from the cache may come with dirty free units.)
  EXPECT_FALSE(DecayFreeUnits(ss, /*all=*/true));
  EXPECT_FALSE(DecayFreeUnits(ss, /*all=*/false)) << "no dirty free unit";

  FreeRun(ss, a);
  EXPECT_TRUE(DecayFreeUnits(ss, /*all=*/false)) << "a waits";
  EXPECT_EQ(a_start[0], 1) << "a was freed after the last tick: kept";
  FreeRun(ss, b);  // the superslab stays busy
  EXPECT_TRUE(DecayFreeUnits(ss, /*all=*/false)) << "b waits";
  EXPECT_EQ(a_start[0], 0) << "a was free for a whole tick: decommitted";
  EXPECT_EQ(a_start[4 * kUnitSize - 1], 0);
  EXPECT_EQ(b_start[0], 1) << "b was freed after the last tick: kept";
  EXPECT_FALSE(DecayFreeUnits(ss, /*all=*/false)) << "nothing left waiting";
  EXPECT_EQ(b_start[0], 0);
  EXPECT_FALSE(HasDirtyFreeUnits(ss));

  // all: every dirty free unit goes at once (trim, a quiet heap).
  memset(kept->start, 1, kUnitSize);
  char* kept_start = kept->start;
  FreeRun(ss, kept);
  EXPECT_FALSE(DecayFreeUnits(ss, /*all=*/true));
  EXPECT_EQ(kept_start[0], 0);
  ReleaseSuperSlab(ss);
}

TEST(SuperSlabTest, RunsAreDisjointAlignedAndTracked) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  bool fresh = false;
  SlabMeta* a = AllocRun(ss, 4, 1, &fresh);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->start,
            reinterpret_cast<char*>(ss) + kFirstCarvableUnit * kUnitSize);  // after the header
  SlabMeta* b = AllocRun(ss, 8, 8, &fresh);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ((b->start - reinterpret_cast<char*>(ss)) % (8 * kUnitSize), 0);
  EXPECT_GE(b->start, a->start + 4 * kUnitSize);
  EXPECT_EQ(SlabOf(ss, a->start + 3 * kUnitSize + 5), a);
  EXPECT_EQ(SlabOf(ss, b->start + 7 * kUnitSize), b);
  EXPECT_EQ(ss->used_units, 12u);
  // The rest fills up; a run that does not fit is refused.
  EXPECT_EQ(AllocRun(ss, kUnitsPerSuperSlab, 1, &fresh), nullptr);
  char* a_start = a->start;
  FreeRun(ss, a);
  EXPECT_EQ(SlabOf(ss, a_start)->cls, kNoClass);
  EXPECT_EQ(SlabOf(ss, a_start), &ss->slabs[0]);
  EXPECT_EQ(ss->used_units, 8u);
  FreeRun(ss, b);
  EXPECT_EQ(ss->used_units, 0u);
  ReleaseSuperSlab(ss);
}

TEST(SuperSlabTest, FreshRunsReadZeroAndReusedRunsAreMarkedDirty) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  bool fresh = false;
  SlabMeta* run = AllocRun(ss, 2, 1, &fresh);
  ASSERT_NE(run, nullptr);
  char* start = run->start;
  if (fresh) {
    for (size_t i = 0; i < 2 * kUnitSize; i += 64) ASSERT_EQ(start[i], 0);
  }
  memset(start, 0x5a, 2 * kUnitSize);
  FreeRun(ss, run);
  run = AllocRun(ss, 2, 1, &fresh);
  EXPECT_EQ(run->start, start);
  EXPECT_FALSE(fresh);
  FreeRun(ss, run);
  ReleaseSuperSlab(ss);
}

TEST(SuperSlabTest, RunGrowsOverTheFreeUnitsAfterIt) {
  PurgeCaches(/*force=*/true);  // every cached superslab clean: runs go first fit
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  bool fresh;
  SlabMeta* a = AllocRun(ss, 4, 1, &fresh);
  SlabMeta* b = AllocRun(ss, 2, 1, &fresh);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b - ss->slabs, (a - ss->slabs) + 4) << "first fit in an empty superslab";
  const size_t first = static_cast<size_t>(a - ss->slabs);
  const uint32_t used = ss->used_units;
  EXPECT_FALSE(GrowRun(ss, a, 6, &fresh)) << "b sits right after a";
  EXPECT_EQ(a->units, 4u);
  EXPECT_EQ(ss->used_units, used);
  FreeRun(ss, b);
  ASSERT_TRUE(GrowRun(ss, a, 10, &fresh));
  EXPECT_EQ(a->units, 10u);
  EXPECT_EQ(ss->used_units, used - 2 + 6);
  for (size_t u = first; u < first + 10; ++u) {
    EXPECT_EQ(SlabIndexOfUnit(ss, u), first) << u;
    EXPECT_EQ((ss->free_units[u / 64] >> (u % 64)) & 1, 0u) << u;
    EXPECT_EQ((ss->dirty_units[u / 64] >> (u % 64)) & 1, 1u) << u;
  }
  EXPECT_EQ((ss->free_units[(first + 10) / 64] >> ((first + 10) % 64)) & 1, 1u);
  EXPECT_FALSE(GrowRun(ss, a, 129 - first, &fresh)) << "past the superslab's end";
  EXPECT_FALSE(GrowRun(ss, a, 8, &fresh)) << "not a growth";
  FreeRun(ss, a);
  EXPECT_EQ(ss->used_units, 0u);
  ReleaseSuperSlab(ss);
}

TEST(SuperSlabTest, BlockStartsAreRecognised) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  for (uint32_t size : {16u, 48u, 1024u, 1152u, 14336u, 131072u}) {
    bool fresh;
    const size_t units = (size_t{size} * 4 + kUnitSize - 1) / kUnitSize;
    SlabMeta* slab = AllocRun(ss, units, 1, &fresh);
    ASSERT_NE(slab, nullptr);
    InitSlabBlocks(slab, size);
    EXPECT_EQ(slab->capacity, units * kUnitSize / size);
    // The tail comes first; the last block ends at the slab's end.
    EXPECT_EQ(slab->end, slab->start + units * kUnitSize);
    EXPECT_EQ(slab->first_block, slab->end - size_t{slab->capacity} * size);
    EXPECT_EQ(slab->bump, slab->first_block);
    for (uint32_t i = 0; i < slab->capacity; ++i) {
      ASSERT_TRUE(IsBlockStart(slab, slab->first_block + size_t{i} * size)) << size << " " << i;
      ASSERT_FALSE(IsBlockStart(slab, slab->first_block + size_t{i} * size + 8)) << size;
      ASSERT_FALSE(IsBlockStart(slab, slab->first_block + size_t{i} * size + size - 1)) << size;
    }
    if (slab->first_block != slab->start) {
      EXPECT_FALSE(IsBlockStart(slab, slab->start));  // the tail
      EXPECT_FALSE(IsBlockStart(slab, slab->first_block - 16));
    }
    FreeRun(ss, slab);
  }
  ReleaseSuperSlab(ss);
}

// The free fast path's test (a unit entry's GridOffset, IsMultiple of the
// class's DivMagic) against plain division, for a slab of every class placed in
// a superslab after a one-unit run (so its units are not the first), at every
// byte of its units; and every unit outside a class's slab (free units, the
// header, a large run) at kNoListOffset, so the test fails there whatever the
// pointer (the thread caches' multiplier at kNoListOffset is 0).
TEST(SuperSlabTest, UnitEntriesFindExactlyTheBlockStartsOfEveryClass) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  bool fresh;
  SlabMeta* before = AllocRun(ss, 1, 1, &fresh);
  ASSERT_NE(before, nullptr);
  for (int cls = 0; cls < kNumClasses; ++cls) {
    const uint32_t size = kSizeClasses[cls].size;
    SlabMeta* slab = AllocRun(ss, kSizeClasses[cls].slab_units, 1, &fresh);
    ASSERT_NE(slab, nullptr);
    for (size_t offset = 0; offset < size_t{slab->units} * kUnitSize; offset += kUnitSize) {
      ASSERT_EQ(UnitEntryOf(ss, slab->start + offset).list_offset, kNoListOffset) << "a new run";
    }
    InitClassSlab(ss, slab, cls);
    const uint64_t magic = DivMagic(size);
    for (size_t offset = 0; offset < size_t{slab->units} * kUnitSize; ++offset) {
      const char* p = slab->start + offset;
      const UnitEntry& entry = UnitEntryOf(ss, p);
      ASSERT_EQ(entry.list_offset, cls * kClassListStride);
      ASSERT_EQ(SlabOf(ss, p), slab);
      const bool expected = p >= slab->first_block && (p - slab->first_block) % size == 0;
      ASSERT_EQ(IsMultiple(GridOffset(entry, p), magic), expected) << size << " " << offset;
      ASSERT_LT(GridOffset(entry, p), uint64_t{1} << 21);
    }
    const char* start = slab->start;  // (FreeRun clears the SlabMeta)
    FreeRun(ss, slab);
    for (size_t offset = 0; offset < size_t{kSizeClasses[cls].slab_units} * kUnitSize;
         offset += kUnitSize) {
      ASSERT_EQ(UnitEntryOf(ss, start + offset).list_offset, kNoListOffset) << "freed";
    }
  }
  EXPECT_EQ(UnitEntryOf(ss, ss).list_offset, kNoListOffset) << "the header";
  EXPECT_EQ(UnitEntryOf(ss, before->start).list_offset, kNoListOffset) << "a run of no class";
  FreeRun(ss, before);
  ReleaseSuperSlab(ss);
}

// Superslabs use the unit map their address bits above 2 MiB pick (so the maps
// of a heap's superslabs, consecutive in a reservation, do not compete for the
// same L1 sets), and every path agrees on which: the entry InitClassSlab writes
// is the one the free fast path reads from the pointer alone.
TEST(SuperSlabTest, ConsecutiveSuperSlabsUseDifferentUnitMaps) {
  std::vector<SuperSlab*> taken;
  std::set<uintptr_t> map_offsets;
  for (size_t i = 0; i < 4 * kUnitMapColors && map_offsets.size() < kUnitMapColors; ++i) {
    SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
    ASSERT_NE(ss, nullptr);
    taken.push_back(ss);
    bool fresh;
    SlabMeta* slab = AllocRun(ss, kSizeClasses[5].slab_units, 1, &fresh);
    ASSERT_NE(slab, nullptr);
    InitClassSlab(ss, slab, 5);
    const UnitEntry& entry = UnitEntryOf(ss, slab->first_block);
    EXPECT_EQ(&entry, &UnitEntryAt(ss, static_cast<size_t>(slab - ss->slabs)));
    EXPECT_EQ(entry.list_offset, 5 * kClassListStride);
    EXPECT_EQ(GridOffset(entry, slab->first_block), kSizeClasses[5].size);
    const uintptr_t map_offset = reinterpret_cast<uintptr_t>(&UnitEntryAt(ss, 0)) % kSuperSlabSize;
    const size_t color = (reinterpret_cast<uintptr_t>(ss) / kSuperSlabSize) % kUnitMapColors;
    EXPECT_EQ(map_offset, kUnitMapAt + color * kUnitsPerSuperSlab * sizeof(UnitEntry));
    map_offsets.insert(map_offset);
    FreeRun(ss, slab);
  }
  // Consecutive superslabs of a reservation (hardened ones sit two chunks apart,
  // and take every other map) use at least two maps.
  EXPECT_GE(map_offsets.size(), 2u);
  for (SuperSlab* ss : taken) ReleaseSuperSlab(ss);
}

TEST(SuperSlabTest, PurgeDecommitsAndReuseStillWorks) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  bool fresh;
  SlabMeta* run = AllocRun(ss, 1, 1, &fresh);
  memset(run->start, 1, kUnitSize);
  FreeRun(ss, run);
  ReleaseSuperSlab(ss);
  const uint64_t madvises = platform::SyscallCount(platform::Syscall::k_madvise);
  PurgeCaches(/*force=*/true);
  EXPECT_GT(platform::SyscallCount(platform::Syscall::k_madvise), madvises);
  // Whatever superslab comes back next is usable, and a decommitted one reads zero.
  SuperSlab* again = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(again, nullptr);
  run = AllocRun(again, 1, 1, &fresh);
  ASSERT_NE(run, nullptr);
  EXPECT_TRUE(fresh);
  EXPECT_EQ(run->start[0], 0);
  FreeRun(again, run);
  ReleaseSuperSlab(again);
}

TEST(HugeTest, MapsRegistersCachesAndReuses) {
  bool zeroed = false;
  const size_t size = (size_t{3} << 20) + 123;
  char* p = static_cast<char*>(HugeAlloc(size, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(zeroed);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
  HugeHeader* h = HugeHeaderOf(p);
  EXPECT_EQ(registry::Lookup(p), h);
  EXPECT_EQ(registry::Lookup(p + size - 1), h);
  EXPECT_EQ(h->magic, kHugeMagic);
  EXPECT_EQ(h->owner.load(), nullptr);
  EXPECT_GE(HugeUsableSize(h), size);
  memset(p, 7, size);
  HugeFree(h);
  EXPECT_TRUE(h->cached);
  char* q = static_cast<char*>(HugeAlloc(size - 1000, 16, &zeroed));
  EXPECT_EQ(q, p);  // reused from the cache
  EXPECT_FALSE(zeroed);
  HugeFree(HugeHeaderOf(q));
  PurgeCaches(true);
  EXPECT_EQ(registry::Lookup(p), nullptr);  // unmapped and unregistered
}

TEST(HugeTest, HonoursLargeAlignments) {
  for (size_t alignment :
       {size_t{8192}, size_t{1} << 20, size_t{2} << 20, size_t{4} << 20, size_t{16} << 20}) {
    bool zeroed;
    char* p = static_cast<char*>(HugeAlloc(size_t{2} << 20, alignment, &zeroed));
    ASSERT_NE(p, nullptr) << alignment;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u) << alignment;
    EXPECT_EQ(registry::Lookup(p), HugeHeaderOf(p));
    p[(size_t{2} << 20) - 1] = 1;
    HugeFree(HugeHeaderOf(p));
  }
  PurgeCaches(true);
}

TEST(HugeTest, ReallocGrowsInPlaceThenByMovingPages) {
  bool zeroed;
  const size_t size = size_t{3} << 20;
  char* p = static_cast<char*>(HugeAlloc(size, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  for (size_t i = 0; i < size; i += 4096) p[i] = static_cast<char>(i >> 12);
  HugeHeader* h = HugeHeaderOf(p);
  const size_t in_place = HugeUsableSize(h);
  EXPECT_EQ(HugeRealloc(h, in_place), p);
  const uint64_t remaps = platform::SyscallCount(platform::Syscall::k_mremap);
  char* q = static_cast<char*>(HugeRealloc(h, size_t{64} << 20));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(platform::SyscallCount(platform::Syscall::k_mremap), remaps + 1);
  for (size_t i = 0; i < size; i += 4096) ASSERT_EQ(q[i], static_cast<char>(i >> 12)) << i;
  q[(size_t{64} << 20) - 1] = 9;
  EXPECT_EQ(registry::Lookup(q), HugeHeaderOf(q));
  if (q != p) {
    EXPECT_NE(registry::Lookup(p), HugeHeaderOf(q));
  }
  HugeFree(HugeHeaderOf(q));
  PurgeCaches(true);
}

TEST(HugeTest, RefusedMappingReportsENOMEM) {
  bool zeroed;
  errno = 0;
  EXPECT_EQ(HugeAlloc(size_t{1} << 47, 16, &zeroed), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

// A cached huge mapping serves only a huge block of about its size: as the
// process grows by a new superslab, the mappings cached for an eighth of the
// purge delay go back; one cached a moment ago stays (a program freeing and
// mapping huge blocks in a cycle reuses it).
TEST(HugeTest, IdleCachedHugeMappingsGoBackAsTheProcessGrowsBySuperSlabs) {
  setenv("HAKMEM_PURGE_DELAY_MS", "800", 1);  // an eighth: 100 ms
  config::ReloadOptionsForTesting();
  // Every cached superslab taken first, so the next one is carved fresh.
  std::vector<SuperSlab*> taken;
  while (GetSuperSlabStats().cached_superslabs != 0) {
    taken.push_back(AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall));
    ASSERT_NE(taken.back(), nullptr);
  }
  bool zeroed;
  char* idle = static_cast<char*>(HugeAlloc(size_t{3} << 20, 16, &zeroed));
  char* recent = static_cast<char*>(HugeAlloc(size_t{1} << 20, 16, &zeroed));
  ASSERT_NE(idle, nullptr);
  ASSERT_NE(recent, nullptr);
  HugeFree(HugeHeaderOf(idle));
  usleep(200 * 1000);
  HugeFree(HugeHeaderOf(recent));
  EXPECT_EQ(GetHugeStats().cached_huge, 2u);
  SuperSlab* fresh = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(GetHugeStats().cached_huge, 1u);
  EXPECT_EQ(registry::Lookup(idle), nullptr);
  EXPECT_NE(registry::Lookup(recent), nullptr);
  ReleaseSuperSlab(fresh);
  for (SuperSlab* ss : taken) ReleaseSuperSlab(ss);
  PurgeCaches(true);
  unsetenv("HAKMEM_PURGE_DELAY_MS");
  config::ReloadOptionsForTesting();
}

TEST(HugeTest, RetainCapReleasesAtOnce) {
  setenv("HAKMEM_RETAIN_MB", "0", 1);
  config::ReloadOptionsForTesting();
  bool zeroed;
  char* p = static_cast<char*>(HugeAlloc(size_t{4} << 20, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  const uint64_t munmaps = platform::SyscallCount(platform::Syscall::k_munmap);
  HugeFree(HugeHeaderOf(p));
  EXPECT_EQ(platform::SyscallCount(platform::Syscall::k_munmap), munmaps + 1);
  EXPECT_EQ(GetHugeStats().cached_huge, 0u);
  unsetenv("HAKMEM_RETAIN_MB");
  config::ReloadOptionsForTesting();
}

}  // namespace
}  // namespace hakmem

namespace hakmem {
namespace {

// The one-multiply divisibility test against plain division, for every class
// size and every address of its slab (the tail before the first block included),
// and every offset from the first block a superslab can hold.
TEST(SuperSlabTest, BlockStartTestIsExactForEveryClassAndOffset) {
  for (int cls = 0; cls < kNumClasses; ++cls) {
    SlabMeta slab{};
    slab.units = kSizeClasses[cls].slab_units;
    slab.start = reinterpret_cast<char*>(uintptr_t{1} << 30);
    InitSlabBlocks(&slab, kSizeClasses[cls].size);
    const uint32_t size = kSizeClasses[cls].size;
    const uint64_t tail = static_cast<uint64_t>(slab.first_block - slab.start);
    ASSERT_LT(tail, size);
    for (uint64_t offset = 0; offset < size_t{slab.units} * kUnitSize; ++offset) {
      const bool expected = offset >= tail && (offset - tail) % size == 0;
      ASSERT_EQ(IsBlockStart(&slab, slab.start + offset), expected) << size << " " << offset;
    }
    for (uint64_t offset = 0; offset < kSuperSlabSize; ++offset) {
      ASSERT_EQ(IsBlockStart(&slab, slab.first_block + offset), offset % size == 0)
          << size << " " << offset;
    }
    // Every address of a tail as long as a tail can be (a multiple of 16 below
    // the size: size - 16 bytes).
    for (uint64_t d = 1; d <= size - 16; ++d) {
      ASSERT_FALSE(IsBlockStart(&slab, slab.first_block - d)) << size << " " << d;
    }
  }
}

}  // namespace
}  // namespace hakmem

namespace hakmem {
namespace {

// A cached mapping whose user block sits far in (an aligned one) is reused only
// where it still has room for the new request.
TEST(HugeTest, CachedAlignedMappingIsNotReusedTooSmall) {
  bool zeroed;
  void* aligned = HugeAlloc(200, size_t{4} << 20, &zeroed);
  ASSERT_NE(aligned, nullptr);
  HugeFree(HugeHeaderOf(aligned));
  const size_t size = size_t{3} << 20;
  char* p = static_cast<char*>(HugeAlloc(size, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  EXPECT_GE(HugeUsableSize(HugeHeaderOf(p)), size);
  memset(p, 1, size);
  HugeFree(HugeHeaderOf(p));
  PurgeCaches(true);
}

}  // namespace
}  // namespace hakmem

namespace hakmem {
namespace {

// The longest run of units for which `pick` holds, counted unit by unit.
template <typename Pick>
size_t ReferenceLongestRun(Pick pick) {
  size_t longest = 0;
  size_t run = 0;
  for (size_t u = 0; u < kUnitsPerSuperSlab; ++u) {
    run = pick(u) ? run + 1 : 0;
    if (run > longest) longest = run;
  }
  return longest;
}

// AllocRun against a reference search, over random fragmentation patterns; the
// superslab's bounds on its longest free and backed runs (what MayFitRun reads)
// against reference counts after every change, decommits and decay ticks
// included: never below, and below the run asked for after a search that failed.
TEST(SuperSlabTest, RunSearchPrefersBackedUnitsThenTheFirstFit) {
  SuperSlab* ss = AcquireSuperSlab(&g_owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  uint32_t r = 12345;
  auto next = [&r] {
    r ^= r << 13;
    r ^= r >> 17;
    r ^= r << 5;
    return r;
  };
  auto bit = [](const uint64_t words[2], size_t u) {
    return ((u < 64 ? words[0] >> u : words[1] >> (u - 64)) & 1) != 0;
  };
  auto free_run = [&] {
    return ReferenceLongestRun([&](size_t u) { return bit(ss->free_units, u); });
  };
  auto backed_run = [&] {
    return ReferenceLongestRun(
        [&](size_t u) { return bit(ss->free_units, u) && bit(ss->dirty_units, u); });
  };
  // The bounds hold; returns the longest free run.
  auto check_runs = [&] {
    EXPECT_GE(ss->longest_free_run, free_run());
    EXPECT_GE(ss->longest_backed_run, backed_run());
    EXPECT_TRUE(MayFitRun(ss, free_run(), RunUnits::kAny));
    EXPECT_TRUE(MayFitRun(ss, backed_run(), RunUnits::kBackedOnly));
    return free_run();
  };
  // An empty superslab (from the cache, whatever of it is backed): every
  // carvable unit free.
  EXPECT_EQ(check_runs(), kCarvableUnits);
  EXPECT_EQ(ss->longest_free_run, kCarvableUnits);
  std::vector<SlabMeta*> live;
  size_t backed_only_fits = 0;
  size_t failed_searches = 0;
  for (int round = 0; round < 4000; ++round) {
    if (::testing::Test::HasFailure()) break;
    check_runs();
    if (!live.empty() && next() % 3 == 0) {
      const size_t i = next() % live.size();
      if (next() % 4 == 0) DecommitRun(ss, live[i]);
      FreeRun(ss, live[i]);
      live[i] = live.back();
      live.pop_back();
      continue;
    }
    if (next() % 50 == 0) {
      DecayFreeUnits(ss, /*all=*/next() % 2 == 0);
      continue;
    }
    const size_t units = 1 + next() % 40;
    const size_t align = size_t{1} << (next() % 4);
    if (align == 1 && next() % 2 == 0) {
      // A backed-only search: it finds a run where the reference does, and where
      // it finds none its bound is exact afterwards.
      const size_t longest = backed_run();
      bool fresh = true;
      SlabMeta* run = AllocRun(ss, units, 1, &fresh, RunUnits::kBackedOnly);
      if (units > longest) {
        ASSERT_EQ(run, nullptr) << units;
        EXPECT_FALSE(MayFitRun(ss, units, RunUnits::kBackedOnly)) << units;
        ++failed_searches;
        continue;
      }
      ASSERT_NE(run, nullptr) << units;
      EXPECT_FALSE(fresh);
      live.push_back(run);
      ++backed_only_fits;
      continue;
    }
    // The reference: the lowest aligned start with `units` free units that are
    // all dirty (backed already), else the lowest with `units` free units.
    size_t expected = 0;
    for (bool want_dirty : {true, false}) {
      for (size_t first = align; first + units <= kUnitsPerSuperSlab && expected == 0;
           first += align) {
        bool fits = true;
        for (size_t u = first; u < first + units; ++u) {
          fits &= bit(ss->free_units, u) && (!want_dirty || bit(ss->dirty_units, u));
        }
        if (fits) expected = first;
      }
    }
    // MayFitRun says no only where the reference finds nothing.
    if (!MayFitRun(ss, units, RunUnits::kAny)) EXPECT_EQ(expected, 0u) << units << " " << align;
    bool fresh;
    SlabMeta* run = AllocRun(ss, units, align, &fresh);
    if (expected == 0) {
      ASSERT_EQ(run, nullptr) << units << " " << align;
      if (align == 1) {  // the bounds say so now
        EXPECT_FALSE(MayFitRun(ss, units, RunUnits::kAny)) << units;
        EXPECT_FALSE(MayFitRun(ss, units, RunUnits::kBackedOnly)) << units;
        ++failed_searches;
      }
      continue;
    }
    ASSERT_NE(run, nullptr) << units << " " << align;
    ASSERT_EQ(run, &ss->slabs[expected]) << units << " " << align;
    ASSERT_EQ(run->units, units);
    for (size_t u = expected; u < expected + units; ++u)
      ASSERT_EQ(SlabIndexOfUnit(ss, u), expected);
    live.push_back(run);
  }
  EXPECT_GT(backed_only_fits, 100u);
  EXPECT_GT(failed_searches, 100u);
  for (SlabMeta* run : live) FreeRun(ss, run);
  EXPECT_EQ(ss->used_units, 0u);
  EXPECT_EQ(check_runs(), kCarvableUnits);
  ReleaseSuperSlab(ss);
}

}  // namespace
}  // namespace hakmem
