// glibc's malloc introspection API (mallinfo, mallinfo2, malloc_stats,
// malloc_info, mallopt) answered for hakmem, as the hak_* functions of hakmem.h;
// wrappers defines the C names and forwards here.
//
// Bytes in use come from the slab descriptors (`used` blocks of each slab, large
// runs), walked over every superslab carved so far, not from the statistics
// counters: they are right whatever --define hakmem_stats says, and the free fast
// path counts nothing per class. A slab's `used` includes blocks sitting in
// thread caches and remote queues; the calling thread's caches are subtracted
// exactly, other threads' caches (at most a cache's worth each) count as in use.
// Thread-safety: any thread, no lock held while other threads run their fast
// paths; the walk reads descriptors their owners are changing (a snapshot).
#include <errno.h>
#include <unistd.h>

#include <cstring>

#include "hakmem/hakmem.h"
#include "hakmem/heap/heap.h"
#include "hakmem/platform/platform.h"
#include "hakmem/size_class/size_class.h"
#include "hakmem/superslab/superslab.h"
#include "hakmem/thread_cache/thread_cache.h"

namespace hakmem {
namespace {

struct Usage {
  uint64_t superslabs;
  uint64_t class_blocks[kNumClasses];  // blocks out of their slabs, by class
  uint64_t class_free[kNumClasses];    // blocks free in slabs that hold blocks
  uint64_t class_cached[kNumClasses];  // blocks in the calling thread's caches
  uint64_t large_runs;
  uint64_t large_bytes;
  uint64_t large_cached_runs;  // freed runs kept whole for reuse
  uint64_t large_cached_bytes;
  uint64_t in_use;        // bytes, the caller's caches taken out
  uint64_t cached_bytes;  // bytes in the caller's caches
  SuperSlabStats ss;
  HugeStats huge;
};

template <typename T>
T Peek(const T& field) {
  return __atomic_load_n(&field, __ATOMIC_RELAXED);
}

void AddSuperSlab(const SuperSlab* ss, void* arg) {
  Usage* u = static_cast<Usage*>(arg);
  ++u->superslabs;
  for (size_t i = 1; i < kUnitsPerSuperSlab; ++i) {
    const SlabMeta& m = ss->slabs[i];
    const auto state = static_cast<SlabState>(Peek(reinterpret_cast<const uint8_t&>(m.state)));
    const uint8_t cls = Peek(m.cls);
    const uint32_t used = Peek(m.used);
    if (state == SlabState::kLarge) {
      const uint64_t bytes = uint64_t{Peek(m.units)} * kUnitSize;
      if (used != 0) {
        ++u->large_runs;
        u->large_bytes += bytes;
      } else {
        ++u->large_cached_runs;
        u->large_cached_bytes += bytes;
      }
    } else if (state != SlabState::kFree && cls < kNumClasses) {
      const uint32_t capacity = Peek(m.capacity);
      u->class_blocks[cls] += used;
      u->class_free[cls] += capacity > used ? capacity - used : 0;
    }
  }
}

void Measure(Usage* u) {
  memset(u, 0, sizeof(*u));
  ForEachSuperSlab(AddSuperSlab, u);
  for (int c = 0; c < kNumClasses; ++c) {
    u->class_cached[c] = thread_cache::CachedBlocks(c);
    // The walk and the caller's caches are read at slightly different times.
    if (u->class_cached[c] > u->class_blocks[c]) u->class_cached[c] = u->class_blocks[c];
    u->in_use += (u->class_blocks[c] - u->class_cached[c]) * kSizeClasses[c].size;
    u->cached_bytes += u->class_cached[c] * kSizeClasses[c].size;
  }
  u->in_use += u->large_bytes;
  u->ss = GetSuperSlabStats();
  u->huge = GetHugeStats();
}

struct mallinfo2 ToMallinfo2(const Usage& u) {
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof(mi));
  mi.arena = u.ss.superslab_bytes;
  uint64_t free_blocks = u.large_cached_runs;
  uint64_t cached_blocks = 0;
  for (int c = 0; c < kNumClasses; ++c) {
    free_blocks += u.class_free[c];
    cached_blocks += u.class_cached[c];
  }
  mi.ordblks = free_blocks;
  mi.smblks = cached_blocks;
  const uint64_t huge_live_bytes = u.huge.huge_bytes - u.huge.cached_huge_bytes;
  mi.hblks = u.huge.huge_mappings - u.huge.cached_huge;
  mi.hblkhd = huge_live_bytes;
  mi.usmblks = 0;
  mi.fsmblks = u.cached_bytes;
  mi.uordblks = u.in_use < mi.arena ? u.in_use : mi.arena;
  mi.fordblks = mi.arena - mi.uordblks;
  mi.keepcost = u.ss.warm_superslabs * kSuperSlabSize + u.huge.cached_huge_bytes + u.cached_bytes;
  return mi;
}

// malloc_info's output: formatted into a stack buffer, handed to fwrite in chunks,
// so nothing is allocated here (the FILE may allocate its own buffer, through
// hakmem's malloc, with no hakmem lock held).
class XmlWriter {
 public:
  explicit XmlWriter(FILE* stream) : stream_(stream) {}
  ~XmlWriter() { Flush(); }
  XmlWriter& Str(const char* text) {
    while (*text != '\0') Put(*text++);
    return *this;
  }
  XmlWriter& Dec(uint64_t value) {
    char digits[20];
    const int n = platform::FormatUnsigned(value, 10, 1, digits);
    for (int i = 0; i < n; ++i) Put(digits[i]);
    return *this;
  }
  // ` name="value"`
  XmlWriter& Attr(const char* name, uint64_t value) {
    return Str(" ").Str(name).Str("=\"").Dec(value).Str("\"");
  }
  XmlWriter& Attr(const char* name, const char* value) {
    return Str(" ").Str(name).Str("=\"").Str(value).Str("\"");
  }
  bool ok() const { return ok_; }
  void Flush() {
    if (length_ > 0 && fwrite(buffer_, 1, length_, stream_) != length_) ok_ = false;
    length_ = 0;
  }

