// size_class: the size classes and lanes of hakmem, as constexpr data.
//
// Owns: the class table (block size, slab length, batch and cache sizes), the O(1)
// maps size -> class and size -> lane, and the lane boundaries:
//   tiny   0 .. 1 KiB      classes 0..31, cached by thread_cache
//   pool   1 KiB .. 128 KiB classes 32..89, cached by thread_cache
//   large  128 KiB .. 1 MiB runs of 16 KiB units inside a superslab
//   huge   above 1 MiB      one mapping each (cached for reuse)
// Every size maps to exactly one lane; internal waste above 128 bytes is below
// 12.5% in every lane below huge (static_asserts below, size_class_test walks
// every size). Thread-safety: constants and pure functions. Called by: every box
// above it.
#ifndef HAKMEM_SIZE_CLASS_SIZE_CLASS_H_
#define HAKMEM_SIZE_CLASS_SIZE_CLASS_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"

namespace hakmem {

enum class Lane : uint8_t { kTiny, kPool, kLarge, kHuge };

inline constexpr size_t kAlignment = 16;                   // every block, every lane
inline constexpr size_t kTinyMax = 1024;                   // largest tiny request
inline constexpr size_t kPoolMax = size_t{128} << 10;      // largest pool request
inline constexpr size_t kHugeThreshold = size_t{1} << 20;  // above: huge lane
inline constexpr size_t kUnitSize = size_t{16} << 10;      // slab/run granularity
inline constexpr size_t kSuperSlabSize = size_t{2} << 20;
inline constexpr size_t kUnitsPerSuperSlab = kSuperSlabSize / kUnitSize;  // 128

struct SizeClassInfo {
  uint32_t size;        // block size in bytes
  uint16_t slab_units;  // 16 KiB units in one slab of this class
  uint16_t blocks;      // blocks in one slab = slab_units * 16 KiB / size
  uint16_t batch;       // blocks moved per thread-cache refill or flush
  uint16_t cache_max;   // most blocks a thread cache holds for this class
};

// Spacing: 16-byte steps up to 128 B, then 8 classes per power of two (the step
// is 1/8 of the lower power), so a request is at most 12.5% below its class;
// and three classes just above a power of two, for the requests programs make of
// a power of two and a small header: 1056 (1 KiB + up to 32 B: SQLite's 1024-byte
// buffers with its 8-byte size prefix, 1032 B, took 1152), 4384 (a 4 KiB page
// and up to 288 B of header: SQLite's page-cache entries, 4368 B, took 4608) and
// 8448 (8 KiB + up to 256 B: CPython's arena blocks, 8224 B, took 9216, whose
// slabs also leave a tenth unused).
// Slabs hold >= 8 blocks (>= 4 above 16 KiB) and lose <= 1/8 to their tail.
// Thread caches hold up to 64 KiB per tiny class and 256 KiB per pool class
// (between 2 and 256 blocks); a refill or flush moves half of that.
// (A table aligned by column: clang-format leaves it alone.)
// clang-format off
inline constexpr SizeClassInfo kSizeClasses[] = {
    // size, units, blocks, batch, cache_max     class
    {    16,  1, 1024, 128, 256},  //  0
    {    32,  1,  512, 128, 256},  //  1
    {    48,  1,  341, 128, 256},  //  2
    {    64,  1,  256, 128, 256},  //  3
    {    80,  1,  204, 128, 256},  //  4
    {    96,  1,  170, 128, 256},  //  5
    {   112,  1,  146, 128, 256},  //  6
    {   128,  1,  128, 128, 256},  //  7
    {   144,  1,  113, 128, 256},  //  8
    {   160,  1,  102, 128, 256},  //  9
    {   176,  1,   93, 128, 256},  // 10
    {   192,  1,   85, 128, 256},  // 11
    {   208,  1,   78, 128, 256},  // 12
    {   224,  1,   73, 128, 256},  // 13
    {   240,  1,   68, 128, 256},  // 14
    {   256,  1,   64, 128, 256},  // 15
    {   288,  1,   56, 113, 227},  // 16
    {   320,  1,   51, 102, 204},  // 17
    {   352,  1,   46,  93, 186},  // 18
    {   384,  1,   42,  85, 170},  // 19
    {   416,  1,   39,  78, 157},  // 20
    {   448,  1,   36,  73, 146},  // 21
    {   480,  1,   34,  68, 136},  // 22
    {   512,  1,   32,  64, 128},  // 23
    {   576,  1,   28,  56, 113},  // 24
    {   640,  1,   25,  51, 102},  // 25
    {   704,  1,   23,  46,  93},  // 26
    {   768,  1,   21,  42,  85},  // 27
    {   832,  1,   19,  39,  78},  // 28
    {   896,  1,   18,  36,  73},  // 29
    {   960,  1,   17,  34,  68},  // 30
    {  1024,  1,   16,  32,  64},  // 31
    {  1056,  1,   15, 124, 248},  // 32
    {  1152,  1,   14, 113, 227},  // 33
    {  1280,  1,   12, 102, 204},  // 34
    {  1408,  1,   11,  93, 186},  // 35
    {  1536,  1,   10,  85, 170},  // 36
    {  1664,  1,    9,  78, 157},  // 37
    {  1792,  1,    9,  73, 146},  // 38
    {  1920,  1,    8,  68, 136},  // 39
    {  2048,  1,    8,  64, 128},  // 40
    {  2304,  2,   14,  56, 113},  // 41
    {  2560,  2,   12,  51, 102},  // 42
    {  2816,  2,   11,  46,  93},  // 43
    {  3072,  2,   10,  42,  85},  // 44
    {  3328,  2,    9,  39,  78},  // 45
    {  3584,  2,    9,  36,  73},  // 46
    {  3840,  2,    8,  34,  68},  // 47
    {  4096,  2,    8,  32,  64},  // 48
    {  4384,  3,   11,  29,  59},  // 49
    {  4608,  3,   10,  28,  56},  // 50
    {  5120,  3,    9,  25,  51},  // 51
    {  5632,  3,    8,  23,  46},  // 52
    {  6144,  3,    8,  21,  42},  // 53
    {  6656,  4,    9,  19,  39},  // 54
    {  7168,  4,    9,  18,  36},  // 55
    {  7680,  4,    8,  17,  34},  // 56
    {  8192,  4,    8,  16,  32},  // 57
    {  8448,  5,    9,  15,  31},  // 58
    {  9216,  5,    8,  14,  28},  // 59
    { 10240,  5,    8,  12,  25},  // 60
    { 11264,  6,    8,  11,  23},  // 61
    { 12288,  6,    8,  10,  21},  // 62
    { 13312,  7,    8,   9,  19},  // 63
    { 14336,  7,    8,   9,  18},  // 64
    { 15360,  8,    8,   8,  17},  // 65
    { 16384,  8,    8,   8,  16},  // 66
    { 18432,  5,    4,   7,  14},  // 67
    { 20480,  5,    4,   6,  12},  // 68
    { 22528,  6,    4,   5,  11},  // 69
    { 24576,  6,    4,   5,  10},  // 70
    { 26624,  7,    4,   4,   9},  // 71
    { 28672,  7,    4,   4,   9},  // 72
    { 30720,  8,    4,   4,   8},  // 73
    { 32768,  8,    4,   4,   8},  // 74
    { 36864,  9,    4,   3,   7},  // 75
    { 40960, 10,    4,   3,   6},  // 76
    { 45056, 11,    4,   2,   5},  // 77
    { 49152, 12,    4,   2,   5},  // 78
    { 53248, 13,    4,   2,   4},  // 79
    { 57344, 14,    4,   2,   4},  // 80
    { 61440, 15,    4,   2,   4},  // 81
    { 65536, 16,    4,   2,   4},  // 82
    { 73728, 18,    4,   1,   3},  // 83
    { 81920, 20,    4,   1,   3},  // 84
    { 90112, 22,    4,   1,   2},  // 85
    { 98304, 24,    4,   1,   2},  // 86
    {106496, 26,    4,   1,   2},  // 87
    {114688, 28,    4,   1,   2},  // 88
    {122880, 30,    4,   1,   2},  // 89
    {131072, 32,    4,   1,   2},  // 90
};
// clang-format on

inline constexpr int kNumClasses = sizeof(kSizeClasses) / sizeof(kSizeClasses[0]);
inline constexpr int kNumTinyClasses = 32;  // classes 0..31 serve 0..1024 bytes
inline constexpr int kFirstPoolClass = kNumTinyClasses;
inline constexpr int kNumPoolClasses = kNumClasses - kNumTinyClasses;

// The class of a request: the smallest class that holds it, by binary search of
// the table (used to build the index and in tests).
constexpr int ComputeClass(size_t size) {
  int lo = 0, hi = kNumClasses - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (kSizeClasses[mid].size >= size) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

namespace size_class_internal {

// size -> class for every request up to kPoolMax in one byte table (as tcmalloc's
// class_array): 16-byte steps up to kTinyMax (entries 0..64), then 32-byte steps
// (every pool class size is a multiple of 32), entry (size + 31 + 32 * 32) >> 5,
// 65 for 1025..1056 up to 4128 for kPoolMax.
inline constexpr int kPoolIndexShift = 5;
inline constexpr size_t kPoolIndexBias = 31 + 32 * 32;
inline constexpr size_t kTinyIndexEntries = kTinyMax / 16 + 1;  // 65
inline constexpr size_t kClassIndexEntries =
    ((kPoolMax + kPoolIndexBias) >> kPoolIndexShift) + 1;  // 4129

struct ClassIndex {
  uint8_t cls[kClassIndexEntries];
};

constexpr ClassIndex MakeClassIndex() {
  ClassIndex index{};
  for (size_t i = 0; i < kTinyIndexEntries; ++i) {
    index.cls[i] = static_cast<uint8_t>(ComputeClass(i * 16));
  }
  for (size_t i = kTinyIndexEntries; i < kClassIndexEntries; ++i) {
    index.cls[i] = static_cast<uint8_t>(ComputeClass((i - 32) * 32));  // the bucket's largest size
  }
  return index;
}

inline constexpr ClassIndex kClassIndex = MakeClassIndex();
static_assert(((kTinyMax + 1 + kPoolIndexBias) >> kPoolIndexShift) == kTinyIndexEntries,
              "pool entries follow the tiny ones");

constexpr bool TableIsWellFormed() {
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClassInfo& info = kSizeClasses[c];
    if (info.size % kAlignment != 0) return false;
    // The index's pool buckets are 32 bytes: a pool class ends one.
    if (c >= kFirstPoolClass && info.size % (size_t{1} << kPoolIndexShift) != 0) return false;
    if (c > 0 && info.size <= kSizeClasses[c - 1].size) return false;
    if (ComputeClass(info.size) != c) return false;  // the table and the map agree
    const size_t slab = size_t{info.slab_units} * kUnitSize;
    if (info.blocks != slab / info.size) return false;
    if (info.blocks < (info.size <= kUnitSize ? 8 : 4)) return false;
    if ((slab % info.size) * 8 > slab) return false;  // tail waste <= 1/8
    if (info.slab_units > kUnitsPerSuperSlab / 4) return false;
    if (info.batch == 0 || info.batch > info.cache_max) return false;
    // Waste: the largest request of the next class down + 1 is the worst case.
    const size_t worst = c == 0 ? 1 : kSizeClasses[c - 1].size + 1;
    if (worst > 128 && (info.size - worst) * 8 >= worst) return false;
  }
  return true;
}

}  // namespace size_class_internal

static_assert(kNumClasses == 91, "tiny 32 + pool 59 classes");
static_assert(kSizeClasses[kNumTinyClasses - 1].size == kTinyMax);
static_assert(kSizeClasses[kNumClasses - 1].size == kPoolMax);
static_assert(size_class_internal::TableIsWellFormed(),
              "size class table: spacing, waste, slab fit or batch is wrong");
// Large runs are whole units; the first large size is kPoolMax + 1, whose waste
// (one unit less one byte) is below 12.5%.
static_assert((kUnitSize - 1) * 8 < kPoolMax + 1);
static_assert(kHugeThreshold < kSuperSlabSize - kUnitSize, "a large run fits a superslab");

// Lane of a request of `size` bytes.
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr Lane LaneOf(size_t size) {
  if (size <= kTinyMax) return Lane::kTiny;
  if (size <= kPoolMax) return Lane::kPool;
  if (size <= kHugeThreshold) return Lane::kLarge;
  return Lane::kHuge;
}

namespace size_class_internal {
// The index entry of a tiny request (size <= kTinyMax) and of a pool request
// (kTinyMax < size <= kPoolMax).
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr size_t TinyIndexEntry(size_t size) {
  return (size + 15) >> 4;
}
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr size_t PoolIndexEntry(size_t size) {
  return (size + kPoolIndexBias) >> kPoolIndexShift;
}
}  // namespace size_class_internal

// Class of a tiny request (size <= kTinyMax): one table load.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline int TinyClass(size_t size) {
  return size_class_internal::kClassIndex.cls[size_class_internal::TinyIndexEntry(size)];
}

