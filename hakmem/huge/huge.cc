#include "hakmem/huge/huge.h"

#include <errno.h>
#include <string.h>

#include "hakmem/config/options.h"
#include "hakmem/platform/intrusive_list.h"
#include "hakmem/platform/platform.h"
#include "hakmem/platform/spin_lock.h"
#include "hakmem/registry/registry.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/stats/stats.h"

namespace hakmem {
namespace {

using stats::Count;
using stats::Counter;

ABSL_CONST_INIT platform::SpinLock g_lock;
ABSL_CONST_INIT IntrusiveList<HugeHeader> g_cache ABSL_GUARDED_BY(g_lock);
ABSL_CONST_INIT uint64_t g_cached_bytes ABSL_GUARDED_BY(g_lock) = 0;
ABSL_CONST_INIT std::atomic<uint64_t> g_huge_bytes{0};
ABSL_CONST_INIT std::atomic<uint64_t> g_huge_count{0};  // mappings, live or cached

// The user pointers of the last huge blocks whose mappings went back to the OS,
// or that realloc moved elsewhere: a stale free of one finds no registry entry,
// and would otherwise be taken for the C library's pointer and handed to its
// free (a crash there). Written under g_lock, read without it (relaxed: a
// pointer is either recorded or not).
constexpr int kReleasedSlots = 64;
ABSL_CONST_INIT std::atomic<uintptr_t> g_released[kReleasedSlots] = {};
ABSL_CONST_INIT uint32_t g_released_next ABSL_GUARDED_BY(g_lock) = 0;

void NoteReleasedLocked(const char* user) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  g_released[g_released_next++ % kReleasedSlots].store(reinterpret_cast<uintptr_t>(user),
                                                       std::memory_order_relaxed);
}

void TakeOutOfCacheLocked(HugeHeader* h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  g_cache.Remove(h);
  g_cached_bytes -= h->map_len;
  h->cached = false;
}

void ReleaseLocked(HugeHeader* h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  NoteReleasedLocked(h->user);
  TakeOutOfCacheLocked(h);
  g_huge_bytes.fetch_sub(h->map_len, std::memory_order_relaxed);
  g_huge_count.fetch_sub(1, std::memory_order_relaxed);
  char* base = h->map_base;
  const size_t len = h->map_len;
  registry::Unregister(base, len);
  platform::Release(base, len);
  Count(Counter::k_huge_released);
}

// Hardened builds: makes the last kHugeGuardSize bytes of the mapping [base,
// base + len) inaccessible (true without a guard).
bool GuardTail(char* base, size_t len) {
  return kHugeGuardSize == 0 ||
         platform::Protect(base + len - kHugeGuardSize, kHugeGuardSize, /*accessible=*/false);
}

}  // namespace

HugeLayout LayoutOfHuge(size_t size, size_t alignment) {
  size_t offset = kHugeHeaderSize;
  if (alignment > kHugeHeaderSize) offset = alignment < kSuperSlabSize ? alignment : kSuperSlabSize;
  return {offset, platform::RoundUp(offset + size, platform::kPageSize) + kHugeGuardSize};
}

namespace {

// `h`, taken out of the cache, grown to a block of `size` bytes by moving its
// pages (HugeRealloc); nullptr when the OS refuses (h goes back to the cache).
void* GrowTakenHuge(HugeHeader* h, size_t size) {
  const int saved_errno = errno;
  void* user = HugeRealloc(h, size);
  if (user == nullptr) {
    errno = saved_errno;
    CacheHuge(h, platform::NowNanos());
    return nullptr;
  }
  // HugeRealloc leaves the new range in small pages (a realloc's room); a new
  // block gets MapHuge's advice: its whole 2 MiB chunks.
  const size_t whole_chunks = (kHugeHeaderSize + size) & ~(kSuperSlabSize - 1);
  if (whole_chunks != 0 && config::HugePagesEnabled()) {
    platform::AdviseHugePages(HugeHeaderOf(user)->map_base, whole_chunks);
  }
  return user;
}

}  // namespace

void* ReuseCachedHuge(size_t size, const HugeLayout& layout) {
  // A warm mapping beats fresh page faults, and a roomy one lets a growing block
  // realloc in place; an aligned one's user pointer sits further in. With none
  // that fits, the largest smaller one at the default offset moves into the
  // block: only the rest is faulted in, and the cache does not stay resident
  // beside a fresh mapping.
  HugeHeader* best = nullptr;
  HugeHeader* grown = nullptr;
  {
    platform::SpinLockHolder hold(&g_lock);
    for (HugeHeader* h = g_cache.head(); h != nullptr; h = h->next) {
      if (HugeUsableSize(h) >= size) {
        if (h->map_len <= kHugeReuseRoom * platform::RoundUp(layout.length, kSuperSlabSize) &&
            (best == nullptr || h->map_len < best->map_len)) {
          best = h;
        }
      } else if (h->user == h->map_base + kHugeHeaderSize &&
                 (grown == nullptr || h->map_len > grown->map_len)) {
        grown = h;
      }
    }
    if (best != nullptr) {
      TakeOutOfCacheLocked(best);
      best->size = size;
    } else if (grown != nullptr) {
      TakeOutOfCacheLocked(grown);
    } else {
      return nullptr;
    }
  }
  void* user = best != nullptr ? best->user : GrowTakenHuge(grown, size);
  if (user != nullptr) Count(Counter::k_huge_reused);
  return user;
}

