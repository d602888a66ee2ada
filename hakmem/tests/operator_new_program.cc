// Run under LD_PRELOAD=libhakmem.so by operator_new_preload_test.sh: operator
// new's failure path in a C++ program whose C++ runtime hakmem does not link
// (wrappers.cc looks the runtime's new-handler and thrower up). Prints one line
// per failed check and exits 1 if any failed.
#include <cstdint>
#include <cstdio>
#include <new>

namespace {

int g_failures = 0;
int g_handler_calls = 0;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what);
    ++g_failures;
  }
}

// Keeps the compiler from folding a call or a size it can see.
template <typename T>
T Opaque(T value) {
  asm volatile("" : "+r"(value));
  return value;
}

constexpr size_t kImpossible = SIZE_MAX - 4095;

bool Throws(void* (*fn)()) {
  try {
    void* p = fn();
    std::printf("returned %p\n", p);
    return false;
  } catch (const std::bad_alloc&) {
    return true;
  }
}

}  // namespace

int main() {
  Check(Throws([] { return ::operator new(Opaque(kImpossible)); }), "new throws std::bad_alloc");
  Check(Throws([] { return ::operator new[](Opaque(kImpossible), std::align_val_t{64}); }),
        "aligned new[] throws std::bad_alloc");
  Check(::operator new(Opaque(kImpossible), std::nothrow) == nullptr,
        "nothrow new returns nullptr");

  // A handler that gives up after its first call: called once, then new throws.
  std::set_new_handler([] {
    ++g_handler_calls;
    std::set_new_handler(nullptr);
  });
  Check(Throws([] { return ::operator new(Opaque(kImpossible)); }),
        "new throws once the handler is gone");
  Check(g_handler_calls == 1, "the new-handler was called once");

  // [new.delete.single]: the nothrow form returns nullptr where a handler
  // throws std::bad_alloc.
  std::set_new_handler([] {
    ++g_handler_calls;
    throw std::bad_alloc();
  });
  g_handler_calls = 0;
  Check(::operator new(Opaque(kImpossible), std::nothrow) == nullptr,
        "nothrow new returns nullptr when the handler throws");
  Check(::operator new[](Opaque(kImpossible), std::align_val_t{4096}, std::nothrow) == nullptr,
        "aligned nothrow new[] returns nullptr when the handler throws");
  Check(g_handler_calls == 2, "the throwing handler was called for each");
  std::set_new_handler(nullptr);

  void* p = ::operator new(Opaque(size_t{100}));
  Check(p != nullptr, "new of 100 bytes");
  ::operator delete(p);
  if (g_failures == 0) std::printf("ok\n");
  return g_failures == 0 ? 0 : 1;
}
