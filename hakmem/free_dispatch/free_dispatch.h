// free_dispatch: takes any pointer to its owner.
//
// Owns: the free() routing and the validation of pointers handed to free,
// realloc and malloc_usable_size. Registry -> superslab -> slab -> a push on the
// caller's thread cache when the caller owns the slab (no atomics), a batched push
// on the owner heap's remote queue otherwise; huge mappings go to the huge cache;
// pointers the registry does not know are the C library's (handed back with
// __libc_free) unless they are plainly wrong. What is invalid — an interior
// pointer, a block freed twice (a slab block whose word 1 holds the freed-block
// tag, confirmed by its owner's search of its lists, at once from another thread),
// a stack address, a misaligned
// or never-allocated address — gets one line on stderr naming the address, the reason and the call,
// then abort() (HAKMEM_INVALID_FREE=warn: the line, and the call returns). Thread-safety: any
// thread; it touches only the caller's TLS, slabs its heap owns, and lock-free remote queues.
// Called by: core, wrappers (through core).
#ifndef HAKMEM_FREE_DISPATCH_FREE_DISPATCH_H_
#define HAKMEM_FREE_DISPATCH_FREE_DISPATCH_H_

#include <cstddef>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/config/build_config.h"
#include "hakmem/heap/heap.h"
#include "hakmem/registry/registry.h"
#include "hakmem/stats/stats.h"
#include "hakmem/superslab/superslab.h"
#include "hakmem/thread_cache/thread_cache.h"

namespace hakmem::free_dispatch {

// The API call a pointer came through, for diagnostics.
enum class Call : uint8_t { kFree, kRealloc, kUsableSize, kDelete };
const char* CallName(Call call);

// Every case other than "a valid block of a slab this thread owns".
ABSL_ATTRIBUTE_NOINLINE void FreeSlow(void* ptr, void* header, Call call);

// Caches a valid block of the size class whose list is at `list_offset` (from
// the unit's entry or SlabMeta::list_offset, read once by the caller: the count
// is a store), a block the calling thread's heap owns.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CacheOwnBlock(uintptr_t list_offset, void* ptr) {
  thread_cache::CountLocalFreeAt(list_offset);
  if (ABSL_PREDICT_FALSE(!thread_cache::TryFreeAt(list_offset, ptr))) {
    thread_cache::Flush(tls_heap, static_cast<int>(list_offset / kClassListStride), ptr);
  }
}

// Whether `ptr`, a pointer into `ss`, a superslab the calling thread's heap
// owns, is a block start in a size class's slab; if so, `*list_offset` is the
// class's. Reads the unit's entry (one line of the header, UnitEntry), not its
// SlabMeta, and the class's DivMagic from the thread's cache. (At kNoListOffset,
// large runs' and free units', the multiplier is 0: the test fails.)
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool IsOwnBlockStart(SuperSlab* ss, const void* ptr,
                                                         uintptr_t* list_offset) {
#if HAKMEM_FS_ASM
  // As asm: gcc 12 spends three more instructions on the same steps (an `lea`
  // for the entry, register copies, and a copy for the slow path hoisted above
  // the branch), and no compiler multiplies and compares with the %fs-relative
  // multiplier as memory operands.
  constexpr int kEntryShift = __builtin_ctzll(kUnitSize / sizeof(UnitEntry));
  constexpr uint32_t kEntryMask = (kUnitsPerSuperSlab * kUnitMapColors - 1) * sizeof(UnitEntry);
  uintptr_t at, offset, list;
  asm goto(
      "movq %[p], %[at]\n\t"
      "shrq %[shift], %[at]\n\t"
      "andl %[entry_mask], %k[at]\n\t"
      "movzwl %c[list_at](%[ss],%[at]), %k[list]\n\t"
      "movl %k[p], %k[offset]\n\t"
      "addl %c[phase_at](%[ss],%[at]), %k[offset]\n\t"  // GridOffset
      "imulq %%fs:%c[magic_at](%[tls],%[list]), %[offset]\n\t"
      "cmpq %%fs:%c[magic_at](%[tls],%[list]), %[offset]\n\t"  // IsMultiple
      "jae %l[not_block_start]"
      : [at] "=&r"(at), [offset] "=&r"(offset), [list] "=&r"(list)
      : [p] "r"(ptr), [ss] "r"(ss), "m"(*ss),
        [tls] "r"(platform::ThreadOffset(thread_cache::tls_cache)), [shift] "i"(kEntryShift),
        [entry_mask] "i"(kEntryMask), [list_at] "i"(kUnitMapAt + offsetof(UnitEntry, list_offset)),
        [phase_at] "i"(kUnitMapAt + offsetof(UnitEntry, phase)),
        [magic_at] "i"(thread_cache::kDivMagicAt)
      : "cc"
      : not_block_start);
  *list_offset = list;
  return true;
not_block_start:
  return false;
#else
  const UnitEntry& unit = UnitEntryOf(ss, ptr);
  *list_offset = unit.list_offset;
  return IsMultiple(GridOffset(unit, ptr), thread_cache::DivMagicAt(*list_offset));
#endif
}

