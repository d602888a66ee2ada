// pool_tls: the pool lane's part of the thread cache, requests of kTinyMax + 1
// .. kPoolMax (1 KiB .. 128 KiB) bytes in classes kFirstPoolClass..kNumClasses - 1.
//
// Owns: the lane's size lookup (SizeListOffset: one load from a shared table of
// list offsets), the pool_tls build flag (kCached: on, the default, the lane's
// classes are cached like the tiny ones; off, their lists' limit is 0 and every
// block comes straight from the slabs, for A/B runs only), the lane's limits and
// batches before ACE adapts them, and which classes a new thread's cache is
// prewarmed with (--define hakmem_prewarm=on: one batch of each class up to
// kPrewarmMaxSize).
// Why a shared table here and a per-thread copy for tiny sizes: a pool request
// is rarer and its table would be 8 KiB of TLS per thread (tiny_tls.h).
// Thread-safety: constant data; CountUncachedRefill counts in the caller's stats.
// Called by: thread_cache (its TLS initialiser, refill, prewarm and fast path's
// size lookup), //hakmem (the stats report's lane lines).
#ifndef HAKMEM_POOL_TLS_POOL_TLS_H_
#define HAKMEM_POOL_TLS_POOL_TLS_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "hakmem/ace/ace.h"
#include "hakmem/config/build_config.h"
#include "hakmem/platform/platform.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/superslab/superslab.h"

namespace hakmem::pool_tls {

// Whether class `cls` is one of this lane's.
constexpr bool Owns(int cls) { return cls >= kFirstPoolClass && cls < kNumClasses; }

// Whether the lane's classes are cached (--define hakmem_pool_tls, on by default).
inline constexpr bool kCached = config::kPoolTls;

// size -> list offset for pool requests: size_class's index table with the
// multiply by the list stride done ahead (16-bit entries), so the fast path
// indexes the lists and the counters with no shift. (Its first 65 entries, the
// tiny ones, serve only the slow paths: the fast path reads tiny_tls's copy.)
struct ListOffsetIndex {
  uint16_t offset[size_class_internal::kClassIndexEntries];
};
constexpr ListOffsetIndex MakeListOffsetIndex() {
  ListOffsetIndex index{};
  for (size_t i = 0; i < size_class_internal::kClassIndexEntries; ++i) {
    index.offset[i] = static_cast<uint16_t>(ListOffset(size_class_internal::kClassIndex.cls[i]));
  }
  return index;
}
inline constexpr ListOffsetIndex kListOffsetIndex = MakeListOffsetIndex();
static_assert(ListOffset(kNumClasses - 1) <= UINT16_MAX);

// The list offset of a pool request (kTinyMax < size <= kPoolMax): one load, as
// PoolClass.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uintptr_t SizeListOffset(size_t size) {
  return kListOffsetIndex.offset[size_class_internal::PoolIndexEntry(size)];
}

// The lane's cache policy for its class `cls`: the limit a new thread's list
// starts at (0: uncached, pool_tls=off; ACE moves a cached one from there), and
// the blocks a refill or flush moves while the limit is that one (or always,
// with --define hakmem_ace=off).
constexpr uint32_t InitialLimit(int cls) { return kCached ? ace::DefaultLimit(cls) : 0; }
constexpr uint32_t FixedBatch(int cls) { return kSizeClasses[cls].batch; }

// Prewarm builds: a new thread's cache takes one batch of each pool class up to
// kPrewarmMaxSize (the sizes programs allocate most), before its first malloc.
inline constexpr bool kPrewarm = kCached && config::kPrewarm;
inline constexpr size_t kPrewarmMaxSize = 8192;
constexpr bool Prewarms(int cls) {
  return kPrewarm && Owns(cls) && kSizeClasses[cls].size <= kPrewarmMaxSize;
}

// A refill of an uncached pool list (pool_tls=off): counted as a fallback, so a
// report shows that the lane ran without its cache.
ABSL_ATTRIBUTE_NOINLINE void CountUncachedRefill();

// The stats report's line for this lane: its sizes, classes and policy.
void DescribeLane(platform::DiagLine* line);

}  // namespace hakmem::pool_tls

#endif  // HAKMEM_POOL_TLS_POOL_TLS_H_
