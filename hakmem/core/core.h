// core: hakmem's allocation routing and lifecycle, under the C API.
//
// Owns: size -> lane routing for malloc, calloc, realloc and the aligned
// allocators (tiny and pool through the thread cache, large runs through the
// heap, huge mappings through superslab); lazy initialisation (options, the
// thread-exit key, fork handlers) that is safe before main, inside dlsym, during
// thread exit and in a fork child; the thread-exit hand-back of caches and heap;
// Errors follow POSIX/glibc: ENOMEM, EINVAL, a failed realloc
// leaves the old block intact.
// Thread-safety: any thread, any time. Called by: //hakmem:hakmem (hak_* API) and
// wrappers (malloc & co), which inline the fast paths below.
#ifndef HAKMEM_CORE_CORE_H_
#define HAKMEM_CORE_CORE_H_

#include <cstddef>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/free_dispatch/free_dispatch.h"
#include "hakmem/profiler/profiler.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/stats/stats.h"
#include "hakmem/thread_cache/thread_cache.h"

namespace hakmem::core {

// Everything the inline fast path does not serve: first use of a thread, empty
// caches, large and huge sizes (and, with the heap profiler on, every size).
// Sets errno = ENOMEM on failure.
HAKMEM_ALLOC_ENTRY ABSL_ATTRIBUTE_NOINLINE void* MallocSlow(size_t size);

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* Malloc(size_t size) {
  // The class as its list offset (thread_cache.h): no shift to index the list
  // and the counter.
  uintptr_t list_offset;
  if (ABSL_PREDICT_TRUE(size <= kTinyMax)) {
    list_offset = thread_cache::TinyListOffset(size);
  } else if (size <= kPoolMax) {
    list_offset = thread_cache::PoolListOffset(size);
  } else {
    return MallocSlow(size);
  }
  if (void* p = thread_cache::TryAllocAt(list_offset); ABSL_PREDICT_TRUE(p != nullptr)) {
    thread_cache::CountAllocAt(list_offset);
    return p;
  }
  return MallocSlow(size);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Free(void* ptr) {
  free_dispatch::Free(ptr, free_dispatch::Call::kFree);
}

// calloc's sizes, the product overflowing included, that its fast path does not
// serve. Sets errno = ENOMEM on failure.
HAKMEM_ALLOC_ENTRY ABSL_ATTRIBUTE_NOINLINE void* CallocSlow(size_t count, size_t size);

// Programs that zero most of what they allocate (ruby's objects, C libraries'
// structs) call calloc about as often as malloc: it takes a cached block as
// malloc does and zeroes the bytes asked for.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* Calloc(size_t count, size_t size) {
  size_t total;
  if (ABSL_PREDICT_TRUE(!__builtin_mul_overflow(count, size, &total) && total <= kPoolMax)) {
    const uintptr_t list_offset = total <= kTinyMax ? thread_cache::TinyListOffset(total)
                                                    : thread_cache::PoolListOffset(total);
    if (void* p = thread_cache::TryAllocAt(list_offset); ABSL_PREDICT_TRUE(p != nullptr)) {
      thread_cache::CountAllocAt(list_offset);
      return memset(p, 0, total);
    }
  }
  return CallocSlow(count, size);
}

// The allocation entry points are HAKMEM_ALLOC_ENTRY: the heap profiler's stack
// walk skips their frames.
// realloc of a block (`ptr` not nullptr).
HAKMEM_ALLOC_ENTRY ABSL_ATTRIBUTE_NOINLINE void* ReallocBlock(void* ptr, size_t size);
// Programs whose one allocation hook is realloc (lua's default allocator calls
// realloc(nullptr, n) for every new object) get malloc's fast path: through the
// whole of realloc it took 34 instructions (gcc, 64 bytes; now 15,
// fast_path.golden).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* Realloc(void* ptr, size_t size) {
  if (ptr == nullptr) return Malloc(size);
  return ReallocBlock(ptr, size);
}
HAKMEM_ALLOC_ENTRY void* ReallocArray(void* ptr, size_t count, size_t size);
// `alignment` is a power of two; nullptr with errno ENOMEM when out of memory.
HAKMEM_ALLOC_ENTRY void* AlignedAlloc(size_t alignment, size_t size);
HAKMEM_ALLOC_ENTRY int PosixMemalign(void** out, size_t alignment, size_t size);
HAKMEM_ALLOC_ENTRY void* Memalign(size_t alignment, size_t size);  // glibc memalign semantics
HAKMEM_ALLOC_ENTRY void* AlignedAllocC11(size_t alignment, size_t size);  // C11 aligned_alloc
HAKMEM_ALLOC_ENTRY void* Valloc(size_t size);
HAKMEM_ALLOC_ENTRY void* Pvalloc(size_t size);

// Flushes the caller's thread caches and gives back every empty superslab and
// cached huge mapping now (malloc_trim, hak_purge); true if anything went back.
bool Purge();

// The program's main is about to run (the wrappers' __libc_start_main): the
// background release may start from now on (hakmem/heap).
void NoteMainStarted();

// Where the at-exit report goes: a copy of stderr taken at initialisation when
// HAKMEM_STATS or HAKMEM_SIZE_HIST is set (programs such as coreutils close fd 2
// before exit), else 2.
int ReportFd();

}  // namespace hakmem::core

// The C library's allocation functions, listed once: hakmem.cc defines each as
// hak_<name> (the API of hakmem.h), wrappers.cc as <name> (replacing the C
// library's), both forwarding to the call given here.
// X(return type, name, parameters, forwarding call). malloc_usable_size is not
// here: glibc declares its parameter `void*`, hak_malloc_usable_size `const void*`.
#define HAKMEM_ENTRY_POINTS(X)                                                                 \
  X(void*, malloc, (size_t size), hakmem::core::Malloc(size))                                  \
  X(void, free, (void* ptr), hakmem::core::Free(ptr))                                          \
  X(void*, calloc, (size_t count, size_t size), hakmem::core::Calloc(count, size))             \
  X(void*, realloc, (void* ptr, size_t size), hakmem::core::Realloc(ptr, size))                \
  X(void*, reallocarray, (void* ptr, size_t count, size_t size),                               \
    hakmem::core::ReallocArray(ptr, count, size))                                              \
  X(int, posix_memalign, (void** out, size_t alignment, size_t size),                          \
    hakmem::core::PosixMemalign(out, alignment, size))                                         \
  X(void*, aligned_alloc, (size_t alignment, size_t size),                                     \
    hakmem::core::AlignedAllocC11(alignment, size))                                            \
  X(void*, memalign, (size_t alignment, size_t size), hakmem::core::Memalign(alignment, size)) \
  X(void*, valloc, (size_t size), hakmem::core::Valloc(size))                                  \
  X(void*, pvalloc, (size_t size), hakmem::core::Pvalloc(size))

#endif  // HAKMEM_CORE_CORE_H_