// Frees `ptr`, a pointer into `ss`, a superslab the calling thread's heap owns.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeInOwnSuperSlab(SuperSlab* ss, void* ptr, Call call) {
  // A block start whose word 1 is not the freed-block tag: a live block (a block
  // with the tag goes to the slow path, which looks for it in its lists).
  // Hardened builds: the live map decides (TakeLive).
  uintptr_t list_offset;
  if (ABSL_PREDICT_TRUE(IsOwnBlockStart(ss, ptr, &list_offset) && !LooksFree(ptr) &&
                        TakeLive(ptr))) {
    return CacheOwnBlock(list_offset, ptr);
  }
  FreeSlow(ptr, ss, call);
}

// Free of a pointer outside the superslabs of the thread's owned-superslab
// slots: the registry's answer and the owner test; a superslab the thread owns
// takes its slot. (Out of line: the fast path then has one path, and no
// register copies to join two.)
ABSL_ATTRIBUTE_NOINLINE void FreeViaRegistry(void* ptr, Call call);

// Frees `ptr` (nullptr too: its superslab is never owned, and FreeSlow returns).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Free(void* ptr, Call call) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(ptr) & ~(kSuperSlabSize - 1);
  if (ABSL_PREDICT_FALSE(!thread_cache::tls_cache.hot.Owns(base))) {
    return FreeViaRegistry(ptr, call);
  }
  // A superslab this thread owns: no registry lookup, no owner test.
  FreeInOwnSuperSlab(reinterpret_cast<SuperSlab*>(base), ptr, call);
}

enum class Kind : uint8_t { kForeign, kBlock, kLarge, kHuge, kInvalid };

struct Found {
  Kind kind;
  size_t usable;  // bytes the caller may use (0 for kForeign and kInvalid)
};

// What `ptr` (not nullptr) is, given the registry's answer for it (`header`),
// without reporting anything: the one pointer classifier that free, realloc,
// malloc_usable_size and hak_owns share. `reason` says why a kInvalid pointer is
// invalid (nullptr otherwise); a huge block sitting in the huge cache is invalid
// to free with reason kCachedHugeBlock.
inline constexpr char kCachedHugeBlock[] = "double free of a huge block";
struct Classified {
  Kind kind;
  size_t usable;
  const char* reason;
};
Classified Classify(const void* ptr, void* header);

// Validates `ptr` (not nullptr) as the start of a live block. Reports an invalid
// pointer as Free would (and aborts unless HAKMEM_INVALID_FREE=warn).
Found Find(const void* ptr, Call call);
// The same, with the registry's answer for `ptr` already in hand.
Found FindIn(const void* ptr, void* header, Call call);

// malloc_usable_size: hakmem's blocks, the C library's pointers, 0 for nullptr.
size_t UsableSize(const void* ptr);

// Whether `ptr` is the start of a hakmem block (live, or a huge block in the huge
// cache; a slab block in a thread cache counts as live). Never reports.
bool Owns(const void* ptr);

// Remote frees go to their owners in batches: a block freed into another
// thread's heap waits in the freeing thread's buffer (kRemoteBatchSlots owners,
// up to kRemoteBatchBlocks blocks each, their addresses in a batch record from
// the records' pool: heap.h's TakeRemoteNodes) and a batch goes over with one
// compare-and-swap when it is full, when its slot is needed for another owner,
// when the thread exits (a key destructor of free_dispatch's own, so a thread
// that never allocates hands its batches over too) and on FlushRemoteFrees. No
// link is written into the blocks, so none can be forged there: the owner reads
// the addresses from the record. (When no record can be made, a block is pushed
// on its own, linked through its first word, which the owner checks.) Hardened
// builds push every block at once (a block waiting in a batch is on no list its
// owner can search for a double free).
inline constexpr int kRemoteBatchSlots = 4;
inline constexpr uint32_t kRemoteBatchBlocks = kRemoteNodeBlocks;

// Hands the calling thread's waiting batches to their owners (trim, tests).
void FlushRemoteFrees();
// Blocks the calling thread holds in batches now (tests).
uint32_t PendingRemoteFrees();

}  // namespace hakmem::free_dispatch

#endif  // HAKMEM_FREE_DISPATCH_FREE_DISPATCH_H_
