// free_link: how a free slab block links to the next one, and what marks it free.
//
// Owns: the per-process secret, and with it
//  - the link codec (safe-linking, as glibc 2.32+): word 0 of a free block on a
//    thread cache, a slab free list or a remote queue stores
//    next ^ (address of the word >> 12) ^ key, and every load checks that the
//    decoded pointer is 16-byte aligned and below 2^47 (the user address space
//    the registry covers). The key has its top bit set, so a raw address written
//    over a link after free (a use-after-free write) always fails the check, and
//    any other value but for a chance of 2^-21: reported like an invalid free,
//    never handed out. (Thread caches keep their blocks in slots, with no link
//    at all: thread_cache.h.)
//  - the freed-block tag (as glibc's tcache key): word 1 of every free block holds
//    a second secret, cleared when the block is handed out, so a free of a tagged
//    block is almost surely a double free (not in hardened builds, whose live
//    map is exact).
// Thread-safety: the secret is written once, before any block exists (the first
// heap is made under the heaps lock), and read relaxed (plain loads) after.
// Called by: remote_queue (push), heap (slabs, drain), thread_cache (the batches
// it takes from and gives to the slabs), superslab, free_dispatch (through heap).
#ifndef HAKMEM_SUPERSLAB_FREE_LINK_H_
#define HAKMEM_SUPERSLAB_FREE_LINK_H_

#include <atomic>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/config/build_config.h"
#include "hakmem/platform/platform.h"
#include "hakmem/registry/registry.h"

namespace hakmem {

struct BlockSecrets {
  uint64_t link_key;  // xored into every link
  uint64_t free_tag;  // word 1 of a free block; never 0
};
// Constant-initialised to zero; InitBlockSecrets sets both before any block exists.
extern BlockSecrets g_block_secrets HAKMEM_HIDDEN;

// Draws the secrets from the kernel's per-process random bytes (AT_RANDOM) and
// ASLR, once. No syscall, no allocation. The caller serialises (heaps lock).
void InitBlockSecrets();

// A decoded link that cannot be a block: reported (as an invalid free) and, unless
// HAKMEM_INVALID_FREE=warn, the process aborts. Returns nullptr: the caller ends
// the list there (its remaining blocks are leaked, never handed out).
ABSL_ATTRIBUTE_NOINLINE void* ReportCorruptLink(const void* block, uintptr_t decoded);

// The bits a decoded link must have clear: the 4 alignment bits and those above
// the user address space.
inline constexpr uintptr_t kLinkCheckBits = ~((uintptr_t{1} << registry::kAddressBits) - 1) | 15;

ABSL_ATTRIBUTE_ALWAYS_INLINE inline uintptr_t LinkMask(const void* block) {
  if constexpr (!config::kEncodedLists) return 0;
  // relaxed atomics would be plain loads too; the secrets never change once set.
  return (reinterpret_cast<uintptr_t>(block) >> 12) ^ g_block_secrets.link_key;
}

// Word 0 of free block `block`: the next block of its list (nullptr ends it).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* LoadLink(const void* block) {
  const uintptr_t decoded = *static_cast<const uintptr_t*>(block) ^ LinkMask(block);
  if constexpr (config::kEncodedLists) {
    if (ABSL_PREDICT_FALSE((decoded & kLinkCheckBits) != 0))
      return ReportCorruptLink(block, decoded);
  }
  return reinterpret_cast<void*>(decoded);
}

// The one reporter of the program errors hakmem finds (invalid and double frees,
// forged links, overwritten headers): counts frees_invalid, writes `line` to
// stderr and aborts, unless HAKMEM_INVALID_FREE=warn: then it returns, and the
// caller leaks whatever it cannot trust.
ABSL_ATTRIBUTE_NOINLINE void ReportMisuse(platform::DiagLine& line);

// "hakmem: invalid free of <ptr> (<reason>) in <call>()", through ReportMisuse.
ABSL_ATTRIBUTE_NOINLINE void ReportInvalidFree(const void* ptr, const char* reason,
                                               const char* call);

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void StoreLink(void* block, const void* next) {
  *static_cast<uintptr_t*>(block) = reinterpret_cast<uintptr_t>(next) ^ LinkMask(block);
}

// Hardened builds write no tag: their live-block map (superslab.h) finds every
// double free, a tag only some.
inline constexpr bool kFreedBlockTag = !config::kHardened;

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void MarkFree(void* block) {
  if constexpr (kFreedBlockTag) static_cast<uint64_t*>(block)[1] = g_block_secrets.free_tag;
}
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void MarkInUse(void* block) {
  if constexpr (kFreedBlockTag) static_cast<uint64_t*>(block)[1] = 0;
}
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool LooksFree(const void* block) {
  if constexpr (!kFreedBlockTag) return false;
  return static_cast<const uint64_t*>(block)[1] == g_block_secrets.free_tag;
}

}  // namespace hakmem

#endif  // HAKMEM_SUPERSLAB_FREE_LINK_H_
