// tiny_tls: the per-thread front end of the tiny lane (classes 0..31, 0..1 KiB).
//
// Owns: the calling thread's cache of free tiny blocks, one list per class, in
// constant-initialised initial-exec TLS. Allocation pops a list and a local free
// pushes one: no atomics, no locks, a handful of instructions. An empty list is
// refilled with a batch from the heap (its slabs, then remote frees, then partial
// slabs, then a new slab); a full list gives a batch back.
// Thread-safety: the caller's own TLS only; the Heap* passed in is the caller's.
// Called by: free_dispatch (local free), core (malloc).
#ifndef HAKMEM_TINY_TLS_TINY_TLS_H_
#define HAKMEM_TINY_TLS_TINY_TLS_H_

#include "absl/base/attributes.h"
#include "hakmem/heap/heap.h"
#include "hakmem/size_class/size_class.h"

namespace hakmem::tiny_tls {

using TinyCaches = ClassCaches<0, kNumTinyClasses>;

// Starts as empty lists (the sentinel state): the first allocation of each class
// takes the refill path, which is where a thread's heap is attached. __thread
// rather than thread_local: the compiler then calls no TLS init wrapper.
extern __thread TinyCaches tls_tiny HAKMEM_TLS;

// A cached block of `cls`, or nullptr (then call Refill).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* TryAlloc(int cls) { return tls_tiny.Pop(cls); }

// The list of `cls` is empty: a block of its carved range, or of a refill from
// `heap` (nullptr: out of memory); `*zeroed` says whether it reads as zero.
ABSL_ATTRIBUTE_NOINLINE void* Refill(Heap* heap, int cls, bool* zeroed);

// Caches a block of `cls` freed by its owner; false when the list is full.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool TryFree(int cls, void* block) {
  return tls_tiny.Push(cls, block);
}

// The list of `cls` is full: gives a batch back to `heap`'s slabs, keeps `block`.
ABSL_ATTRIBUTE_NOINLINE void Flush(Heap* heap, int cls, void* block);

// Whether `block` is cached now (a search of the class's list: slow path only).
bool IsCached(int cls, const void* block);

// Heap profiling: this thread's caches never hold a block (see profiler.h).
void SetUncached();

// Thread exit: every cached block goes back to the slabs.
void FlushAll(Heap* heap);

}  // namespace hakmem::tiny_tls

#endif  // HAKMEM_TINY_TLS_TINY_TLS_H_
