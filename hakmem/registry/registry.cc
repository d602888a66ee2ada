#include "hakmem/registry/registry.h"

#include "hakmem/platform/platform.h"
#include "hakmem/platform/spin_lock.h"

namespace hakmem::registry {

ABSL_CONST_INIT std::atomic<Leaf*> g_root[size_t{1} << kRootBits] = {};

namespace {

ABSL_CONST_INIT platform::SpinLock g_lock;  // serialises leaf creation
ABSL_CONST_INIT std::atomic<size_t> g_leaf_bytes{0};

constexpr uintptr_t kLeafMask = (uintptr_t{1} << kLeafBits) - 1;

Leaf* LeafFor(uintptr_t chunk) {
  std::atomic<Leaf*>& slot = g_root[chunk >> kLeafBits];
  Leaf* leaf = slot.load(std::memory_order_acquire);
  if (leaf != nullptr) return leaf;
  platform::SpinLockHolder hold(&g_lock);
  leaf = slot.load(std::memory_order_acquire);
  if (leaf == nullptr) {
    // Fresh anonymous memory reads as zero: every entry starts as nullptr.
    leaf = static_cast<Leaf*>(platform::Reserve(sizeof(Leaf), platform::kPageSize));
    if (leaf == nullptr) return nullptr;
    g_leaf_bytes.fetch_add(sizeof(Leaf), std::memory_order_relaxed);
    slot.store(leaf, std::memory_order_release);
  }
  return leaf;
}

bool ValidRange(const void* base, size_t size) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(base);
  return start % kChunkSize == 0 && size != 0 && ((start + size - 1) >> kAddressBits) == 0;
}

// Calls fn(entry) for the entry of every chunk of [base, base + size) whose leaf
// is mapped (a valid range).
template <typename Fn>
void ForEachEntry(const void* base, size_t size, Fn fn) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(base) >> kChunkShift;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(base) + size - 1) >> kChunkShift;
  for (uintptr_t chunk = first; chunk <= last; ++chunk) {
    Leaf* leaf = g_root[chunk >> kLeafBits].load(std::memory_order_relaxed);
    if (leaf != nullptr) fn(leaf->entry[chunk & kLeafMask]);
  }
}

}  // namespace

bool PrepareRange(const void* base, size_t size) {
  if (!ValidRange(base, size)) return false;
  const uintptr_t first = reinterpret_cast<uintptr_t>(base) >> kChunkShift;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(base) + size - 1) >> kChunkShift;
  for (uintptr_t chunk = first; chunk <= last; chunk = (chunk | kLeafMask) + 1) {
    if (LeafFor(chunk) == nullptr) return false;
  }
  return true;
}

bool Register(const void* base, size_t size, void* header) {
  // Every leaf first, so that failure leaves nothing half-registered.
  if (!PrepareRange(base, size)) return false;
  ForEachEntry(base, size, [header](std::atomic<void*>& entry) {
    entry.store(header, std::memory_order_release);
  });
  return true;
}

void Unregister(const void* base, size_t size) {
  if (!ValidRange(base, size)) return;
  ForEachEntry(base, size,
               [](std::atomic<void*>& entry) { entry.store(nullptr, std::memory_order_release); });
}

size_t LeafBytes() { return g_leaf_bytes.load(std::memory_order_relaxed); }

// Fork handlers hold the lock across fork(), from Prepare to the After
// handlers: beyond what -Wthread-safety follows.
void PrepareFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Lock(); }
void ParentAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Unlock(); }
void ChildAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.ResetAfterFork(); }

}  // namespace hakmem::registry
