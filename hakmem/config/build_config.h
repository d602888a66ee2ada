// config/build_config: the build flags (`--define hakmem_<name>=<value>`, or a
// test's flag variant: hakmem/config/variants.bzl) as constexpr values, read with
// `if constexpr` so a disabled feature costs nothing.
// The -D macros come from hakmem/config/flags.bzl; the defaults below (the fast,
// safe build) apply when this header is compiled outside Bazel.
// Thread-safety: constants only. Called by: every box above config.
#ifndef HAKMEM_CONFIG_BUILD_CONFIG_H_
#define HAKMEM_CONFIG_BUILD_CONFIG_H_

#ifndef HAKMEM_BUILD_POOL_TLS
#define HAKMEM_BUILD_POOL_TLS 1
#endif
#ifndef HAKMEM_BUILD_REMOTE_QUEUE
#define HAKMEM_BUILD_REMOTE_QUEUE 0
#endif
#ifndef HAKMEM_BUILD_PREWARM
#define HAKMEM_BUILD_PREWARM 0
#endif
#ifndef HAKMEM_BUILD_PREFAULT
#define HAKMEM_BUILD_PREFAULT 0
#endif
#ifndef HAKMEM_BUILD_STATS
#define HAKMEM_BUILD_STATS 1
#endif
#ifndef HAKMEM_BUILD_HARDENED
#define HAKMEM_BUILD_HARDENED 0
#endif
#ifndef HAKMEM_BUILD_ENCODED_LISTS
#define HAKMEM_BUILD_ENCODED_LISTS 0
#endif
#ifndef HAKMEM_BUILD_THP
#define HAKMEM_BUILD_THP 1
#endif
#ifndef HAKMEM_BUILD_DEBUG_LOG
#define HAKMEM_BUILD_DEBUG_LOG 0
#endif
#ifndef HAKMEM_BUILD_ACE
#define HAKMEM_BUILD_ACE 1
#endif
#ifndef HAKMEM_BUILD_CHECKS
#define HAKMEM_BUILD_CHECKS 0
#endif

namespace hakmem::config {

// --define hakmem_pool_tls=on|off: thread caches for the pool lane.
inline constexpr bool kPoolTls = HAKMEM_BUILD_POOL_TLS == 1;
// --define hakmem_remote_queue=lockfree|mutex: how cross-thread frees are queued.
inline constexpr bool kRemoteQueueMutex = HAKMEM_BUILD_REMOTE_QUEUE == 1;
// --define hakmem_prewarm=off|on: new threads fill their pool caches up front.
inline constexpr bool kPrewarm = HAKMEM_BUILD_PREWARM == 1;
// --define hakmem_prefault=off|on: new memory is populated when carved.
inline constexpr bool kPrefault = HAKMEM_BUILD_PREFAULT == 1;
// --define hakmem_stats=on|off: counters compiled in.
inline constexpr bool kStats = HAKMEM_BUILD_STATS == 1;
// --define hakmem_hardened=off|on: free-list links encoded and checked, and every
// block a thread cache hands out checked against its slab.
inline constexpr bool kHardened = HAKMEM_BUILD_HARDENED == 1;
// --define hakmem_encoded_lists=off|on: free-list links encoded and checked
// (always in hardened builds). Off by default: it cost 4-24% on tiny_hot,
// random_mixed and larson, above the 3% a default may cost.
inline constexpr bool kEncodedLists = HAKMEM_BUILD_ENCODED_LISTS == 1 || kHardened;
// --define hakmem_thp=on|off: superslabs and huge mappings may be backed by 2 MiB
// pages (HAKMEM_THP chooses at run time); off: 4 KiB pages only.
inline constexpr bool kThp = HAKMEM_BUILD_THP == 1;
// --define hakmem_debug_log=off|on: slow-path events written to stderr.
inline constexpr bool kDebugLog = HAKMEM_BUILD_DEBUG_LOG == 1;
// --define hakmem_ace=on|off: thread-cache limits and batches adapt per thread and
// class (hakmem/ace); off keeps the fixed limits of the size-class table (A/B).
inline constexpr bool kAce = HAKMEM_BUILD_ACE == 1;
// --define hakmem_checks=off|on: HAKMEM_DCHECK invariants checked (config/check.h).
inline constexpr bool kChecks = HAKMEM_BUILD_CHECKS == 1;

}  // namespace hakmem::config

#endif  // HAKMEM_CONFIG_BUILD_CONFIG_H_
