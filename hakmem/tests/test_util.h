// Helpers shared by hakmem's allocator tests (hakmem/tests). Header-only.
//
// The tests call malloc & co with sizes and pointers the compiler could see
// through; Opaque() hides a value from the optimiser so that every call reaches
// the allocator (and so that deliberate misuse, e.g. an interior free, compiles
// under -Werror). Fill/Check write and verify a pattern that depends on the
// block's address, its size and a seed, so that a block handed to the wrong
// caller, or overwritten by another one, is caught.
#ifndef HAKMEM_TESTS_TEST_UTIL_H_
#define HAKMEM_TESTS_TEST_UTIL_H_

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace hakmem_test {

// Returns `v` unchanged, through an empty asm the compiler cannot look into.
template <typename T>
inline T Opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

inline bool IsAligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

inline uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The pattern's key: a block's address and size (and a seed for reuse).
inline uint64_t PatternKey(const void* p, size_t size, uint64_t seed = 0) {
  return Mix(reinterpret_cast<uintptr_t>(p) ^ Mix(size) ^ (seed << 1));
}

// Fills `size` bytes at `p` with the pattern of (`key`, offset). Byte i of the
// pattern depends only on key and i, so a shorter prefix checks the same bytes.
inline void FillPattern(void* p, size_t size, uint64_t key) {
  unsigned char* b = static_cast<unsigned char*>(p);
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint64_t w = key + i * 0x9e3779b97f4a7c15ull;
    __builtin_memcpy(b + i, &w, 8);
  }
  if (i < size) {  // the tail: the first bytes of the next word, so that a
    const uint64_t w = key + i * 0x9e3779b97f4a7c15ull;  // prefix check agrees
    for (size_t j = 0; i + j < size; ++j) b[i + j] = static_cast<unsigned char>(w >> (8 * j));
  }
}

// Offset of the first byte at `p` that differs from the pattern, or `size`.
inline size_t FirstPatternMismatch(const void* p, size_t size, uint64_t key) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, b + i, 8);
    if (w != key + i * 0x9e3779b97f4a7c15ull) {
      for (size_t j = 0; j < 8; ++j) {  // the exact byte
        const uint64_t want = key + i * 0x9e3779b97f4a7c15ull;
        if (b[i + j] != static_cast<unsigned char>(want >> (8 * j))) return i + j;
      }
    }
  }
  if (i < size) {
    const uint64_t w = key + i * 0x9e3779b97f4a7c15ull;
    for (size_t j = 0; i + j < size; ++j) {
      if (b[i + j] != static_cast<unsigned char>(w >> (8 * j))) return i + j;
    }
  }
  return size;
}

// Offset of the first byte at `p` that is not `value`, or `size`.
inline size_t FirstByteNot(const void* p, size_t size, unsigned char value) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  size_t i = 0;
  uint64_t want;
  __builtin_memset(&want, value, 8);
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, b + i, 8);
    if (w != want) break;
  }
  for (; i < size; ++i) {
    if (b[i] != value) return i;
  }
  return size;
}

// A block of `size` bytes at `p` filled with the pattern of `key`, checked before
// it is freed: what the thread, fault and soak tests allocate and hand around.
struct PatternBlock {
  void* p = nullptr;
  size_t size = 0;
  uint64_t key = 0;
};

// Fills `b` with a pattern keyed by its address, size and `seed`.
inline void FillBlock(PatternBlock* b, uint64_t seed = 0) {
  b->key = PatternKey(b->p, b->size, seed);
  FillPattern(b->p, b->size, b->key);
}

// A block of `size` bytes from malloc, filled as FillBlock does (p is nullptr,
// and nothing filled, if malloc failed).
inline PatternBlock AllocateFilled(size_t size, uint64_t seed = 0) {
  PatternBlock b;
  b.size = size;
  b.p = malloc(Opaque(size));
  if (b.p != nullptr) FillBlock(&b, seed);
  return b;
}

// Whether `b` still holds its pattern.
inline bool Intact(const PatternBlock& b) {
  return FirstPatternMismatch(b.p, b.size, b.key) == b.size;
}

// Resident set size of this process, from /proc/self/statm.
inline size_t ResidentBytes() {
  FILE* f = fopen("/proc/self/statm", "re");
  if (f == nullptr) return 0;
  unsigned long size_pages = 0, resident_pages = 0;
  const int n = fscanf(f, "%lu %lu", &size_pages, &resident_pages);
  fclose(f);
  if (n != 2) return 0;
  return static_cast<size_t>(resident_pages) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Address space of this process (VmSize), from /proc/self/statm.
inline size_t VirtualBytes() {
  FILE* f = fopen("/proc/self/statm", "re");
  if (f == nullptr) return 0;
  unsigned long size_pages = 0;
  const int n = fscanf(f, "%lu", &size_pages);
  fclose(f);
  if (n != 1) return 0;
  return static_cast<size_t>(size_pages) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace hakmem_test

#endif  // HAKMEM_TESTS_TEST_UTIL_H_
