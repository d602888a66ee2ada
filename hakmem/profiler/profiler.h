// profiler: hakmem's sampled heap profiler (HAKMEM_HEAP_PROFILE=<prefix>).
//
// Owns: the sampling decision (a per-thread countdown of bytes to the next sample
// point, the points HAKMEM_HEAP_PROFILE_RATE bytes apart on average, each
// interval uniform in [rate/2, 3 rate/2)); the estimate (a sampled block with k
// points stands for k x rate bytes and k x rate / size blocks: the expected
// points of a block of s bytes are s / rate, so the estimate of a stack's bytes
// is unbiased for any mix of sizes, as tcmalloc weights a sample by the inverse
// of its probability; its relative standard error for a stack of B bytes is
// sqrt(rate / B / 12) when the stack allocates in runs, up to sqrt(rate / B)
// when its blocks interleave finely with other stacks': README/docs); the stack of
// a sampled allocation (a bounded frame-pointer walk that never allocates and
// stops at the first frame outside the thread's stack); the table of live sampled
// blocks (address -> size, stack) and the table of stacks with their counts, in
// memory mapped by platform, never by malloc; the dump in gperftools' legacy heap
// profile text format (google-pprof --inuse_space / --alloc_space).
// How it stays off the fast paths: it is switched on once, at initialisation.
// Then core puts each thread's caches in uncached mode as the thread attaches:
// they take no freed block, so every free reaches heap's Flush or
// free_dispatch's FreeSlow (OnFree), and a refill caches only the blocks that
// fit before the thread's next sample (UnsampledBlocks), so the allocation that
// reaches the sample always takes core's slow path (OnAlloc). Off, the inline
// malloc/free fast paths are the same instructions as without it.
// Thread-safety: any thread; the sampler state is per thread, the live table is
// sharded under spin locks, the stack table under one lock (sampled
// allocations only). Called by: thread_cache (uncached refills and frees),
// free_dispatch (FreeSlow),
// core (allocation slow paths, init, fork), //hakmem (hak_heap_profile_dump).
#ifndef HAKMEM_PROFILER_PROFILER_H_
#define HAKMEM_PROFILER_PROFILER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "hakmem/platform/platform.h"

// The functions between a program's call into hakmem and OnAlloc: malloc & co in
// wrappers, the hak_* API, core's allocation entry points and OnAlloc itself. They
// are placed in one section, so the stack walk knows a frame is hakmem's by its
// return address (__start_/__stop_hakmem_alloc_entry) and the profile starts at
// the program's own call, whatever was inlined or tail-called. Only placement:
// the instructions are the same.
#define HAKMEM_ALLOC_ENTRY __attribute__((section("hakmem_alloc_entry")))

namespace hakmem::profiler {

extern std::atomic<bool> g_enabled HAKMEM_HIDDEN;

// Whether the profiler runs. Read on slow paths only.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool Enabled() {
  return g_enabled.load(std::memory_order_relaxed);
}

// Reads HAKMEM_HEAP_PROFILE* and, when a prefix is set, maps the tables and turns
// the profiler on. Called once by core's initialisation, before any thread has
// a heap; safe to call again (it does nothing).
void Init();

// `ptr` (non-null) was just allocated with `size` requested bytes in a block of
// `allocated` bytes (its size class; 0: `size`): counts the block's bytes down
// and, when the countdown runs out, records the block and its stack, standing
// for points x rate x size / allocated of the program's requested bytes.
HAKMEM_ALLOC_ENTRY ABSL_ATTRIBUTE_NOINLINE void OnAlloc(void* ptr, size_t size,
                                                        size_t allocated = 0);

// A refill of blocks of `size` bytes in uncached mode: how many blocks (at most
// `max`) may stay cached and be popped by the fast path unseen. They are
// counted down now, all of them before the next sample: an allocation can only
// be sampled on a slow path, and the sampling stays unbiased (the byte stream is
// taken in another order; each byte is still sampled with probability 1/rate).
int UnsampledBlocks(size_t size, int max);

// `ptr` is being freed (a valid block, before it can be reused): forgets it if it
// was sampled.
ABSL_ATTRIBUTE_NOINLINE void OnFree(const void* ptr);

// Writes the profile to `path`. 0, or -1 with errno set (EINVAL when off).
int Dump(const char* path);

// What the profiler holds now (tests).
struct Totals {
  uint64_t live_samples;
  uint64_t live_bytes;           // of the live samples themselves
  uint64_t live_bytes_estimate;  // what they stand for (the profile's in-use bytes)
  uint64_t samples;              // every sampled allocation so far
  uint64_t stacks;               // distinct stacks
  uint64_t dropped;              // sampled but not recorded: the live table was full
  uint64_t recursive;            // allocations made while sampling (must stay 0)
};
Totals GetTotals();

// Captures the caller's stack from the frame of the function calling it, the
// frames of the hakmem_alloc_entry section dropped. Returns the depth (<= max).
int CaptureStack(uintptr_t* pcs, int max);

// Test hook: turns the profiler on with this prefix (nullptr: no file at exit),
// rate and seed, as the options would.
void EnableForTesting(const char* prefix, uint64_t rate, uint64_t seed);

void PrepareFork();
void ParentAfterFork();
void ChildAfterFork();

}  // namespace hakmem::profiler

#endif  // HAKMEM_PROFILER_PROFILER_H_