 private:
  void Put(char c) {
    if (length_ == sizeof(buffer_)) Flush();
    buffer_[length_++] = c;
  }
  FILE* stream_;
  char buffer_[1024];
  size_t length_ = 0;
  bool ok_ = true;
};

}  // namespace
}  // namespace hakmem

extern "C" {

struct mallinfo2 hak_mallinfo2(void) {
  hakmem::Usage u;
  hakmem::Measure(&u);
  return hakmem::ToMallinfo2(u);
}

struct mallinfo hak_mallinfo(void) {
  const struct mallinfo2 m = hak_mallinfo2();
  struct mallinfo mi;
  mi.arena = static_cast<int>(m.arena);
  mi.ordblks = static_cast<int>(m.ordblks);
  mi.smblks = static_cast<int>(m.smblks);
  mi.hblks = static_cast<int>(m.hblks);
  mi.hblkhd = static_cast<int>(m.hblkhd);
  mi.usmblks = static_cast<int>(m.usmblks);
  mi.fsmblks = static_cast<int>(m.fsmblks);
  mi.uordblks = static_cast<int>(m.uordblks);
  mi.fordblks = static_cast<int>(m.fordblks);
  mi.keepcost = static_cast<int>(m.keepcost);
  return mi;
}

void hak_malloc_stats(void) {
  using hakmem::platform::DiagLine;
  const struct mallinfo2 m = hak_mallinfo2();
  DiagLine()
      .Str("hakmem malloc_stats (pid ")
      .Dec(static_cast<uint64_t>(getpid()))
      .Str(")")
      .Write(2);
  DiagLine().Str("system bytes     = ").Dec(m.arena + m.hblkhd).Write(2);
  DiagLine().Str("in use bytes     = ").Dec(m.uordblks + m.hblkhd).Write(2);
  DiagLine()
      .Str("free bytes held  = ")
      .Dec(m.fordblks)
      .Str(" (thread cache of this thread ")
      .Dec(m.fsmblks)
      .Str(")")
      .Write(2);
  DiagLine()
      .Str("huge mappings    = ")
      .Dec(m.hblks)
      .Str(" (")
      .Dec(m.hblkhd)
      .Str(" bytes)")
      .Write(2);
  DiagLine().Str("trimmable bytes  = ").Dec(m.keepcost).Write(2);
  hak_print_stats(2);
}

int hak_malloc_info(int options, FILE* stream) {
  using hakmem::kNumClasses;
  using hakmem::kSizeClasses;
  if (options != 0 || stream == nullptr) {
    errno = EINVAL;
    return -1;
  }
  hakmem::Usage u;
  hakmem::Measure(&u);
  const struct mallinfo2 m = hakmem::ToMallinfo2(u);
  uint64_t lane_blocks[HAKMEM_STATS_NUM_LANES] = {};
  uint64_t lane_bytes[HAKMEM_STATS_NUM_LANES] = {};
  for (int c = 0; c < kNumClasses; ++c) {
    const int lane = static_cast<int>(hakmem::LaneOf(kSizeClasses[c].size));
    const uint64_t blocks = u.class_blocks[c] - u.class_cached[c];
    lane_blocks[lane] += blocks;
    lane_bytes[lane] += blocks * kSizeClasses[c].size;
  }
  lane_blocks[static_cast<int>(hakmem::Lane::kLarge)] = u.large_runs;
  lane_bytes[static_cast<int>(hakmem::Lane::kLarge)] = u.large_bytes;
  lane_blocks[static_cast<int>(hakmem::Lane::kHuge)] = m.hblks;
  lane_bytes[static_cast<int>(hakmem::Lane::kHuge)] = m.hblkhd;

  hakmem::XmlWriter x(stream);
  x.Str("<malloc version=\"1\"").Attr("allocator", "hakmem").Str(">\n");
  x.Str("<lanes>\n");
  for (int lane = 0; lane < HAKMEM_STATS_NUM_LANES; ++lane) {
    x.Str("<lane")
        .Attr("name", hakmem::LaneName(static_cast<hakmem::Lane>(lane)))
        .Attr("count", lane_blocks[lane])
        .Attr("size", lane_bytes[lane])
        .Str("/>\n");
  }
  x.Str("</lanes>\n<classes>\n");
  for (int c = 0; c < kNumClasses; ++c) {
    if (u.class_blocks[c] == 0 && u.class_free[c] == 0) continue;
    x.Str("<class")
        .Attr("nr", static_cast<uint64_t>(c))
        .Attr("size", kSizeClasses[c].size)
        .Attr("in_use", u.class_blocks[c] - u.class_cached[c])
        .Attr("cached", u.class_cached[c])
        .Attr("free", u.class_free[c])
        .Str("/>\n");
  }
  x.Str("</classes>\n");
  x.Str("<total").Attr("type", "inuse").Attr("size", m.uordblks).Str("/>\n");
  x.Str("<total")
      .Attr("type", "free")
      .Attr("count", m.ordblks)
      .Attr("size", m.fordblks)
      .Str("/>\n");
  x.Str("<total").Attr("type", "cache").Attr("count", m.smblks).Attr("size", m.fsmblks).Str("/>\n");
  x.Str("<total").Attr("type", "mmap").Attr("count", m.hblks).Attr("size", m.hblkhd).Str("/>\n");
  x.Str("<system").Attr("type", "current").Attr("size", m.arena + m.hblkhd).Str("/>\n");
  x.Str("<aspace")
      .Attr("type", "superslabs")
      .Attr("count", u.superslabs)
      .Attr("size", u.ss.superslab_bytes)
      .Str("/>\n");
  x.Str("</malloc>\n");
  x.Flush();
  if (!x.ok()) {
    if (errno == 0) errno = EIO;
    return -1;
  }
  return 0;
}

int hak_mallopt(int param, int value) {
  switch (param) {
    case M_TRIM_THRESHOLD:  // the empty memory kept committed (HAKMEM_RETAIN_MB)
      if (value < 0) return 0;
      hakmem::SetRetainBytes(static_cast<uint64_t>(value));
      return 1;
    case M_MMAP_THRESHOLD:  // fixed: blocks above 1 MiB get their own mapping
      return static_cast<size_t>(value) == hakmem::kHugeThreshold ? 1 : 0;
    case M_ARENA_MAX:  // no shared arenas to limit: one heap per thread
    case M_ARENA_TEST:
      return value > 0 ? 1 : 0;
    default:
      return 0;
  }
}

}  // extern "C"
