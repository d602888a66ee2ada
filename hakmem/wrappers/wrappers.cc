// wrappers: the only code in hakmem that defines the C library's allocation
// functions and C++'s operator new/delete. Each is a thin forwarder to core, whose
// fast paths inline here. Thread-safety and initialisation: those of core (lazy,
// safe before main, inside dlsym, during thread exit and after fork).
// Linked by: //hakmem:malloc (cc_binary malloc attribute) and libhakmem.so.
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>

#include <new>

#include "hakmem/core/core.h"
#include "hakmem/free_dispatch/free_dispatch.h"
#include "hakmem/hakmem.h"
#include "hakmem/profiler/profiler.h"

// hakmem builds with -fvisibility=hidden: these are the symbols it exports (as
// hakmem.h's HAK_API). They sit in the section the heap profiler's stack walk
// skips (placement only).
#define HAKMEM_EXPORT HAK_API HAKMEM_ALLOC_ENTRY

namespace {

using hakmem::core::Free;
using hakmem::core::Malloc;

// operator new's failure path: the new-handler loop of [new.delete.single].
HAKMEM_ALLOC_ENTRY ABSL_ATTRIBUTE_NOINLINE void* NewSlow(size_t size, size_t alignment,
                                                         bool nothrow) {
  for (;;) {
    void* p = alignment == 0 ? Malloc(size) : hakmem::core::AlignedAlloc(alignment, size);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (const std::bad_alloc&) {
        return nullptr;
      }
    } else {
      handler();
    }
  }
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* New(size_t size) {
  void* p = Malloc(size);
  return ABSL_PREDICT_TRUE(p != nullptr) ? p : NewSlow(size, 0, false);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* NewAligned(size_t size, std::align_val_t alignment) {
  void* p = hakmem::core::AlignedAlloc(static_cast<size_t>(alignment), size);
  return ABSL_PREDICT_TRUE(p != nullptr) ? p : NewSlow(size, static_cast<size_t>(alignment), false);
}

// (nullptr too: free_dispatch::Free's slow path returns.)
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Delete(void* ptr) {
  hakmem::free_dispatch::Free(ptr, hakmem::free_dispatch::Call::kDelete);
}

}  // namespace

extern "C" {

// malloc, free, calloc, ... (core.h's list; hakmem.cc defines the same functions
// as the hak_* API).
#define HAKMEM_DEFINE_ENTRY_POINT(type, name, params, call) \
  HAKMEM_EXPORT type name params { return call; }
HAKMEM_ENTRY_POINTS(HAKMEM_DEFINE_ENTRY_POINT)
#undef HAKMEM_DEFINE_ENTRY_POINT

HAKMEM_EXPORT size_t malloc_usable_size(void* ptr) {
  return hakmem::free_dispatch::UsableSize(ptr);
}

// glibc's malloc_trim would trim only the C library's own arena: ours gives every
// empty cached superslab and huge mapping back to the OS. Returns 1 if it did.
HAKMEM_EXPORT int malloc_trim(size_t) { return hakmem::core::Purge() ? 1 : 0; }

// glibc's introspection would describe the C library's own (unused) arena: these
// describe hakmem's memory (hakmem/introspection.cc).
HAKMEM_EXPORT struct mallinfo2 mallinfo2(void) { return hak_mallinfo2(); }
HAKMEM_EXPORT struct mallinfo mallinfo(void) { return hak_mallinfo(); }
HAKMEM_EXPORT void malloc_stats(void) { hak_malloc_stats(); }
HAKMEM_EXPORT int malloc_info(int options, FILE* stream) {
  return hak_malloc_info(options, stream);
}
HAKMEM_EXPORT int mallopt(int param, int value) { return hak_mallopt(param, value); }

}  // extern "C"

HAKMEM_EXPORT void* operator new(size_t size) { return New(size); }
HAKMEM_EXPORT void* operator new[](size_t size) { return New(size); }
HAKMEM_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept {
  void* p = Malloc(size);
  return p != nullptr ? p : NewSlow(size, 0, true);
}
HAKMEM_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  void* p = Malloc(size);
  return p != nullptr ? p : NewSlow(size, 0, true);
}
HAKMEM_EXPORT void* operator new(size_t size, std::align_val_t alignment) {
  return NewAligned(size, alignment);
}
HAKMEM_EXPORT void* operator new[](size_t size, std::align_val_t alignment) {
  return NewAligned(size, alignment);
}
HAKMEM_EXPORT void* operator new(size_t size, std::align_val_t alignment,
                                 const std::nothrow_t&) noexcept {
  void* p = hakmem::core::AlignedAlloc(static_cast<size_t>(alignment), size);
  return p != nullptr ? p : NewSlow(size, static_cast<size_t>(alignment), true);
}
HAKMEM_EXPORT void* operator new[](size_t size, std::align_val_t alignment,
                                   const std::nothrow_t&) noexcept {
  void* p = hakmem::core::AlignedAlloc(static_cast<size_t>(alignment), size);
  return p != nullptr ? p : NewSlow(size, static_cast<size_t>(alignment), true);
}

HAKMEM_EXPORT void operator delete(void* ptr) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete[](void* ptr) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete(void* ptr, const std::nothrow_t&) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete[](void* ptr, const std::nothrow_t&) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete(void* ptr, size_t) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete[](void* ptr, size_t) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete(void* ptr, std::align_val_t) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete[](void* ptr, std::align_val_t) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete(void* ptr, std::align_val_t, const std::nothrow_t&) noexcept {
  Delete(ptr);
}
HAKMEM_EXPORT void operator delete[](void* ptr, std::align_val_t, const std::nothrow_t&) noexcept {
  Delete(ptr);
}
HAKMEM_EXPORT void operator delete(void* ptr, size_t, std::align_val_t) noexcept { Delete(ptr); }
HAKMEM_EXPORT void operator delete[](void* ptr, size_t, std::align_val_t) noexcept { Delete(ptr); }
