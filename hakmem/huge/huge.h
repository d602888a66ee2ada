// huge: the mappings of blocks above 1 MiB (and of alignments above it).
//
// Owns: one mapping per huge block, superslab-aligned, with a header page before
// the user block (and in hardened builds a guard page after it), registered in
// the registry; the cache of freed mappings (newest first; a block no cached
// mapping fits grows the largest smaller one) and the ring of
// recently released user pointers (a stale free of one is reported, not handed
// to the C library); growth by moving whole 2 MiB pages (mremap), not copying them. The policy of
// when cached mappings go back to the OS (the purge delay, HAKMEM_RETAIN_MB,
// shared with the empty superslabs) is superslab's, which calls the cache
// functions here; the block-level entry points HugeAlloc and HugeFree are
// superslab's too (they fall back on its reservations and apply its cap).
// Thread-safety: any thread; the cache and the ring's writer under this box's
// spin lock (taken after superslab's lock, never before it), WasReleasedHuge
// lock-free. Called by: superslab (cache policy, HugeAlloc/HugeFree),
// free_dispatch and core (headers, usable size, realloc), //hakmem (stats).
#ifndef HAKMEM_HUGE_HUGE_H_
#define HAKMEM_HUGE_HUGE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "hakmem/config/build_config.h"
#include "hakmem/platform/platform.h"

namespace hakmem {

// What the registry points to: the first bytes of a huge mapping's header or of a
// superslab (superslab.h), told apart by `magic`.
struct ChunkHeader {
  uint32_t magic;
  // The heap that owns a superslab; always nullptr for a huge mapping, so the
  // free fast path's "owner == my heap" test sends huge blocks to the slow path.
  std::atomic<void*> owner;
};

inline constexpr uint32_t kHugeMagic = 0x48554745;  // "HUGE"
inline constexpr size_t kHugeHeaderSize = 4096;     // the page before the user block
// Hardened builds end every huge mapping with a guard page (PROT_NONE, past the
// usable size), so an overflow off a huge block faults before it reaches what
// follows (another mapping's header, a superslab's).
inline constexpr size_t kHugeGuardSize = config::kHardened ? platform::kPageSize : 0;
// Beyond these a request fails with ENOMEM (as glibc's does when the OS refuses):
// 64 TiB is half the user address space, and an alignment above 1 TiB would need
// a transient reservation of more than that.
inline constexpr size_t kMaxHugeSize = size_t{1} << 46;
inline constexpr size_t kMaxAlignment = size_t{1} << 40;

struct HugeHeader : ChunkHeader {
  char* map_base;
  size_t map_len;
  char* user;
  size_t size;  // requested bytes
  bool cached;
  uint64_t cached_at_ns;
  HugeHeader* next;  // in the huge cache
  HugeHeader* prev;
};

// Whether `p` lies in h's mapping. The registry maps whole 2 MiB chunks and a
// huge mapping ends on a page, so the chunk of its last page may also hold a
// foreign mapping, whose pointers read h's header.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool InHugeMapping(const HugeHeader* h, const void* p) {
  const char* c = static_cast<const char*>(p);
  return c >= h->map_base && c < h->map_base + h->map_len;
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline HugeHeader* HugeHeaderOf(const void* user) {
  return reinterpret_cast<HugeHeader*>(const_cast<char*>(static_cast<const char*>(user)) -
                                       kHugeHeaderSize);
}

// Where a block of `size` bytes aligned to `alignment` starts in its mapping
// (after the header page, at the alignment when it is below a superslab, else one
// superslab in), and the mapping's length (whole pages: address space is what an
// RLIMIT_AS counts; the guard page included).
struct HugeLayout {
  size_t offset;
  size_t length;
};
HugeLayout LayoutOfHuge(size_t size, size_t alignment);

// A cached mapping with room for `size` bytes past its user pointer, at most
// kHugeReuseRoom times the length `layout` needs (best fit), taken out of the
// cache; else the largest cached one smaller than that at the default offset,
// taken out and grown to it by moving its pages (HugeRealloc); nullptr if none
// (or the OS refused the growth: the mapping stays cached). Its contents are
// stale. Only for blocks at the default offset (no alignment above a page).
void* ReuseCachedHuge(size_t size, const HugeLayout& layout);
// How roomy a cached mapping a huge block may take. Its pages are resident
// already, so a roomy one costs no more memory than it held in the cache, where
// a fresh mapping beside it would: large_huge's peak went down on each of 12
// seeds from 4x to 8x (by 2-16 MiB), but up from 8x to 32x (one block then
// holds a mapping a bigger one needed next).
inline constexpr size_t kHugeReuseRoom = 8;
// A fresh mapping for the block (registered, advised huge pages when they are
// on); nullptr when the OS refuses. `base`, when not nullptr, is address space to
// use instead of a new mapping (superslab-aligned, `layout.length` bytes).
void* MapHuge(size_t size, size_t alignment, const HugeLayout& layout, char* base);
// Puts a freed block's mapping at the head of the cache, stamped `now_ns`.
void CacheHuge(HugeHeader* h, uint64_t now_ns);

// The cache, for superslab's purge policy (each call takes the lock).
uint64_t CachedHugeBytes();
// cached_at_ns of the oldest cached mapping, UINT64_MAX when none.
uint64_t OldestCachedHugeNs();
// Unmaps the oldest cached mapping; false when none.
bool ReleaseOldestCachedHuge();
// Unmaps the cached mappings cached `delay_ns` or more before `now_ns` (all of
// them with `force`); whether any went.
bool ReleaseCachedHuge(uint64_t now_ns, uint64_t delay_ns, bool force);

// Whether `ptr` (which the registry does not know) was the user pointer of one
// of the last 64 huge blocks whose mappings went back to the OS, or that realloc
// moved to another mapping: a stale free.
// Lock-free; for the foreign-pointer path only.
bool WasReleasedHuge(const void* ptr);
size_t HugeUsableSize(const HugeHeader* h);
// Resizes in place or by moving pages to a bigger mapping (a partial last 2 MiB,
// and a mapping under 2 MiB, are copied); returns the new user pointer, or nullptr
// (the old block intact, errno ENOMEM) when the OS refuses.
void* HugeRealloc(HugeHeader* h, size_t new_size);

struct HugeStats {
  uint64_t huge_bytes;         // mapped, live or cached
  uint64_t huge_mappings;      // live or cached
  uint64_t cached_huge;        // in the cache now
  uint64_t cached_huge_bytes;  // mapped bytes of the cache
};
HugeStats GetHugeStats();

void PrepareForkHuge();
void ParentAfterForkHuge();
void ChildAfterForkHuge();

}  // namespace hakmem

#endif  // HAKMEM_HUGE_HUGE_H_