// Class of a pool request (kTinyMax < size <= kPoolMax): one table load.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline int PoolClass(size_t size) {
  return size_class_internal::kClassIndex.cls[size_class_internal::PoolIndexEntry(size)];
}

// Class of any request up to kPoolMax.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline int SizeClass(size_t size) {
  return size <= kTinyMax ? TinyClass(size) : PoolClass(size);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr size_t ClassSize(int cls) { return kSizeClasses[cls].size; }

// 16 KiB units of a large run for `size` bytes (kPoolMax < size <= kHugeThreshold).
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr size_t LargeUnits(size_t size) {
  return (size + kUnitSize - 1) / kUnitSize;
}

// Bytes a request of `size` occupies in its lane below huge (block, or run).
constexpr size_t RoundedSize(size_t size) {
  switch (LaneOf(size)) {
    case Lane::kTiny:
    case Lane::kPool:
      return ClassSize(ComputeClass(size));
    case Lane::kLarge:
      return LargeUnits(size) * kUnitSize;
    case Lane::kHuge:
      break;
  }
  return (size + 4095) & ~size_t{4095};
}

const char* LaneName(Lane lane);

// Writes the class table to `fd` (the size-class report).
void PrintSizeClassTable(int fd);

}  // namespace hakmem

#endif  // HAKMEM_SIZE_CLASS_SIZE_CLASS_H_
