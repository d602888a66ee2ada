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

// Caches a valid block of `slab` (a size class's) that the calling thread's heap
// owns.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CacheOwnBlock(const SlabMeta* slab, void* ptr) {
  const uint32_t list_offset = slab->list_offset;  // (read once: the count is a store)
  thread_cache::CountLocalFreeAt(list_offset);
  if (ABSL_PREDICT_FALSE(!thread_cache::TryFreeAt(list_offset, ptr))) {
    thread_cache::Flush(tls_heap, slab->cls, ptr);
  }
}

// Frees `ptr`, a pointer into `ss`, a superslab the calling thread's heap owns.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeInOwnSuperSlab(SuperSlab* ss, void* ptr, Call call) {
  SlabMeta* slab = SlabOf(ss, ptr);
  // A block start whose word 1 is not the freed-block tag: a live block (a block
  // with the tag goes to the slow path, which looks for it in its lists).
  // (IsBlockStart also proves that `cls` is a size class: it fails in large runs
  // and free units.)
  // Hardened builds: the live map decides (TakeLive).
  if (ABSL_PREDICT_TRUE(IsBlockStart(slab, ptr) && !LooksFree(ptr) && TakeLive(ptr))) {
    return CacheOwnBlock(slab, ptr);
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
// up to kRemoteBatchBlocks blocks each, dealt over the owner's remote-queue lanes
// in turn) and a batch goes over with one compare-and-swap per lane when it is
// full, when its slot is needed for another owner, when the thread exits (a key
// destructor of free_dispatch's own, so a thread that never allocates hands its
// batches over too) and on FlushRemoteFrees. Hardened
// builds push every block at once (a block waiting in a batch is on no list its
// owner can search for a double free).
inline constexpr int kRemoteBatchSlots = 4;
inline constexpr uint32_t kRemoteBatchBlocks = 64;

// Hands the calling thread's waiting batches to their owners (trim, tests).
void FlushRemoteFrees();
// Blocks the calling thread holds in batches now (tests).
uint32_t PendingRemoteFrees();

}  // namespace hakmem::free_dispatch

#endif  // HAKMEM_FREE_DISPATCH_FREE_DISPATCH_H_