void* MapHuge(size_t size, size_t alignment, const HugeLayout& layout, char* base) {
  // base is superslab-aligned (one registry chunk each) and base + offset is
  // aligned to `alignment`; the rest of the last registry chunk may hold a foreign
  // mapping, which InHugeMapping tells apart by the range.
  if (base == nullptr) {
    const size_t reserve_alignment = alignment > kSuperSlabSize ? alignment : kSuperSlabSize;
    const size_t reserve_offset = alignment > kSuperSlabSize ? layout.offset : 0;
    base = static_cast<char*>(platform::Reserve(layout.length, reserve_alignment, reserve_offset));
    if (base == nullptr) return nullptr;
  }
  // Whole 2 MiB pages of a big block are faulted in at once (its tail below
  // 2 MiB stays in small pages). Advised before the header is written: the
  // header's fault would otherwise put a 4 KiB page in the first 2 MiB, and the
  // kernel backs a range that already holds one with small pages only.
  // (A block aligned to 2 MiB or more starts a chunk past its header's: that
  // chunk, the header alone, stays in 4 KiB pages.)
  const size_t advised_from = layout.offset & ~(kSuperSlabSize - 1);
  if (layout.length >= advised_from + kSuperSlabSize && config::HugePagesEnabled()) {
    platform::AdviseHugePages(base + advised_from, layout.length - advised_from);
  }
  char* user = base + layout.offset;
  HugeHeader* h = HugeHeaderOf(user);
  h->magic = kHugeMagic;
  h->map_base = base;
  h->map_len = layout.length;
  h->user = user;
  h->size = size;
  if (!GuardTail(base, layout.length) || !registry::Register(base, layout.length, h)) {
    platform::Release(base, layout.length);
    return nullptr;
  }
  g_huge_bytes.fetch_add(layout.length, std::memory_order_relaxed);
  g_huge_count.fetch_add(1, std::memory_order_relaxed);
  Count(Counter::k_huge_mapped);
  return user;
}

void CacheHuge(HugeHeader* h, uint64_t now_ns) {
  platform::SpinLockHolder hold(&g_lock);
  h->cached = true;
  h->cached_at_ns = now_ns;
  g_cache.PushFront(h);
  g_cached_bytes += h->map_len;
}

uint64_t CachedHugeBytes() {
  platform::SpinLockHolder hold(&g_lock);
  return g_cached_bytes;
}

uint64_t OldestCachedHugeNs() {
  platform::SpinLockHolder hold(&g_lock);
  return g_cache.tail() != nullptr ? g_cache.tail()->cached_at_ns : UINT64_MAX;
}

bool ReleaseOldestCachedHuge() {
  platform::SpinLockHolder hold(&g_lock);
  if (g_cache.tail() == nullptr) return false;
  ReleaseLocked(g_cache.tail());
  return true;
}

bool ReleaseCachedHuge(uint64_t now_ns, uint64_t delay_ns, bool force) {
  platform::SpinLockHolder hold(&g_lock);
  bool released = false;
  while (g_cache.tail() != nullptr &&
         (force || now_ns - g_cache.tail()->cached_at_ns >= delay_ns)) {
    ReleaseLocked(g_cache.tail());
    released = true;
  }
  return released;
}

bool WasReleasedHuge(const void* ptr) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  for (const std::atomic<uintptr_t>& slot : g_released) {
    if (slot.load(std::memory_order_relaxed) == p) return true;
  }
  return false;
}

size_t HugeUsableSize(const HugeHeader* h) {
  return static_cast<size_t>(h->map_base + h->map_len - kHugeGuardSize - h->user);
}

