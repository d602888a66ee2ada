// Faults of the OS under the allocator: mmap, mremap and mprotect refused once, a
// few times in a row, every third time, or always. This binary defines them
// itself, so hakmem (linked in statically) calls these interposers, which either
// fail with ENOMEM or forward to the kernel with a raw syscall.
//
// What must hold: a transient refusal is never seen by the program (no NULL);
// ENOMEM comes only while memory is really gone; nothing live is corrupted; after
// the OS gives memory again everything works and nothing leaked.
//
// hakmem only: glibc's malloc calls mmap inside the C library, past these
// interposers.
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/hakmem.h"
#include "hakmem/tests/test_util.h"

namespace {

// Which calls fail: call numbers count every mmap, mremap and mprotect made
// through the interposers, from 1.
std::atomic<uint64_t> g_calls{0};
std::atomic<uint64_t> g_fail_every{0};  // fail each call whose number is a multiple of this
std::atomic<uint64_t> g_fail_from{0};   // fail calls g_fail_from .. g_fail_to
std::atomic<uint64_t> g_fail_to{0};
std::atomic<uint64_t> g_failed{0};

bool ShouldFail() {
  const uint64_t n = g_calls.fetch_add(1) + 1;
  const uint64_t every = g_fail_every.load();
  bool fail = every != 0 && n % every == 0;
  fail |= n >= g_fail_from.load() && n <= g_fail_to.load();
  if (fail) g_failed.fetch_add(1);
  return fail;
}

void FailNothing() {
  g_fail_every = 0;
  g_fail_from = 0;
  g_fail_to = 0;
}

// Fails `count` consecutive calls, starting `after` calls from now.
void FailCalls(uint64_t after, uint64_t count) {
  const uint64_t first = g_calls.load() + after;
  g_fail_to = first + count - 1;
  g_fail_from = first;
}

void FailAlways() {
  g_fail_from = 1;
  g_fail_to = UINT64_MAX;
}

// The kernel's own half-done refusal of an MREMAP_FIXED move: it unmaps the
// destination first, and may still fail after that (an accounting or memory
// refusal), leaving a hole. g_unmap_then_fail: how many of the next
// MREMAP_FIXED calls fail that way. With g_squat, another thread's mmap lands in
// the hole at once: one page at the destination's start, filled with kSquatByte,
// recorded in g_squatter.
std::atomic<int> g_unmap_then_fail{0};
std::atomic<bool> g_squat{false};
std::atomic<char*> g_squatter{nullptr};
constexpr char kSquatByte = 0x5a;

}  // namespace

extern "C" void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  if (ShouldFail()) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  const long r = syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
  if (r < 0 && r > -4096) {
    errno = static_cast<int>(-r);
    return MAP_FAILED;
  }
  return reinterpret_cast<void*>(r);
}

