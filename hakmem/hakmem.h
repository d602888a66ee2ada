/* hakmem.h: the public API of hakmem, a general-purpose malloc replacement.
 *
 * Link //hakmem:hakmem to call these functions beside the C library's malloc
 * (tests, embedding); link //hakmem:malloc or LD_PRELOAD libhakmem.so to make
 * malloc/free/new/delete themselves hakmem's. Every function is thread-safe and
 * may be called at any time, before main and during thread exit included. The
 * hak_* allocation functions follow the C/POSIX contracts of their namesakes. */
#ifndef HAKMEM_HAKMEM_H_
#define HAKMEM_HAKMEM_H_

#include <malloc.h> /* struct mallinfo, struct mallinfo2 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hakmem/stats/stats_fields.h"

/* hakmem builds with hidden symbols; what this header declares is exported. */
#define HAK_API __attribute__((visibility("default")))

/* The version of hakmem this header belongs to (CHANGELOG.md). */
#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 4
#define HAKMEM_VERSION_PATCH 0
#define HAKMEM_VERSION "0.4.0"

#ifdef __cplusplus
extern "C" {
#endif

HAK_API void* hak_malloc(size_t size);
HAK_API void hak_free(void* ptr);
HAK_API void* hak_calloc(size_t count, size_t size);
HAK_API void* hak_realloc(void* ptr, size_t size);
HAK_API void* hak_reallocarray(void* ptr, size_t count, size_t size);
HAK_API int hak_posix_memalign(void** out, size_t alignment, size_t size);
HAK_API void* hak_aligned_alloc(size_t alignment, size_t size);
HAK_API void* hak_memalign(size_t alignment, size_t size);
HAK_API void* hak_valloc(size_t size);
HAK_API void* hak_pvalloc(size_t size);
HAK_API size_t hak_malloc_usable_size(const void* ptr);

/* Frees `ptr`, which the caller allocated with `size` bytes (C++ sized delete). */
HAK_API void hak_free_sized(void* ptr, size_t size);

/* 1 if `ptr` is the start of a live or cached hakmem block, else 0. Never faults. */
HAK_API int hak_owns(const void* ptr);

/* Flushes the calling thread's caches and gives every empty superslab and cached
 * huge mapping back to the OS now (malloc_trim does the same under hakmem). */
HAK_API void hak_purge(void);

typedef struct hak_stats {
#define HAK_STATS_FIELD(field, help) uint64_t field;
  HAKMEM_STATS_COUNTERS(HAK_STATS_FIELD)
#undef HAK_STATS_FIELD
  uint64_t lane_allocs[HAKMEM_STATS_NUM_LANES]; /* tiny, pool, large, huge */
  uint64_t lane_bytes[HAKMEM_STATS_NUM_LANES];  /* bytes of blocks handed out */
  uint64_t class_allocs[HAKMEM_STATS_NUM_CLASSES];
  uint64_t syscalls[HAKMEM_STATS_NUM_SYSCALLS]; /* names: hak_syscall_name(i) */
  uint64_t size_hist[HAKMEM_STATS_NUM_HIST];    /* requests > 128 KiB: [2^(i-1), 2^i) */
  uint64_t bytes_in_superslabs;                 /* mapped, in use or cached */
  uint64_t bytes_in_huge;                       /* huge mappings, live or cached */
  uint64_t minor_faults;                        /* of the process (getrusage) */
  uint64_t major_faults;
} hak_stats;

/* Fills `out` with the counters of every thread so far (live threads included). */
HAK_API void hak_get_stats(hak_stats* out);

/* Writes the HAKMEM_STATS=1 report to file descriptor `fd`, without allocating. */
HAK_API void hak_print_stats(int fd);

HAK_API const char* hak_syscall_name(int index);

/* What the linked hakmem is: "hakmem <HAKMEM_VERSION> (optimized, gcc 12.2.0)",
 * "unoptimized" for a -c dbg build, ", hardened" for --define hakmem_hardened=on.
 * The HAKMEM_STATS=1 report prints it first. */
HAK_API const char* hak_build_info(void);

/* Bytes of hakmem's memory (superslab reservations and huge mappings) backed by
 * 2 MiB pages now: AnonHugePages of its mappings in /proc/self/smaps, read
 * without allocating (a few syscalls; not for a hot path). */
HAK_API uint64_t hak_huge_page_bytes(void);

/* glibc's introspection API answered for hakmem (the C names mallinfo2 & co in
 * //hakmem:malloc and libhakmem.so forward here). Totals are a snapshot taken
 * without stopping other threads; blocks in other threads' caches count as in
 * use. Field by field: docs/stats.md, "glibc's malloc introspection". */
HAK_API struct mallinfo2 hak_mallinfo2(void);
/* mallinfo2 with each field cut to int, as glibc does. */
HAK_API struct mallinfo hak_mallinfo(void);
/* A summary and the HAKMEM_STATS report, to stderr. */
HAK_API void hak_malloc_stats(void);
/* An XML document (lanes, classes, totals) to `stream`; options must be 0.
 * 0 on success, -1 with errno set otherwise (EINVAL for options). */
HAK_API int hak_malloc_info(int options, FILE* stream);
/* 1 if `param` applies to hakmem and `value` was taken, else 0 (docs/stats.md). */
HAK_API int hak_mallopt(int param, int value);

/* Writes the sampled heap profile (HAKMEM_HEAP_PROFILE) to `path` in the
 * gperftools heap format google-pprof reads. 0 on success; -1 with errno set
 * (EINVAL: the profiler is off; or the error of open/write). */
HAK_API int hak_heap_profile_dump(const char* path);

#ifdef __cplusplus
}
#endif

#endif /* HAKMEM_HAKMEM_H_ */