void* HugeRealloc(HugeHeader* h, size_t new_size) {
  const size_t offset = static_cast<size_t>(h->user - h->map_base);
  if (new_size > kMaxHugeSize) {
    errno = ENOMEM;
    return nullptr;
  }
  if (new_size <= HugeUsableSize(h)) {
    h->size = new_size;
    return h->user;
  }
  // A block aligned to 2 MiB or more has its header's chunk advised apart from
  // the rest (MapHuge): two mappings, which one mremap cannot move. The caller
  // copies it.
  if (offset >= kSuperSlabSize && config::HugePagesEnabled()) {
    errno = ENOMEM;
    return nullptr;
  }
  // A block that grows by realloc tends to grow again: the new mapping runs to
  // the end of its last superslab, so the next steps stay in place (whole pages
  // only when the address space is short).
  // (A guard page goes past that end, not inside it: the last 2 MiB stay whole
  // for a huge page.)
  size_t needed = platform::RoundUp(offset + new_size, kSuperSlabSize) + kHugeGuardSize;
  char* new_base = static_cast<char*>(platform::Reserve(needed, kSuperSlabSize));
  if (new_base == nullptr) {
    needed = platform::RoundUp(offset + new_size, platform::kPageSize) + kHugeGuardSize;
    new_base = static_cast<char*>(platform::Reserve(needed, kSuperSlabSize));
  }
  if (new_base == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  char* old_base = h->map_base;
  const size_t old_len = h->map_len;
  HugeHeader* moved =
      reinterpret_cast<HugeHeader*>(new_base + (reinterpret_cast<char*>(h) - old_base));
  // The old mapping's accessible bytes move (mremap, no copy), growing into the
  // whole new range but its guard page, so the block stays one mapping, with
  // the old mapping's advice. In 2 MiB pages (advised: a block that started at
  // 2 MiB or more), only its whole 2 MiB chunks move; the partial chunk after
  // them (a mapping made by MapHuge has one; one that realloc made runs to a
  // chunk's end, but for the page-sized fallback) is copied. Moved, its 4 KiB
  // pages would sit in a 2 MiB range of the new mapping, which then could never
  // be a 2 MiB page: 512 faults later, against one memcpy of less than 2 MiB now
  // (of pages the block's writes have faulted in). In 4 KiB pages everything
  // moves: a copy would fault in every page it writes. The old guard page goes
  // back with what does not move, so the move takes one mapping and no guard
  // has to come down first.
  const size_t accessible = old_len - kHugeGuardSize;
  const bool huge_pages = config::HugePagesEnabled() && accessible >= kSuperSlabSize;
  const size_t whole = huge_pages ? accessible & ~(kSuperSlabSize - 1) : accessible;
  // The new range's registry leaves are mapped first, so registering it once the
  // pages have moved cannot fail; on failure here nothing has moved and the old
  // block is intact. (Registered only after the move: until then the range may
  // become a hole that another thread maps and registers, see below.)
  if (!GuardTail(new_base, needed) || !registry::PrepareRange(new_base, needed)) {
    platform::Release(new_base, needed);
    errno = ENOMEM;
    return nullptr;
  }
  // Unregister the old range while it is still mapped: once mremap has moved the
  // pages, another thread's mmap may get that range and register it, and a late
  // Unregister would erase that thread's entries.
  registry::Unregister(old_base, old_len);
  const platform::MoveResult move =
      platform::MovePages(old_base, whole, new_base, needed - kHugeGuardSize);
  if (move != platform::MoveResult::kMoved) {
    registry::Register(old_base, old_len, h);  // leaves exist: cannot fail
    if (move == platform::MoveResult::kRefused) {
      platform::Release(new_base, needed);
    } else if (kHugeGuardSize != 0) {
      // What stands in the moved range may be another thread's: left alone. The
      // guard page past it was never part of the move, so it is still ours.
      platform::Release(new_base + needed - kHugeGuardSize, kHugeGuardSize);
    }
    errno = ENOMEM;
    return nullptr;
  }
  registry::Register(new_base, needed, moved);  // leaves exist: cannot fail
  // (The new range is not advised here: a block that started under 2 MiB grows
  // in 4 KiB pages, as its room would otherwise be resident in 2 MiB steps from
  // its first touch; realloc_grow, buffers of 1..4 MiB growing by an eighth:
  // peak RSS 52.8 -> 69.1 MiB.)
  if (whole != accessible) {
    memcpy(new_base + whole, old_base + whole, accessible - whole);
  }
  if (whole != old_len) platform::Release(old_base + whole, old_len - whole);
  {
    platform::SpinLockHolder hold(&g_lock);
    NoteReleasedLocked(old_base + offset);  // a stale free of the old address
  }
  moved->map_base = new_base;
  moved->map_len = needed;
  moved->user = new_base + offset;
  moved->size = new_size;
  g_huge_bytes.fetch_add(needed - old_len, std::memory_order_relaxed);
  Count(Counter::k_huge_remapped);
  return moved->user;
}

HugeStats GetHugeStats() {
  HugeStats s;
  s.huge_bytes = g_huge_bytes.load(std::memory_order_relaxed);
  s.huge_mappings = g_huge_count.load(std::memory_order_relaxed);
  platform::SpinLockHolder hold(&g_lock);
  s.cached_huge = g_cache.size();
  s.cached_huge_bytes = g_cached_bytes;
  return s;
}

// Fork handlers hold the lock across fork(), from Prepare to the After
// handlers: beyond what -Wthread-safety follows.
void PrepareForkHuge() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Lock(); }
void ParentAfterForkHuge() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Unlock(); }
void ChildAfterForkHuge() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.ResetAfterFork(); }

}  // namespace hakmem
