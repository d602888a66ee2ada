// registry: which superslab or huge mapping owns an address, for any address.
//
// Owns: a two-level radix table indexed by address / 2 MiB. The root (8192
// entries, 64 KiB of .bss) points to leaves (8192 entries each, mapped on demand and
// never unmapped); a leaf entry points to the header of the superslab or huge
// mapping that covers that 2 MiB chunk. Every registered range starts 2 MiB-aligned,
// so two ranges never share a chunk. An address never registered reads nullptr.
// Thread-safety: Lookup is lock-free and allocation-free (two dependent acquire
// loads; plain loads on x86) and may run concurrently with writers; Register and
// Unregister are rare (a superslab carve, a huge map/unmap) and serialise leaf
// creation on a spin lock. Called by: superslab (writes), free_dispatch, core.
#ifndef HAKMEM_REGISTRY_REGISTRY_H_
#define HAKMEM_REGISTRY_REGISTRY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/platform/platform.h"

namespace hakmem::registry {

inline constexpr int kChunkShift = 21;  // 2 MiB
inline constexpr size_t kChunkSize = size_t{1} << kChunkShift;
inline constexpr int kAddressBits = 47;  // x86-64 user space
inline constexpr int kLeafBits = 13;
inline constexpr int kRootBits = kAddressBits - kChunkShift - kLeafBits;
static_assert(kRootBits == 13);

struct Leaf {
  std::atomic<void*> entry[size_t{1} << kLeafBits];
};

extern std::atomic<Leaf*> g_root[size_t{1} << kRootBits] HAKMEM_HIDDEN;

// The header registered for the chunk holding `address`, or nullptr.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* Lookup(const void* address) {
  const uintptr_t chunk = reinterpret_cast<uintptr_t>(address) >> kChunkShift;
  if (ABSL_PREDICT_FALSE(chunk >> (kRootBits + kLeafBits) != 0)) return nullptr;
  const Leaf* leaf = g_root[chunk >> kLeafBits].load(std::memory_order_acquire);
  if (ABSL_PREDICT_FALSE(leaf == nullptr)) return nullptr;
  return leaf->entry[chunk & ((uintptr_t{1} << kLeafBits) - 1)].load(std::memory_order_acquire);
}

// Maps every chunk of [base, base + size) to `header`. `base` is 2 MiB-aligned and
// the header is fully initialised (published with release). Returns false if a
// leaf could not be mapped (the range is then not registered at all).
bool Register(const void* base, size_t size, void* header);

// Maps the leaves of [base, base + size) (2 MiB-aligned) without registering
// anything: a later Register of the range cannot fail. False if a leaf could
// not be mapped.
bool PrepareRange(const void* base, size_t size);

// Maps every chunk of [base, base + size) back to nullptr.
void Unregister(const void* base, size_t size);

// Bytes of leaves mapped so far (for stats and tests).
size_t LeafBytes();

void PrepareFork();
void ParentAfterFork();
void ChildAfterFork();

}  // namespace hakmem::registry

#endif  // HAKMEM_REGISTRY_REGISTRY_H_
