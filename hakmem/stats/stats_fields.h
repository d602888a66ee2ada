/* stats/stats_fields: the one list of hakmem's statistics counters.
 *
 * C-compatible (the public header hakmem/hakmem.h builds its struct from it).
 * Each row: X(field, help). Counters of the hot path are kept per thread and
 * merged on thread exit; the others are counted where the (rare) event happens.
 * Thread-safety: a list of names only. Called by: stats, hakmem.h. */
#ifndef HAKMEM_STATS_STATS_FIELDS_H_
#define HAKMEM_STATS_STATS_FIELDS_H_

#define HAKMEM_STATS_COUNTERS(X)                                                             \
  X(frees_local, "frees by the owning thread")                                               \
  X(frees_remote, "frees pushed onto another thread's remote queue")                         \
  X(remote_drained, "remote frees taken back by their owner")                                \
  X(remote_batches, "batches of remote frees handed to an owner (one atomic each)")          \
  X(remote_records, "batch records made (64 remote frees each; metadata, kept for reuse)")   \
  X(frees_foreign, "pointers handed back to the C library (not hakmem's)")                   \
  X(frees_invalid, "invalid frees reported (wild, interior or double)")                      \
  X(cache_refills, "thread-cache refills from slabs")                                        \
  X(cache_flushes, "thread-cache flushes back to slabs")                                     \
  X(slabs_created, "slabs carved out of superslabs")                                         \
  X(slabs_released, "empty slabs given back to their superslab")                             \
  X(large_runs, "large runs (128 KiB .. 1 MiB) allocated")                                   \
  X(reservations, "address-space reservations (each holds many superslabs)")                 \
  X(superslabs_mapped, "superslabs carved from reservations")                                \
  X(superslabs_reused, "superslabs taken from the empty cache")                              \
  X(superslabs_cached, "empty superslabs put in the cache")                                  \
  X(superslabs_purged, "cached superslabs decommitted (MADV_DONTNEED)")                      \
  X(units_purged, "free 16 KiB units of owned superslabs decommitted by decay")              \
  X(huge_mapped, "huge allocations given a new mapping")                                     \
  X(huge_reused, "huge allocations served from the huge cache")                              \
  X(huge_released, "huge mappings given back to the OS")                                     \
  X(huge_remapped, "huge blocks moved to a bigger mapping (realloc, a cached one grown)")    \
  X(realloc_in_place, "reallocs that kept their block")                                      \
  X(heaps_created, "thread heaps created")                                                   \
  X(heaps_adopted, "thread heaps adopted from exited threads")                               \
  X(heaps_abandoned, "thread heaps handed back at thread exit")                              \
  X(heaps_reclaimed, "remote frees into exited threads' heaps taken back at once")           \
  X(alloc_failures, "requests that failed with ENOMEM")                                      \
  X(fallback_pool_uncached, "pool allocations served without a thread cache (pool_tls=off)") \
  X(ace_grows, "ACE: a class's thread-cache limit raised (it kept refilling or flushing)")   \
  X(ace_shrinks, "ACE: a limit lowered after a whole window without refill or flush")        \
  X(ace_steals, "ACE: a limit lowered to give its bytes to a hot class (budget full)")       \
  X(ace_sheds, "ACE: a limit lowered by a flush in a run of flushes (freed, not reused)")    \
  X(background_passes, "passes of the background release thread over the heaps")             \
  X(background_trims, "quiet heaps the background release trimmed (free units decommitted)") \
  X(background_idle_waits, "times the background release slept until woken (nothing held)")  \
  X(blocks_purged, "free blocks above 8 KiB whose pages past the first decay decommitted")

#define HAKMEM_STATS_NUM_LANES 4    /* tiny, pool, large, huge */
#define HAKMEM_STATS_NUM_CLASSES 91 /* size classes, see size_class.h */
#define HAKMEM_STATS_NUM_SYSCALLS 9 /* see platform.h HAKMEM_SYSCALL_LIST */
#define HAKMEM_STATS_NUM_HIST 41    /* requested sizes: [2^(i-1), 2^i) */

#endif /* HAKMEM_STATS_STATS_FIELDS_H_ */
