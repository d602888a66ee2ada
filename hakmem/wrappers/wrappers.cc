// wrappers: the only code in hakmem that defines the C library's allocation
// functions and C++'s operator new/delete. Each is a thin forwarder to core, whose
// fast paths inline here. Thread-safety and initialisation: those of core (lazy,
// safe before main, inside dlsym, during thread exit and after fork).
// Linked by: //hakmem:malloc (cc_binary malloc attribute) and libhakmem.so.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <new>

#include "hakmem/core/core.h"
#include "hakmem/free_dispatch/free_dispatch.h"
#include "hakmem/hakmem.h"
#include "hakmem/platform/platform.h"
#include "hakmem/profiler/profiler.h"

// hakmem builds with -fvisibility=hidden: these are the symbols it exports (as
// hakmem.h's HAK_API). They sit in the section the heap profiler's stack walk
// skips, each 32 bytes into a 64-byte line (platform.h's HAKMEM_ENTRY_LAYOUT;
// placement only).
#define HAKMEM_EXPORT HAK_API HAKMEM_ALLOC_ENTRY HAKMEM_ENTRY_LAYOUT

// operator new's failure path needs the C++ runtime (the new-handler, throwing
// std::bad_alloc), which a C program does not load: libhakmem.so does not link
// it (libstdc++'s pages would be resident in every C program that preloads
// hakmem: 0.7 MiB). Its functions are weak references, bound where the runtime
// is there when hakmem is (a C++ program, or a binary linking //hakmem:malloc),
// else looked up when an operator new fails, in whatever C++ runtime the program
// has loaded by then (RTLD_DEFAULT: a C++ runtime is loaded wherever operator new
// is called). libstdc++ and libc++ define std::get_new_handler under one name.
namespace std {
new_handler get_new_handler() noexcept __attribute__((weak));
void __throw_bad_alloc() __attribute__((weak, noreturn));  // libstdc++'s
}  // namespace std

namespace {

using hakmem::core::Free;
using hakmem::core::Malloc;

using NewHandlerGetter = std::new_handler (*)();
using Thrower = void (*)();
using NothrowNew = void* (*)(size_t, const std::nothrow_t&);
using NothrowAlignedNew = void* (*)(size_t, std::align_val_t, const std::nothrow_t&);

// The weak reference `bound`, else `name` looked up in `handle` (nullptr: none).
template <typename Fn>
Fn RuntimeFunction(Fn bound, void* handle, const char* name) {
  return bound != nullptr ? bound : reinterpret_cast<Fn>(dlsym(handle, name));
}

std::new_handler GetNewHandler() {
  const auto get = RuntimeFunction<NewHandlerGetter>(&std::get_new_handler, RTLD_DEFAULT,
                                                     "_ZSt15get_new_handlerv");
  return get != nullptr ? get() : nullptr;
}

// Throws std::bad_alloc through the runtime's own thrower (libstdc++'s
// std::__throw_bad_alloc, libc++'s std::__1::__throw_bad_alloc); the exception
// unwinds through hakmem's frames by their unwind tables (no catch in hakmem).
[[noreturn]] void ThrowBadAlloc(size_t size) {
  if (const auto thrower = RuntimeFunction<Thrower>(&std::__throw_bad_alloc, RTLD_DEFAULT,
                                                    "_ZSt17__throw_bad_allocv")) {
    thrower();
  }
  if (const auto thrower =
          RuntimeFunction<Thrower>(nullptr, RTLD_DEFAULT, "_ZNSt3__117__throw_bad_allocEv")) {
    thrower();
  }
  // (No C++ runtime: operator new was called by a program without one.)
  hakmem::platform::DiagLine line;
  line.Str("hakmem: operator new(")
      .Dec(size)
      .Str(") failed, and no C++ runtime is loaded to throw std::bad_alloc");
  line.Write(2);
  abort();
}

// operator new's failure path: the new-handler loop of [new.delete.single].
HAKMEM_ALLOC_ENTRY ABSL_ATTRIBUTE_NOINLINE void* NewSlow(size_t size, size_t alignment,
                                                         bool nothrow) {
  for (;;) {
    void* p = alignment == 0 ? Malloc(size) : hakmem::core::AlignedAlloc(alignment, size);
    if (p != nullptr) return p;
    const std::new_handler handler = GetNewHandler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      ThrowBadAlloc(size);
    }
    if (nothrow) {
      // A handler may throw std::bad_alloc, which the nothrow form must turn into
      // nullptr: the runtime's own nothrow operator new (the next definition
      // after hakmem's) runs the throwing operator new, hakmem's, inside its
      // try/catch, so hakmem needs no catch of its own.
      if (alignment == 0) {
        if (const auto next =
                RuntimeFunction<NothrowNew>(nullptr, RTLD_NEXT, "_ZnwmRKSt9nothrow_t")) {
          return next(size, std::nothrow_t{});
        }
      } else if (const auto next = RuntimeFunction<NothrowAlignedNew>(
                     nullptr, RTLD_NEXT, "_ZnwmSt11align_val_tRKSt9nothrow_t")) {
        return next(size, std::align_val_t{alignment}, std::nothrow_t{});
      }
    }
    handler();
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

// ---- the program's start ----
// The C library calls the program's main from __libc_start_main; hakmem's
// definition (found first: libhakmem.so is preloaded, and //hakmem:malloc is
// linked into the program) calls the C library's with main wrapped, so that
// hakmem knows when main runs: its background release thread starts no
// earlier (a thread started by the program's static initialisers would surprise
// a program that forks, unshares or drops privileges first thing in main).
// Weak: a static program, whose C library defines it too, links the C library's
// (and gets no background release).
namespace {

using MainFn = int (*)(int, char**, char**);
using StartMainFn = int (*)(MainFn, int, char**, void (*)(), void (*)(), void (*)(), void*);

MainFn g_program_main = nullptr;

int MainOfProgram(int argc, char** argv, char** envp) {
  hakmem::core::NoteMainStarted();
  return g_program_main(argc, argv, envp);
}

}  // namespace

extern "C" HAK_API __attribute__((weak)) int __libc_start_main(MainFn main, int argc, char** argv,
                                                               void (*init)(), void (*fini)(),
                                                               void (*rtld_fini)(),
                                                               void* stack_end) {
  auto next = reinterpret_cast<StartMainFn>(dlsym(RTLD_NEXT, "__libc_start_main"));
  if (next == nullptr) {
    // Nothing to forward to: nothing can run. Said without allocating.
    static const char kMessage[] = "hakmem: __libc_start_main of the C library not found\n";
    (void)!write(2, kMessage, sizeof(kMessage) - 1);
    _exit(127);
  }
  g_program_main = main;
  return next(MainOfProgram, argc, argv, init, fini, rtld_fini, stack_end);
}
