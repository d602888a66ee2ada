#include "hakmem/free_dispatch/free_dispatch.h"

#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config/options.h"

extern "C" void* __libc_malloc(size_t size);

namespace hakmem::free_dispatch {
namespace {

Heap* MyHeap() { return HasHeap() ? tls_heap : thread_cache::AttachHeap(); }

// A block of `size` (tiny or pool) through the thread cache.
void* Block(size_t size) {
  const int cls = SizeClass(size);
  bool zeroed;
  void* p = thread_cache::TryAlloc(cls);
  return p != nullptr ? p : thread_cache::Refill(MyHeap(), cls, &zeroed);
}

Heap* MyHeapOf(void* block) { return static_cast<Heap*>(SuperSlabOf(block)->owner.load()); }

uint64_t Counter(stats::Counter c) {
  stats::Snapshot s;
  stats::Collect(&s);
  return s.counters[static_cast<int>(c)];
}

// The free fast path's block-start test (IsOwnBlockStart: asm on x86-64, C++
// under ThreadSanitizer) against division, at every byte of a slab of every
// class placed after another run, and false at every byte of the header, of a
// run of no class (as a large run) and of freed units.
TEST(FreeDispatchTest, FastPathBlockStartTestIsExactForEveryClass) {
  static int owner;  // stands for a heap
  SuperSlab* ss = AcquireSuperSlab(&owner, Occupancy::kDense, Pages::kSmall);
  ASSERT_NE(ss, nullptr);
  uintptr_t list_offset = 0;
  for (size_t offset = 0; offset < kUnitSize; ++offset) {
    ASSERT_FALSE(IsOwnBlockStart(ss, reinterpret_cast<char*>(ss) + offset, &list_offset))
        << "header " << offset;
  }
  bool fresh;
  SlabMeta* run = AllocRun(ss, 2, 1, &fresh);  // no class: as a large run
  ASSERT_NE(run, nullptr);
  for (size_t offset = 0; offset < 2 * kUnitSize; ++offset) {
    ASSERT_FALSE(IsOwnBlockStart(ss, run->start + offset, &list_offset)) << "run " << offset;
  }
  for (int cls = 0; cls < kNumClasses; ++cls) {
    const uint32_t size = kSizeClasses[cls].size;
    SlabMeta* slab = AllocRun(ss, kSizeClasses[cls].slab_units, 1, &fresh);
    ASSERT_NE(slab, nullptr);
    InitClassSlab(ss, slab, cls);
    const char* start = slab->start;
    const size_t bytes = size_t{slab->units} * kUnitSize;
    for (size_t offset = 0; offset < bytes; ++offset) {
      const char* p = start + offset;
      const bool expected = p >= slab->first_block && (p - slab->first_block) % size == 0;
      ASSERT_EQ(IsOwnBlockStart(ss, p, &list_offset), expected) << size << " " << offset;
      if (expected) ASSERT_EQ(list_offset, cls * kClassListStride);
    }
    FreeRun(ss, slab);
    for (size_t offset = 0; offset < bytes; offset += 16) {
      ASSERT_FALSE(IsOwnBlockStart(ss, start + offset, &list_offset)) << "freed " << offset;
    }
  }
  FreeRun(ss, run);
  ReleaseSuperSlab(ss);
}

TEST(FreeDispatchTest, LocalFreeGoesToTheThreadCache) {
  void* p = Block(64);
  ASSERT_NE(p, nullptr);
  Free(p, Call::kFree);
  EXPECT_EQ(thread_cache::tls_cache.Head(TinyClass(64)), p);
  void* q = Block(5000);
  ASSERT_NE(q, nullptr);
  Free(q, Call::kFree);
  if constexpr (config::kPoolTls) {
    EXPECT_EQ(thread_cache::tls_cache.Head(PoolClass(5000)), q);
  }
}

TEST(FreeDispatchTest, FreeFromAnotherThreadIsRemote) {
  void* p = Block(128);
  const uint64_t remote = Counter(stats::Counter::k_frees_remote);
  std::thread([p] { Free(p, Call::kFree); }).join();
  if constexpr (config::kStats) EXPECT_EQ(Counter(stats::Counter::k_frees_remote), remote + 1);
  EXPECT_TRUE(MyHeap()->remote.MaybeNonEmpty());
  DrainRemote(MyHeap());
}

// Counts the blocks on `heap`'s remote queue (records and single blocks) without taking
// them.
size_t RemoteQueueLength(Heap* heap) {
  size_t n = 0;
  std::vector<RemoteNode*> records;
  for (RemoteNode* r = heap->remote.TakeNodes(); r != nullptr; r = r->next) records.push_back(r);
  for (auto r = records.rbegin(); r != records.rend(); ++r) {
    n += (*r)->count;
    heap->remote.PushNode(*r);
  }
  void* list = heap->remote.TakeAll();
  void* last = nullptr;
  for (void* p = list; p != nullptr; p = LoadLink(p)) {
    last = p;
    ++n;
  }
  if (last != nullptr) heap->remote.PushList(list, last);
  return n;
}

// A batch goes to its owner as one record: the blocks' addresses in free order,
// in allocator memory. Nothing is written into the blocks' first words (no link
// through them that a use-after-free write could forge), and the owner's drain
// reads none: a block's first word is still what the program left there.
TEST(FreeDispatchTest, BatchesGoOverAsOneRecordAndNoLinkIsWrittenIntoTheBlocks) {
  if constexpr (config::kHardened) GTEST_SKIP() << "hardened: every block pushed at once";
  DrainRemote(MyHeap());
  std::vector<void*> blocks;
  for (uint32_t i = 0; i < kRemoteBatchBlocks; ++i) blocks.push_back(Block(48));
  std::thread([&] {
    for (void* p : blocks) {
      *static_cast<uintptr_t*>(p) = 0x5EED0000 + reinterpret_cast<uintptr_t>(p) % 4096;
      Free(p, Call::kFree);
    }
  }).join();
  EXPECT_EQ(MyHeap()->remote.TakeAll(), nullptr) << "no block was linked";
  RemoteNode* record = MyHeap()->remote.TakeNodes();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->next, nullptr) << "one record";
  ASSERT_EQ(record->count, kRemoteBatchBlocks);
  EXPECT_EQ(std::vector<void*>(record->blocks, record->blocks + record->count), blocks);
  for (void* p : blocks) {
    EXPECT_EQ(*static_cast<uintptr_t*>(p), 0x5EED0000 + reinterpret_cast<uintptr_t>(p) % 4096);
  }
  MyHeap()->remote.PushNode(record);
  // The drain: every block back (here: to the thread cache or its slab), the
  // record back to the pool.
  const uint64_t drained = Counter(stats::Counter::k_remote_drained);
  DrainRemote(MyHeap());
  EXPECT_FALSE(MyHeap()->remote.MaybeNonEmpty());
  if constexpr (config::kStats) {
    EXPECT_EQ(Counter(stats::Counter::k_remote_drained), drained + kRemoteBatchBlocks);
  }
}

// With no batch record to be had (no memory for one), each remote free is pushed
// on its own, linked through the block (the owner checks each link), and every
// block still reaches its owner.
TEST(FreeDispatchTest, WithoutARecordEachRemoteFreeIsPushedAlone) {
  DrainRemote(MyHeap());
  constexpr size_t kBlocks = 100;
  std::vector<void*> blocks;
  for (size_t i = 0; i < kBlocks; ++i) blocks.push_back(Block(48));
  SetRemoteNodesExhaustedForTesting(true);
  std::thread([&] {
    for (void* p : blocks) Free(p, Call::kFree);
    EXPECT_EQ(PendingRemoteFrees(), 0u) << "nothing waits in a batch";
  }).join();
  SetRemoteNodesExhaustedForTesting(false);
  EXPECT_EQ(MyHeap()->remote.TakeNodes(), nullptr) << "no record";
  void* list = MyHeap()->remote.TakeAll();
  ASSERT_NE(list, nullptr);
  std::set<void*> seen;
  void* last = nullptr;
  for (void* p = list; p != nullptr; p = LoadLink(p)) {
    seen.insert(p);
    last = p;
  }
  MyHeap()->remote.PushList(list, last);
  EXPECT_EQ(seen, std::set<void*>(blocks.begin(), blocks.end()));
  DrainRemote(MyHeap());
  EXPECT_FALSE(MyHeap()->remote.MaybeNonEmpty());
}

TEST(FreeDispatchTest, RemoteFreesGoOverInBatchesAndAllAtThreadExit) {
  DrainRemote(MyHeap());
  constexpr size_t kBlocks = 1000;
  std::vector<void*> blocks;
  for (size_t i = 0; i < kBlocks; ++i) blocks.push_back(Block(48));
  const uint64_t batches = Counter(stats::Counter::k_remote_batches);
  size_t queued_before_exit = 0;
  uint32_t pending_before_exit = 0;
  std::thread([&] {
    for (void* p : blocks) Free(p, Call::kFree);
    pending_before_exit = PendingRemoteFrees();
    queued_before_exit = RemoteQueueLength(MyHeapOf(blocks[0]));
  }).join();
  if constexpr (config::kHardened) {
    EXPECT_EQ(pending_before_exit, 0u) << "hardened: every block pushed at once";
    EXPECT_EQ(queued_before_exit, kBlocks);
  } else {
    // Full batches went over as they filled; the last one waited for the exit.
    EXPECT_EQ(pending_before_exit, kBlocks % kRemoteBatchBlocks);
    EXPECT_EQ(queued_before_exit, kBlocks - kBlocks % kRemoteBatchBlocks);
    if constexpr (config::kStats) {
      EXPECT_EQ(Counter(stats::Counter::k_remote_batches),
                batches + (kBlocks + kRemoteBatchBlocks - 1) / kRemoteBatchBlocks);
    }
  }
  EXPECT_EQ(RemoteQueueLength(MyHeap()), kBlocks) << "every block reached its owner";
  DrainRemote(MyHeap());
}

TEST(FreeDispatchTest, BatchesForManyOwnersAllArrive) {
  // More live owners than slots: a batch is handed over early to make room.
  constexpr int kOwners = kRemoteBatchSlots + 3;
  constexpr int kPerOwner = 10;
  std::vector<void*> blocks[kOwners];
  Heap* heaps[kOwners];
  std::atomic<int> ready{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> owners;
  for (int o = 0; o < kOwners; ++o) {
    owners.emplace_back([&, o] {
      for (int i = 0; i < kPerOwner; ++i) blocks[o].push_back(Block(80));
      heaps[o] = MyHeap();
      ready.fetch_add(1);
      while (!done.load()) std::this_thread::yield();  // alive: distinct heaps
      // No core here to hand the heap back at thread exit: done by hand.
      thread_cache::FlushAll(heaps[o]);
      AbandonHeap();
    });
  }
  while (ready.load() != kOwners) std::this_thread::yield();
  for (int o = 1; o < kOwners; ++o) ASSERT_NE(heaps[o], heaps[0]);
  std::thread([&] {
    for (int i = 0; i < kPerOwner; ++i) {
      for (int o = 0; o < kOwners; ++o) Free(blocks[o][i], Call::kFree);
      EXPECT_LE(PendingRemoteFrees(),
                static_cast<uint32_t>(kRemoteBatchSlots * kRemoteBatchBlocks));
    }
    FlushRemoteFrees();
    EXPECT_EQ(PendingRemoteFrees(), 0u);
  }).join();
  size_t total = 0;
  for (int o = 0; o < kOwners; ++o) total += RemoteQueueLength(heaps[o]);
  EXPECT_EQ(total, static_cast<size_t>(kOwners * kPerOwner)) << "every block reached its owner";
  done.store(true);
  for (std::thread& t : owners) t.join();
}

TEST(FreeDispatchTest, FreesIntoAnExitedThreadsHeapComeBackAtOnce) {
  constexpr int kBlocks = 200;
  std::vector<void*> blocks;
  Heap* heap = nullptr;
  std::thread([&] {
    for (int i = 0; i < kBlocks; ++i) blocks.push_back(Block(8000));
    heap = MyHeap();
    // No core here to hand the heap back at thread exit: done by hand.
    thread_cache::FlushAll(heap);
    AbandonHeap();
  }).join();
  ASSERT_TRUE(IsAbandoned(heap));
  const uint64_t reclaimed = Counter(stats::Counter::k_heaps_reclaimed);
  std::thread([&] {
    for (void* p : blocks) Free(p, Call::kFree);
    FlushRemoteFrees();
  }).join();
  EXPECT_TRUE(IsAbandoned(heap)) << "back on the abandoned list, for adoption";
  EXPECT_EQ(RemoteQueueLength(heap), 0u) << "drained without a thread adopting the heap";
  if constexpr (config::kStats) EXPECT_GT(Counter(stats::Counter::k_heaps_reclaimed), reclaimed);
}

TEST(FreeDispatchTest, FindReportsKindAndUsableSize) {
  void* tiny = Block(100);
  Found f = Find(tiny, Call::kUsableSize);
  EXPECT_EQ(f.kind, Kind::kBlock);
  EXPECT_EQ(f.usable, ClassSize(TinyClass(100)));
  EXPECT_EQ(UsableSize(tiny), f.usable);
  EXPECT_TRUE(Owns(tiny));
  EXPECT_FALSE(Owns(static_cast<char*>(tiny) + 16));
  Free(tiny, Call::kFree);

  bool zeroed;
  void* large = AllocLarge(MyHeap(), 300000, 16, &zeroed);
  f = Find(large, Call::kUsableSize);
  EXPECT_EQ(f.kind, Kind::kLarge);
  EXPECT_GE(f.usable, 300000u);
  EXPECT_EQ(UsableSize(large), f.usable);  // (its run fails the block-start test)
  Free(large, Call::kFree);

  // Blocks of three classes (one slab's worth and more), by the short path.
  for (size_t size : {size_t{24}, size_t{3000}, size_t{20000}}) {
    std::vector<void*> blocks;
    for (int i = 0; i < 300; ++i) blocks.push_back(Block(size));
    for (void* p : blocks) {
      EXPECT_EQ(UsableSize(p), Find(p, Call::kUsableSize).usable) << size;
      EXPECT_GE(UsableSize(p), size);
    }
    for (void* p : blocks) Free(p, Call::kFree);
  }

  void* huge = HugeAlloc(5 << 20, 16, &zeroed);
  f = Find(huge, Call::kUsableSize);
  EXPECT_EQ(f.kind, Kind::kHuge);
  EXPECT_GE(f.usable, size_t{5} << 20);
  EXPECT_EQ(UsableSize(huge), f.usable);
  Free(huge, Call::kFree);
  EXPECT_TRUE(HugeHeaderOf(huge)->cached);
}

// The one classifier: kinds and reasons without a report (frees_invalid stays),
// and hak_owns's answers derived from it, a huge block in the huge cache included.
TEST(FreeDispatchTest, ClassifyNamesWhatAPointerIsWithoutReporting) {
  const uint64_t invalid = Counter(stats::Counter::k_frees_invalid);
  char* tiny = static_cast<char*>(Block(64));
  Classified c = Classify(tiny, registry::Lookup(tiny));
  EXPECT_EQ(c.kind, Kind::kBlock);
  EXPECT_EQ(c.usable, ClassSize(TinyClass(64)));
  EXPECT_EQ(c.reason, nullptr);
  c = Classify(tiny + 16, registry::Lookup(tiny + 16));
  EXPECT_EQ(c.kind, Kind::kInvalid);
  EXPECT_STREQ(c.reason, "interior pointer");
  alignas(16) char on_stack[32] = {};
  c = Classify(on_stack, registry::Lookup(on_stack));
  EXPECT_EQ(c.kind, Kind::kInvalid);
  EXPECT_STREQ(c.reason, "stack address");
  bool zeroed;
  void* huge = HugeAlloc(5 << 20, 16, &zeroed);
  ASSERT_NE(huge, nullptr);
  Free(huge, Call::kFree);
  ASSERT_TRUE(HugeHeaderOf(huge)->cached);
  c = Classify(huge, registry::Lookup(huge));
  EXPECT_EQ(c.kind, Kind::kInvalid);
  EXPECT_EQ(c.reason, kCachedHugeBlock);
  EXPECT_TRUE(Owns(huge)) << "a cached huge block is still hakmem's";
  if constexpr (config::kStats) EXPECT_EQ(Counter(stats::Counter::k_frees_invalid), invalid);
  Free(tiny, Call::kFree);
}

TEST(FreeDispatchTest, ForeignPointersGoBackToTheCLibrary) {
  void* small = __libc_malloc(100);
  void* big = __libc_malloc(1 << 20);  // mmapped by glibc
  EXPECT_EQ(Find(small, Call::kUsableSize).kind, Kind::kForeign);
  EXPECT_GE(UsableSize(small), 100u);
  EXPECT_FALSE(Owns(small));
  const uint64_t foreign = Counter(stats::Counter::k_frees_foreign);
  Free(small, Call::kFree);
  Free(big, Call::kFree);
  std::thread([] { Free(__libc_malloc(64), Call::kFree); }).join();
  if constexpr (config::kStats) EXPECT_EQ(Counter(stats::Counter::k_frees_foreign), foreign + 3);
}

TEST(FreeDispatchDeathTest, InvalidFreesAreReportedAndAbort) {
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(Block(64));
        Free(p + 16, Call::kFree);
      },
      "hakmem: invalid free of 0x[0-9a-f]+ \\(interior pointer\\) in free\\(\\)");
  EXPECT_DEATH(
      {
        void* p = Block(48);
        Free(p, Call::kFree);
        Free(p, Call::kDelete);
      },
      "hakmem: invalid free of 0x[0-9a-f]+ \\(double free\\) in operator delete\\(\\)");
  EXPECT_DEATH(
      {
        alignas(16) char on_stack[64];
        Free(on_stack, Call::kFree);
      },
      "\\(stack address\\) in free\\(\\)");
  EXPECT_DEATH(
      {
        bool zeroed;
        void* large = AllocLarge(MyHeap(), 300000, 16, &zeroed);
        Free(large, Call::kFree);
        Free(large, Call::kFree);
      },
      "\\(double free of a large block\\) in free\\(\\)");
  EXPECT_DEATH(Free(reinterpret_cast<void*>(0x1003), Call::kRealloc),
               "\\(misaligned: not from any allocator\\) in realloc\\(\\)");
  EXPECT_DEATH(
      {
        bool zeroed;
        char* huge = static_cast<char*>(HugeAlloc(3 << 20, 16, &zeroed));
        Free(huge, Call::kFree);
        Free(huge, Call::kFree);
      },
      "double free of a huge block");
}

TEST(FreeDispatchTest, WarnPolicyReportsAndGoesOn) {
  setenv("HAKMEM_INVALID_FREE", "warn", 1);
  config::ReloadOptionsForTesting();
  char* p = static_cast<char*>(Block(64));
  testing::internal::CaptureStderr();
  Free(p + 16, Call::kFree);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("(interior pointer) in free()"), std::string::npos) << err;
  Free(p, Call::kFree);  // the block itself is still fine
  unsetenv("HAKMEM_INVALID_FREE");
  config::ReloadOptionsForTesting();
}

}  // namespace
}  // namespace hakmem::free_dispatch
