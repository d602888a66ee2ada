// The C API of hakmem.h: forwards to core, plus the statistics report.
#include "hakmem/hakmem.h"

#include <errno.h>
#include <unistd.h>

#include "hakmem/ace/ace.h"
#include "hakmem/config/build_config.h"
#include "hakmem/config/options.h"
#include "hakmem/core/core.h"
#include "hakmem/heap/heap.h"
#include "hakmem/platform/platform.h"
#include "hakmem/pool_tls/pool_tls.h"
#include "hakmem/profiler/profiler.h"
#include "hakmem/registry/registry.h"
#include "hakmem/stats/stats.h"
#include "hakmem/superslab/superslab.h"
#include "hakmem/tiny_tls/tiny_tls.h"

static_assert(HAKMEM_STATS_NUM_CLASSES == hakmem::kNumClasses);
static_assert(HAKMEM_STATS_NUM_SYSCALLS == static_cast<int>(hakmem::platform::Syscall::kCount));

// hak_build_info's text, fixed at compile time. hakmem's targets compile with
// -O2 in Bazel's fastbuild too (hakmem/copts.bzl), so only -c dbg says
// "unoptimized".
#define HAK_STRINGIFY_VALUE(x) #x
#define HAK_STRINGIFY(x) HAK_STRINGIFY_VALUE(x)
#if defined(__OPTIMIZE__)
#define HAK_BUILD_OPTIMIZATION "optimized"
#else
#define HAK_BUILD_OPTIMIZATION "unoptimized"
#endif
#if defined(__clang__)
#define HAK_BUILD_COMPILER                                                                      \
  "clang " HAK_STRINGIFY(__clang_major__) "." HAK_STRINGIFY(__clang_minor__) "." HAK_STRINGIFY( \
      __clang_patchlevel__)
#elif defined(__GNUC__)
#define HAK_BUILD_COMPILER                                                            \
  "gcc " HAK_STRINGIFY(__GNUC__) "." HAK_STRINGIFY(__GNUC_MINOR__) "." HAK_STRINGIFY( \
      __GNUC_PATCHLEVEL__)
#else
#define HAK_BUILD_COMPILER "an unknown compiler"
#endif
#if HAKMEM_BUILD_HARDENED
#define HAK_BUILD_HARDENING ", hardened"
#else
#define HAK_BUILD_HARDENING ""
#endif

namespace {

// The report's occupancy lines (hakmem::TakeCensus): where the mapped memory is
// and how much of it is out as blocks, the first measure of fragmentation.
void PrintCensus(int fd) {
  using hakmem::platform::DiagLine;
  const hakmem::HeapCensus c = hakmem::TakeCensus();
  DiagLine()
      .Str("  occupancy")
      .Pad(28)
      .Str("slabs")
      .Pad(38)
      .Str("units")
      .Pad(46)
      .Str("bytes out")
      .Pad(60)
      .Str("of bytes")
      .Pad(74)
      .Str("out")
      .Write(fd);
  const char* const names[] = {"tiny slabs", "pool slabs", "large runs"};
  static_assert(sizeof(names) / sizeof(names[0]) == sizeof(c.lanes) / sizeof(c.lanes[0]));
  for (int lane = 0; lane < 3; ++lane) {
    const hakmem::HeapCensus::Lane& l = c.lanes[lane];
    DiagLine line;
    line.Str("    ")
        .Str(names[lane])
        .Pad(28)
        .Dec(l.slabs)
        .Pad(38)
        .Dec(l.units)
        .Pad(46)
        .Dec(l.bytes_out)
        .Pad(60)
        .Dec(l.bytes_capacity)
        .Pad(74);
    if (l.bytes_capacity != 0) {
      line.Dec(l.bytes_out * 100 / l.bytes_capacity).Str("%");
    } else {
      line.Str("-");
    }
    line.Write(fd);
  }
  const char* const buckets[] = {"none ", ", <25% ", ", <50% ", ", <75% ", ", <100% ", ", all "};
  static_assert(sizeof(buckets) / sizeof(buckets[0]) == hakmem::HeapCensus::kFullnessBuckets);
  DiagLine fullness;
  fullness.Str("    class slabs by blocks out: ");
  for (int b = 0; b < hakmem::HeapCensus::kFullnessBuckets; ++b) {
    fullness.Str(buckets[b]).Dec(c.fullness[b]);
  }
  fullness.Write(fd);
  DiagLine line;
  line.Str("    superslabs ")
      .Dec(c.superslabs)
      .Str(" in ")
      .Dec(c.heaps)
      .Str(" heaps; free units ")
      .Dec(c.free_units)
      .Str(", of them committed ")
      .Dec(c.free_committed_units);
  if (c.heaps_busy != 0) line.Str(" (heaps busy, not counted: ").Dec(c.heaps_busy).Str(")");
  line.Write(fd);
}

}  // namespace