extern "C" void* mremap(void* old_address, size_t old_size, size_t new_size, int flags, ...) {
  void* new_address = nullptr;
  if ((flags & MREMAP_FIXED) != 0) {
    va_list args;
    va_start(args, flags);
    new_address = va_arg(args, void*);
    va_end(args);
  }
  if ((flags & MREMAP_FIXED) != 0 && g_unmap_then_fail.load() > 0) {
    g_unmap_then_fail.fetch_sub(1);
    syscall(SYS_munmap, new_address, new_size);
    if (g_squat.load()) {
      const long page = syscall(SYS_mmap, new_address, 4096, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (page == reinterpret_cast<long>(new_address)) {
        memset(new_address, kSquatByte, 4096);
        g_squatter = static_cast<char*>(new_address);
      }
    }
    errno = ENOMEM;
    return MAP_FAILED;
  }
  if (ShouldFail()) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  const long r = syscall(SYS_mremap, old_address, old_size, new_size, flags, new_address);
  if (r < 0 && r > -4096) {
    errno = static_cast<int>(-r);
    return MAP_FAILED;
  }
  return reinterpret_cast<void*>(r);
}

// Hardened builds protect guard chunks and pages (a refusal shortens a
// reservation or fails a huge mapping, and is retried like the others).
extern "C" int mprotect(void* addr, size_t length, int prot) {
  if (ShouldFail()) {
    errno = ENOMEM;
    return -1;
  }
  const long r = syscall(SYS_mprotect, addr, length, prot);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return 0;
}

namespace {

using hakmem_test::FillPattern;
using hakmem_test::FirstPatternMismatch;
using hakmem_test::Mix;
using hakmem_test::Opaque;
using hakmem_test::PatternKey;

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

using Block = hakmem_test::PatternBlock;
using hakmem_test::AllocateFilled;
using hakmem_test::Intact;

void Fill(Block* b) { hakmem_test::FillBlock(b); }

// A size from every lane: tiny, pool, large, huge.
size_t MixedSize(uint64_t r) {
  switch (r % 8) {
    case 0:
    case 1:
    case 2:
      return 1 + (r >> 8) % 1024;
    case 3:
    case 4:
      return 1 * kKiB + (r >> 8) % (127 * kKiB);
    case 5:
    case 6:
      return 128 * kKiB + (r >> 8) % (896 * kKiB);
    default:
      return kMiB + (r >> 8) % (6 * kMiB);
  }
}

// Allocations, reallocations (huge ones move with mremap) and frees over `slots`
// slots, `ops` times. Counts NULL results in *nulls (errno checked to be ENOMEM)
// and blocks whose contents changed in *corrupt. Frees everything at the end.
void Churn(uint64_t seed, int slots, int ops, std::atomic<int>* nulls, std::atomic<int>* corrupt) {
  std::vector<Block> blocks(static_cast<size_t>(slots));
  uint64_t r = Mix(seed);
  for (int i = 0; i < ops; ++i) {
    r = Mix(r);
    Block& b = blocks[r % blocks.size()];
    if (b.p != nullptr && !Intact(b)) corrupt->fetch_add(1);
    if (b.p != nullptr && (r >> 40) % 4 == 0) {
      const size_t size = MixedSize(Mix(r));
      errno = 0;
      void* q = realloc(b.p, size);
      if (q == nullptr) {
        if (errno != ENOMEM) corrupt->fetch_add(1);
        nulls->fetch_add(1);
        continue;  // the old block is intact and still b's
      }
      const size_t kept = size < b.size ? size : b.size;
      if (FirstPatternMismatch(q, kept, b.key) != kept) corrupt->fetch_add(1);
      b.p = q;
      b.size = size;
      Fill(&b);
      continue;
    }
    free(b.p);
    b.p = nullptr;
    b.size = MixedSize(Mix(r));
    errno = 0;
    b.p = malloc(b.size);
    if (b.p == nullptr) {
      if (errno != ENOMEM) corrupt->fetch_add(1);
      nulls->fetch_add(1);
      continue;
    }
    Fill(&b);
  }
  for (Block& b : blocks) {
    if (b.p != nullptr && !Intact(b)) corrupt->fetch_add(1);
    free(b.p);
  }
}

class FaultInjectionTest : public ::testing::Test {
 protected:
  void TearDown() override {
    FailNothing();
    g_unmap_then_fail = 0;
    g_squat = false;
  }
};

// Whether [p, p + size) is mapped (msync fails with ENOMEM on a hole).
bool Mapped(const void* p, size_t size) { return msync(const_cast<void*>(p), size, MS_ASYNC) == 0; }

// A huge block's move refused after the kernel unmapped its destination, where
// another thread's mmap then landed: that mapping survives (neither a retried
// MREMAP_FIXED nor the allocator's cleanup unmaps it), and realloc copies the
// block instead, every byte kept.
TEST_F(FaultInjectionTest, AFailedMoveSparesWhatAnotherThreadMappedInItsDestination) {
  Block b = AllocateFilled(3 * kMiB);
  ASSERT_NE(b.p, nullptr);
  g_squatter = nullptr;
  g_squat = true;
  g_unmap_then_fail = 1;
  void* q = realloc(b.p, Opaque(9 * kMiB));
  g_squat = false;
  ASSERT_NE(q, nullptr);
  char* squatter = g_squatter.load();
  ASSERT_NE(squatter, nullptr) << "realloc did not try to move the block";
  ASSERT_TRUE(Mapped(squatter, 4096)) << "the other thread's page was unmapped";
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(squatter[i], kSquatByte) << i;
  EXPECT_FALSE(hak_owns(squatter)) << "the other thread's page is registered as hakmem's";
  EXPECT_EQ(FirstPatternMismatch(q, b.size, b.key), b.size);
  b.p = q;
  b.size = 9 * kMiB;
  Fill(&b);
  EXPECT_TRUE(Intact(b));
  free(b.p);
  munmap(squatter, 4096);
}

// The same refusal with nothing in the hole: the allocator takes its destination
// back and the retry moves the block (its pages, not a copy: the old pages'
// bytes are where realloc put the block).
TEST_F(FaultInjectionTest, AFailedMoveIntoAHoleIsRetriedAndMoves) {
  Block b = AllocateFilled(3 * kMiB);
  ASSERT_NE(b.p, nullptr);
  hak_stats before;
  hak_get_stats(&before);
  g_unmap_then_fail = 1;
  void* q = realloc(b.p, Opaque(9 * kMiB));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(g_unmap_then_fail.load(), 0) << "realloc did not try to move the block";
  hak_stats after;
  hak_get_stats(&after);
  EXPECT_EQ(after.huge_remapped - before.huge_remapped, 1u) << "copied, not moved after the retry";
  EXPECT_EQ(FirstPatternMismatch(q, b.size, b.key), b.size);
  free(q);
}

// Every third mmap/mremap/mprotect of the process fails, under two threads that allocate
// from every lane: the program never sees a NULL (glibc, mimalloc, jemalloc and
// tcmalloc see none either).
TEST_F(FaultInjectionTest, EveryThirdCallFailingIsNeverSeen) {
  malloc_trim(0);  // cached mappings gone: the churn needs fresh ones
  std::atomic<int> nulls{0};
  std::atomic<int> corrupt{0};
  const uint64_t failed_before = g_failed.load();
  g_fail_every = 3;
  std::thread a(Churn, 1, 64, 20000, &nulls, &corrupt);
  std::thread b(Churn, 2, 64, 20000, &nulls, &corrupt);
  a.join();
  b.join();
  FailNothing();
  EXPECT_EQ(nulls.load(), 0) << "allocations failed although only every third mmap did";
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_GT(g_failed.load() - failed_before, 10u) << "the faults were not exercised";
}

// Every 13th of the next 400 calls, one at a time, fails once: wherever the allocator
// maps memory (superslab reservations, huge mappings, registry leaves, heap
// metadata, remaps) a single refusal is absorbed.
TEST_F(FaultInjectionTest, EachCallFailingOnceIsAbsorbed) {
  std::atomic<int> nulls{0};
  std::atomic<int> corrupt{0};
  for (uint64_t k = 0; k < 400; k += 13) {
    malloc_trim(0);
    FailCalls(k, 1);
    Churn(100 + k, 16, 200, &nulls, &corrupt);
  }
  FailNothing();
  EXPECT_EQ(nulls.load(), 0);
  EXPECT_EQ(corrupt.load(), 0);
}

// Memory really gone: every mmap fails. New memory is refused with ENOMEM (and
// only that), live blocks keep their contents, and when the OS gives memory again
// every request succeeds.
TEST_F(FaultInjectionTest, EnomemOnlyWhileMemoryIsGoneThenFullRecovery) {
  std::vector<Block> live;
  for (size_t size : {size_t{24}, size_t{3000}, 200 * kKiB, 3 * kMiB}) {
    Block b = AllocateFilled(size);
    ASSERT_NE(b.p, nullptr);
    live.push_back(b);
  }
  malloc_trim(0);
  FailAlways();
  // New huge blocks, held: what address space the allocator already holds
  // (the rest of its superslab reservations, one for each kind of pages, 64 MiB
  // each) may serve a few, then ENOMEM.
  std::vector<void*> held;
  int refused = 0;
  for (int i = 0; i < 64; ++i) {
    errno = 0;
    void* p = malloc(Opaque(8 * kMiB + static_cast<size_t>(i) * 4096));
    if (p == nullptr) {
      EXPECT_EQ(errno, ENOMEM);
      ++refused;
    } else {
      memset(p, 2, 4096);
      held.push_back(p);
    }
  }
  EXPECT_LE(held.size(), 16u) << "more than two reservations' worth served with mmap failing";
  errno = 0;
  void* grown = realloc(live[3].p, Opaque(80 * kMiB));  // the remap and the copy both fail
  EXPECT_EQ(grown, nullptr);
  EXPECT_EQ(errno, ENOMEM);
  FailNothing();
  EXPECT_GE(refused, 48);
  for (void* p : held) free(p);
  for (const Block& b : live) EXPECT_TRUE(Intact(b)) << b.size;

  // Recovery: everything the failures refused works now, repeatedly, without
  // the address space growing (nothing was leaked by the failed attempts).
  const size_t vm_before = hakmem_test::VirtualBytes();
  std::atomic<int> nulls{0};
  std::atomic<int> corrupt{0};
  for (int round = 0; round < 20; ++round) {
    void* p = malloc(Opaque(8 * kMiB));
    ASSERT_NE(p, nullptr);
    memset(p, 1, 8 * kMiB);
    free(p);
    Churn(7 + static_cast<uint64_t>(round), 32, 500, &nulls, &corrupt);
    malloc_trim(0);
  }
  EXPECT_EQ(nulls.load(), 0);
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_LT(hakmem_test::VirtualBytes(), vm_before + 256 * kMiB);
  live[3].p = realloc(live[3].p, 80 * kMiB);
  ASSERT_NE(live[3].p, nullptr);
  EXPECT_EQ(FirstPatternMismatch(live[3].p, live[3].size, live[3].key), live[3].size);
  for (const Block& b : live) free(b.p);
}

// Runs of three consecutive refusals (as many as one call retries) starting at
// every 10th of the next 300 calls: an allocation may then fail, with ENOMEM, but
// nothing is corrupted and the next attempt succeeds.
TEST_F(FaultInjectionTest, ARefusedCallLeavesTheHeapConsistent) {
  std::atomic<int> nulls{0};
  std::atomic<int> corrupt{0};
  for (uint64_t k = 0; k < 300; k += 10) {
    malloc_trim(0);
    FailCalls(k, 3);
    Churn(1000 + k, 16, 200, &nulls, &corrupt);
    FailNothing();
    std::atomic<int> later_nulls{0};
    Churn(2000 + k, 16, 200, &later_nulls, &corrupt);
    EXPECT_EQ(later_nulls.load(), 0) << "no recovery after failing calls " << k << "..+3";
  }
  EXPECT_EQ(corrupt.load(), 0);
}

}  // namespace
