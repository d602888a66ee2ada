// tiny_tls: the tiny lane's part of the thread cache, requests of 0..kTinyMax
// (1 KiB) bytes in classes 0..kNumTinyClasses - 1.
//
// Owns: the lane's size-indexed table (SizeTable: the requested size itself ->
// its class's list offset), which every thread keeps a copy of in its thread
// cache's TLS block, and the load the malloc fast path reads it with
// (ListOffsetAt); the lane's cache policy: every tiny class is cached, a new
// thread's list starts at the class's fixed limit, and a refill or flush moves
// the class's fixed batch until ACE adapts them (hakmem/ace).
// Why a per-thread copy indexed by the size: the shared table (size_class's
// kClassIndex) is indexed by (size + 15) / 16 and addressed %rip-relative, three
// more instructions on the fast path (the rounding, the shift, the table's
// address); the copy sits at a constant offset in the TLS block the fast path
// loads the offset of anyway.
// Thread-safety: constant data; ListOffsetAt reads the caller's own TLS.
// Called by: thread_cache (its TLS block, its refill and flush, its fast path's
// size lookup), //hakmem (the stats report's lane lines).
#ifndef HAKMEM_TINY_TLS_TINY_TLS_H_
#define HAKMEM_TINY_TLS_TINY_TLS_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "hakmem/ace/ace.h"
#include "hakmem/platform/platform.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/superslab/superslab.h"

namespace hakmem::tiny_tls {

// Whether class `cls` is one of this lane's.
constexpr bool Owns(int cls) { return cls >= 0 && cls < kNumTinyClasses; }

// Request size (0..kTinyMax) -> the list offset of its class (ListOffset).
struct SizeTable {
  uint16_t list_offset[kTinyMax + 1];
};

constexpr SizeTable MakeSizeTable() {
  SizeTable table{};
  for (size_t size = 0; size <= kTinyMax; ++size) {
    table.list_offset[size] = static_cast<uint16_t>(ListOffset(static_cast<uint32_t>(
        size_class_internal::kClassIndex.cls[size_class_internal::TinyIndexEntry(size)])));
  }
  return table;
}

// What each thread's copy starts as (thread_cache's constant TLS initialiser).
inline constexpr SizeTable kSizeTable = MakeSizeTable();

// Every size maps to the smallest tiny class that holds it.
constexpr bool SizeTableIsExact() {
  for (size_t size = 0; size <= kTinyMax; ++size) {
    const uint32_t cls = kSizeTable.list_offset[size] / kClassListStride;
    if (kSizeTable.list_offset[size] % kClassListStride != 0) return false;
    if (!Owns(static_cast<int>(cls)) || kSizeClasses[cls].size < size) return false;
    if (cls > 0 && kSizeClasses[cls - 1].size >= size) return false;
  }
  return true;
}
static_assert(SizeTableIsExact(), "a tiny size maps to a class too small or too large");

// The list offset of a tiny request (size <= kTinyMax), read from the copy of
// SizeTable at byte kTableAt of the calling thread's thread-local `tls` (the
// thread cache's TLS block): one %fs-relative load where HAKMEM_FS_ASM allows.
// (Word-sized: the offset indexes the lists with no zero extension.)
template <size_t kTableAt, typename Tls>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uintptr_t ListOffsetAt(const Tls& tls, size_t size) {
#if HAKMEM_FS_ASM
  uintptr_t list_offset;
  // No "memory" clobber and not volatile: the table never changes, so the
  // compiler may schedule (or drop) the load like any other.
  asm("movzwl %%fs:%c3(%1,%2,2), %k0"
      : "=r"(list_offset)
      : "r"(platform::ThreadOffset(tls)), "r"(size), "i"(kTableAt));
  return list_offset;
#else
  const auto* table =
      reinterpret_cast<const SizeTable*>(reinterpret_cast<const char*>(&tls) + kTableAt);
  return table->list_offset[size];
#endif
}

// The lane's cache policy for its class `cls`: the limit a new thread's list
// starts at (ACE moves it from there), and the blocks a refill or flush moves
// while the limit is that one (or always, with --define hakmem_ace=off).
constexpr uint32_t InitialLimit(int cls) { return ace::DefaultLimit(cls); }
constexpr uint32_t FixedBatch(int cls) { return kSizeClasses[cls].batch; }

// The stats report's line for this lane: its sizes, classes and policy.
void DescribeLane(platform::DiagLine* line);

}  // namespace hakmem::tiny_tls

#endif  // HAKMEM_TINY_TLS_TINY_TLS_H_