extern "C" {

// hak_malloc, hak_free, ... (core.h's list; wrappers.cc defines the same
// functions under the C library's names). In the section the heap profiler's
// stack walk skips, laid out as platform.h's HAKMEM_ENTRY_LAYOUT says (placement
// only).
#define HAK_DEFINE_ENTRY_POINT(type, name, params, call) \
  HAKMEM_ALLOC_ENTRY HAKMEM_ENTRY_LAYOUT type hak_##name params { return call; }
HAKMEM_ENTRY_POINTS(HAK_DEFINE_ENTRY_POINT)
#undef HAK_DEFINE_ENTRY_POINT

size_t hak_malloc_usable_size(const void* ptr) { return hakmem::free_dispatch::UsableSize(ptr); }
void hak_free_sized(void* ptr, size_t) { hakmem::core::Free(ptr); }
int hak_owns(const void* ptr) { return ptr != nullptr && hakmem::free_dispatch::Owns(ptr); }
void hak_purge(void) { hakmem::core::Purge(); }

void hak_get_stats(hak_stats* out) {
  using hakmem::kSizeClasses;
  hakmem::stats::Snapshot s;
  hakmem::stats::Collect(&s);
  *out = hak_stats{};
#define HAK_STATS_COPY(field, help) \
  out->field = s.counters[static_cast<int>(hakmem::stats::Counter::k_##field)];
  HAKMEM_STATS_COUNTERS(HAK_STATS_COPY)
#undef HAK_STATS_COPY
  for (int c = 0; c < hakmem::kNumClasses; ++c) {
    const int lane = static_cast<int>(hakmem::LaneOf(kSizeClasses[c].size));
    out->class_allocs[c] = s.class_allocs[c];
    out->lane_allocs[lane] += s.class_allocs[c];
    out->lane_bytes[lane] += s.class_allocs[c] * kSizeClasses[c].size;
  }
  for (int lane = 0; lane < HAKMEM_STATS_NUM_LANES; ++lane) {
    out->lane_allocs[lane] += s.lane_allocs[lane];
    out->lane_bytes[lane] += s.lane_bytes[lane];
  }
  for (int i = 0; i < HAKMEM_STATS_NUM_SYSCALLS; ++i) {
    out->syscalls[i] = hakmem::platform::SyscallCount(static_cast<hakmem::platform::Syscall>(i));
  }
  for (int b = 0; b < HAKMEM_STATS_NUM_HIST; ++b) out->size_hist[b] = s.size_hist[b];
  const hakmem::SuperSlabStats ss = hakmem::GetSuperSlabStats();
  out->bytes_in_superslabs = ss.superslab_bytes;
  out->bytes_in_huge = hakmem::GetHugeStats().huge_bytes;
  const hakmem::platform::PageFaults faults = hakmem::platform::ProcessPageFaults();
  out->minor_faults = faults.minor;
  out->major_faults = faults.major;
}

uint64_t hak_huge_page_bytes(void) {
  // A mapping is hakmem's when the registry knows its first chunk: reservations
  // start with a superslab, huge mappings with their header.
  return hakmem::platform::AnonHugePageBytes([](uintptr_t start) {
    return hakmem::registry::Lookup(reinterpret_cast<const void*>(start)) != nullptr;
  });
}

int hak_heap_profile_dump(const char* path) {
  if (path == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return hakmem::profiler::Dump(path);
}

const char* hak_syscall_name(int index) {
  if (index < 0 || index >= HAKMEM_STATS_NUM_SYSCALLS) return "?";
  return hakmem::platform::SyscallName(static_cast<hakmem::platform::Syscall>(index));
}

const char* hak_build_info(void) {
  return "hakmem " HAKMEM_VERSION " (" HAK_BUILD_OPTIMIZATION
         ", " HAK_BUILD_COMPILER HAK_BUILD_HARDENING ")";
}

void hak_print_stats(int fd) {
  using hakmem::platform::DiagLine;
  hak_stats s;
  hak_get_stats(&s);
  DiagLine().Str("hakmem stats (pid ").Dec(static_cast<uint64_t>(getpid())).Str(")").Write(fd);
  DiagLine().Str("  build: ").Str(hak_build_info()).Write(fd);
  {
    DiagLine line;
    line.Str("  ");
    hakmem::tiny_tls::DescribeLane(&line);
    line.Write(fd);
    line.Str("  ");
    hakmem::pool_tls::DescribeLane(&line);
    line.Write(fd);
  }
  DiagLine().Str("  lane").Pad(10).Str("allocs").Pad(26).Str("bytes").Write(fd);
  for (int lane = 0; lane < HAKMEM_STATS_NUM_LANES; ++lane) {
    DiagLine()
        .Str("  ")
        .Str(hakmem::LaneName(static_cast<hakmem::Lane>(lane)))
        .Pad(10)
        .Dec(s.lane_allocs[lane])
        .Pad(26)
        .Dec(s.lane_bytes[lane])
        .Write(fd);
  }
  DiagLine().Str("  class").Pad(10).Str("size").Pad(18).Str("allocs").Write(fd);
  for (int c = 0; c < hakmem::kNumClasses; ++c) {
    if (s.class_allocs[c] == 0) continue;
    DiagLine()
        .Str("  ")
        .Dec(c)
        .Pad(10)
        .Dec(hakmem::kSizeClasses[c].size)
        .Pad(18)
        .Dec(s.class_allocs[c])
        .Write(fd);
  }
#define HAK_STATS_PRINT(field, help) \
  DiagLine().Str("  " #field).Pad(28).Dec(s.field).Pad(44).Str(help).Write(fd);
  HAKMEM_STATS_COUNTERS(HAK_STATS_PRINT)
#undef HAK_STATS_PRINT
  DiagLine line;
  line.Str("  syscalls:");
  for (int i = 0; i < HAKMEM_STATS_NUM_SYSCALLS; ++i) {
    line.Str(" ").Str(hak_syscall_name(i)).Str("=").Dec(s.syscalls[i]);
  }
  line.Write(fd);
  if constexpr (hakmem::config::kAce) {
    // ACE's limits of the classes that moved off their fixed limit: the largest
    // any thread reached, and the reporting thread's now.
    bool header = false;
    for (int c = 0; c < hakmem::kNumClasses; ++c) {
      const uint32_t fixed = hakmem::ace::DefaultLimit(c);
      const uint32_t peak = hakmem::ace::PeakLimit(c);
      const uint32_t now = hakmem::ace::LimitOf(hakmem::ace::tls_ace, c);
      if (peak <= fixed && now == fixed) continue;
      if (!header) {
        DiagLine()
            .Str("  ace limits (blocks)")
            .Pad(28)
            .Str("size")
            .Pad(38)
            .Str("fixed")
            .Pad(46)
            .Str("peak")
            .Pad(54)
            .Str("this thread")
            .Write(fd);
        header = true;
      }
      DiagLine()
          .Str("  class ")
          .Dec(c)
          .Pad(28)
          .Dec(hakmem::kSizeClasses[c].size)
          .Pad(38)
          .Dec(fixed)
          .Pad(46)
          .Dec(peak > fixed ? peak : fixed)
          .Pad(54)
          .Dec(now)
          .Write(fd);
    }
  }
  DiagLine()
      .Str("  superslab bytes mapped ")
      .Dec(s.bytes_in_superslabs)
      .Str(", huge bytes mapped ")
      .Dec(s.bytes_in_huge)
      .Str(", registry leaf bytes ")
      .Dec(hakmem::registry::LeafBytes())
      .Write(fd);
  PrintCensus(fd);
  DiagLine()
      .Str("  page faults (process): minor ")
      .Dec(s.minor_faults)
      .Str(", major ")
      .Dec(s.major_faults)
      .Str("; hakmem memory in 2 MiB pages ")
      .Dec(hak_huge_page_bytes())
      .Str(" bytes (THP ")
      .Str(hakmem::config::ThpStatus())
      .Str(")")
      .Write(fd);
  if (!hakmem::config::GetOptions().size_hist) return;
  // Up to 128 KiB the classes are the buckets (a class takes the sizes above the
  // one below it); above, powers of two.
  DiagLine().Str("hakmem size histogram (requested bytes)").Write(fd);
  for (int c = 0; c < hakmem::kNumClasses; ++c) {
    if (s.class_allocs[c] == 0) continue;
    const uint64_t low = c == 0 ? 0 : hakmem::kSizeClasses[c - 1].size + 1;
    DiagLine()
        .Str("  ")
        .Dec(low)
        .Str(" .. ")
        .Dec(hakmem::kSizeClasses[c].size)
        .Pad(36)
        .Dec(s.class_allocs[c])
        .Write(fd);
  }
  for (int b = 0; b < HAKMEM_STATS_NUM_HIST; ++b) {
    if (s.size_hist[b] == 0) continue;
    DiagLine()
        .Str("  ")
        .Dec(uint64_t{1} << (b - 1))
        .Str(" .. ")
        .Dec((uint64_t{1} << b) - 1)
        .Pad(36)
        .Dec(s.size_hist[b])
        .Write(fd);
  }
}

}  // extern "C"

namespace {

// At exit, without allocating: the report HAKMEM_STATS=1 / HAKMEM_SIZE_HIST=1 ask for.
__attribute__((destructor)) void PrintStatsAtExit() {
  const hakmem::config::Options& options = hakmem::config::GetOptions();
  if (options.stats || options.size_hist) hak_print_stats(hakmem::core::ReportFd());
}

}  // namespace
