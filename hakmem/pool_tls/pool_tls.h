// pool_tls: the per-thread front end of the pool lane (classes 32..87,
// 1 KiB .. 128 KiB).
//
// Owns: the calling thread's cache of free pool blocks, one list per class, in
// constant-initialised initial-exec TLS; batch carving from the heap's slabs (half
// a cache per batch, up to 256 KiB cached per class) and, in prewarm builds, one
// batch of each common class carved when a thread attaches its heap.
// On by default. With --define hakmem_pool_tls=off there is no cache: every pool
// allocation and free goes straight to the heap's slabs (A/B runs only; counted
// as fallback_pool_uncached).
// Thread-safety: the caller's own TLS only; the Heap* passed in is the caller's.
// Called by: free_dispatch (local free), core (malloc, thread attach and exit).
#ifndef HAKMEM_POOL_TLS_POOL_TLS_H_
#define HAKMEM_POOL_TLS_POOL_TLS_H_

#include "absl/base/attributes.h"
#include "hakmem/config/build_config.h"
#include "hakmem/heap/heap.h"
#include "hakmem/size_class/size_class.h"

namespace hakmem::pool_tls {

using PoolCaches = ClassCaches<kFirstPoolClass, kNumPoolClasses>;

// Starts as empty lists: the first allocation of each class takes Refill.
// __thread rather than thread_local: no TLS init wrapper on access.
extern __thread PoolCaches tls_pool HAKMEM_TLS;

// A cached block of pool class `cls`, or nullptr (then call Refill).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* TryAlloc(int cls) {
  if constexpr (!config::kPoolTls) return nullptr;
  return tls_pool.Pop(cls);
}

// The list of `cls` is empty: a block of its carved range, or of a refill from
// `heap` (nullptr: out of memory); `*zeroed` says whether it reads as zero.
ABSL_ATTRIBUTE_NOINLINE void* Refill(Heap* heap, int cls, bool* zeroed);

// Caches a block freed by its owner; false when it must go to Flush.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool TryFree(int cls, void* block) {
  if constexpr (!config::kPoolTls) return false;
  return tls_pool.Push(cls, block);
}

// Gives a batch back to `heap`'s slabs and keeps `block` (or, without caches,
// returns `block` itself to its slab).
ABSL_ATTRIBUTE_NOINLINE void Flush(Heap* heap, int cls, void* block);

// Whether `block` is cached now (a search of the class's list: slow path only).
bool IsCached(int cls, const void* block);

// A new thread's caches get one batch of each class up to 8 KiB (prewarm builds).
void Prewarm(Heap* heap);

// Heap profiling: this thread's caches never hold a block (see profiler.h).
void SetUncached();

// Thread exit: every cached block goes back to the slabs.
void FlushAll(Heap* heap);

}  // namespace hakmem::pool_tls

#endif  // HAKMEM_POOL_TLS_POOL_TLS_H_
