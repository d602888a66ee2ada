// Invalid and foreign frees, through free() of a binary linked with hakmem.
//
// An invalid free (a stack address, an interior pointer, a double free) is
// reported on stderr in one line,
//     hakmem: invalid free of <hex address> (<reason>) in <call>()
// and aborts the process; with HAKMEM_INVALID_FREE=warn it is reported and the
// program goes on. The warn cases run in a fresh process (this binary re-executed
// with --invalid_free_child=<case> and the variable set), since the option is read
// once, on first use. A foreign pointer (one the C library's own malloc returned)
// is handed back to the C library: free() of it must not crash.
//
// hakmem only: glibc reports these differently, so there is no _glibc_test twin.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config/build_config.h"
#include "hakmem/heap/heap.h"
#include "hakmem/superslab/free_link.h"
#include "hakmem/tests/test_util.h"

extern "C" void* __libc_malloc(size_t size);
extern "C" void __libc_free(void* ptr);

extern char** environ;

namespace {

using hakmem_test::Opaque;

constexpr char kChildFlag[] = "--invalid_free_child=";

// The report of an invalid free of `p` (or another `report` naming it):
// `report`, then `p` in hex (either case, any zero padding) on the same line.
std::string ReportRegex(const void* p, const char* report = "hakmem: invalid free") {
  char hex[32];
  snprintf(hex, sizeof(hex), "%lx", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(p)));
  std::string re = std::string(report) + "[^\n]*0x0*";
  for (const char* c = hex; *c != '\0'; ++c) {
    if (*c >= 'a' && *c <= 'f') {
      re += '[';
      re += *c;
      re += static_cast<char>(*c - 'a' + 'A');
      re += ']';
    } else {
      re += *c;
    }
  }
  re += "[^0-9a-fA-F]";
  return re;
}

// ---------------------------------------------------------------------------
// The invalid frees, shared by the death tests and the warn-mode children.

void FreeStackAddress(void** reported) {
  char buffer[64];
  memset(buffer, 1, sizeof(buffer));
  void* p = Opaque(static_cast<void*>(buffer + 16));
  *reported = p;
  free(p);
  Opaque(buffer[0]);
}

void FreeInteriorOfTinyBlock(void* block, void** reported) {
  void* p = Opaque(static_cast<void*>(static_cast<char*>(block) + 16));
  *reported = p;
  free(p);
}

void FreeInteriorOfPoolBlock(void* block, void** reported) {
  void* p = Opaque(static_cast<void*>(static_cast<char*>(block) + 8));
  *reported = p;
  free(p);
}

void DoubleFreeTinyBlock(void* block, void** reported) {
  *reported = block;
  free(Opaque(block));
  free(Opaque(block));
}

// ---------------------------------------------------------------------------
// Default mode (HAKMEM_INVALID_FREE unset = abort). Death tests fork: the child
// has this process's addresses, so the report must name the exact address.

TEST(InvalidFreeDeathTest, StackAddressAborts) {
  EXPECT_DEATH(
      {
        void* reported = nullptr;
        FreeStackAddress(&reported);  // a slot of the child's own stack
      },
      "hakmem: invalid free[^\n]*0x[0-9a-fA-F]+");
}

TEST(InvalidFreeDeathTest, StackAddressReportNamesTheAddress) {
  // A fixed stack buffer of this frame, freed in the death-test child.
  char buffer[64];
  memset(buffer, 0, sizeof(buffer));
  void* p = Opaque(static_cast<void*>(buffer + 16));
  EXPECT_DEATH(free(Opaque(p)), ReportRegex(p));
  Opaque(buffer[0]);
}

TEST(InvalidFreeDeathTest, InteriorPointerOfTinyBlockAborts) {
  void* block = malloc(Opaque(size_t{64}));
  ASSERT_NE(block, nullptr);
  void* interior = static_cast<char*>(block) + 16;
  EXPECT_DEATH(
      {
        void* reported;
        FreeInteriorOfTinyBlock(block, &reported);
      },
      ReportRegex(interior));
  free(block);  // the parent's block is untouched
}

TEST(InvalidFreeDeathTest, InteriorPointerOfPoolBlockAborts) {
  void* block = malloc(Opaque(size_t{4096}));
  ASSERT_NE(block, nullptr);
  void* interior = static_cast<char*>(block) + 8;
  EXPECT_DEATH(
      {
        void* reported;
        FreeInteriorOfPoolBlock(block, &reported);
      },
      ReportRegex(interior));
  free(block);
}

TEST(InvalidFreeDeathTest, ImmediateDoubleFreeOfTinyBlockAborts) {
  void* block = malloc(Opaque(size_t{32}));
  ASSERT_NE(block, nullptr);
  EXPECT_DEATH(
      {
        void* reported;
        DoubleFreeTinyBlock(block, &reported);
      },
      ReportRegex(block));
  free(block);  // freed once, in the parent
}

// Under the heap profiler thread caches keep no freed block, so the blocks these
// cases expect back from the cache come from elsewhere.
bool ProfilerOn() { return getenv("HAKMEM_HEAP_PROFILE") != nullptr; }

// The report of a double free in the death-test child (whose addresses the
// parent does not know).
constexpr char kDoubleFreeReport[] =
    "hakmem: invalid free of 0x[0-9a-f]+ \\(double free\\) in free\\(\\)";

// free a, free b, free a: the second free of a finds it below the head of the
// thread cache. It used to be accepted, and a was then handed out twice.
void DoubleFreeBelowTheHead(size_t size) {
  void* a = malloc(Opaque(size));
  void* b = malloc(Opaque(size));
  free(Opaque(a));
  free(Opaque(b));
  free(Opaque(a));
}

TEST(InvalidFreeDeathTest, DoubleFreeBelowTheCacheHeadAborts) {
  for (size_t size : {size_t{32}, size_t{1000}, size_t{5000}, size_t{100000}}) {
    EXPECT_DEATH(DoubleFreeBelowTheHead(size), kDoubleFreeReport) << size;
  }
}

// A block on its slab's free list (the cache flushed), freed again.
TEST(InvalidFreeDeathTest, DoubleFreeOfABlockBackOnItsSlabAborts) {
  EXPECT_DEATH(
      {
        std::vector<void*> blocks;
        for (int i = 0; i < 4000; ++i) blocks.push_back(malloc(Opaque(size_t{48})));
        void* victim = blocks[10];
        for (void* p : blocks) free(p);  // the thread cache overflows: flushed to slabs
        free(Opaque(victim));
      },
      "hakmem: invalid free[^\n]*double free");
}

// Another thread frees a block twice: the second free finds the block tagged as
// free. It used to push it again (a self-loop in the owner's remote queue, a
// wrong slab count, a live block handed out twice).
TEST(InvalidFreeDeathTest, DoubleFreeFromAnotherThreadAborts) {
  EXPECT_DEATH(
      {
        void* block = malloc(Opaque(size_t{64}));
        std::thread([block] {
          free(Opaque(block));
          free(Opaque(block));
        }).join();
      },
      "hakmem: invalid free of 0x[0-9a-f]+ \\(double free, from another thread\\)");
}

// Another thread frees a block, then its owner frees it again: the owner finds
// it in its remote queue.
TEST(InvalidFreeDeathTest, OwnerFreesABlockAnotherThreadFreedAborts) {
  EXPECT_DEATH(
      {
        void* block = malloc(Opaque(size_t{64}));
        std::thread([block] { free(Opaque(block)); }).join();
        free(Opaque(block));
      },
      kDoubleFreeReport);
}

// A live block whose word 1 happens to hold what a free block holds there is
// still a live block: its owner's free searches, finds nothing, and frees it.
TEST(InvalidFreeTest, WordOneOfALiveBlockIsTheProgramsOwn) {
  if (ProfilerOn()) GTEST_SKIP() << "thread caches are uncached under the heap profiler";
  if (hakmem::config::kHardened) GTEST_SKIP() << "hardened builds write no freed-block tag";
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(malloc(Opaque(size_t{32})));
  uint64_t tag;
  free(blocks[0]);
  memcpy(&tag, static_cast<char*>(blocks[0]) + 8, sizeof(tag));  // read after free: the tag
  void* again = malloc(Opaque(size_t{32}));
  ASSERT_EQ(again, blocks[0]);
  uint64_t cleared;
  memcpy(&cleared, static_cast<char*>(again) + 8, sizeof(cleared));
  EXPECT_NE(cleared, tag) << "a block handed out still carries the freed-block tag";
  memcpy(static_cast<char*>(blocks[5]) + 8, &tag, sizeof(tag));  // the program writes it
  free(blocks[5]);                                               // not reported: found in no list
  for (size_t i = 1; i < blocks.size(); ++i) {
    if (i != 5) free(blocks[i]);
  }
  free(again);
}

// A use-after-free write of an address over the first word of a freed block,
// where a list allocator keeps its link (tcache poisoning): the next mallocs
// return the attacker's address under tcmalloc and mimalloc. In every build of
// hakmem the write reaches nothing malloc follows: a cached block sits in its
// thread cache's slots, not on a list through the blocks; a block that goes
// straight back to its slab (an uncached pool class with pool_tls=off or under
// the heap profiler) is on the slab's list, whose links must lie in the slab
// (the refill that walks it reports); a large run or a huge mapping holds no
// link at all.
char g_attack_target[64] __attribute__((aligned(64)));

// (Two blocks: what every cached class's list holds without a flush, which
// would put them on their slab's list: UseAfterFreeWriteInASlabListIsReported.)
void PoisonFreedLink(size_t size) {
  constexpr int kBlocks = 2;
  char* freed[kBlocks];
  for (char*& p : freed) p = static_cast<char*>(malloc(Opaque(size)));
  for (char* p : freed) free(p);
  void* target = g_attack_target;
  for (char* p : freed) memcpy(p, &target, sizeof(target));  // the UAF writes
  void* out[2 * kBlocks];
  for (void*& p : out) {
    p = malloc(Opaque(size));  // the freed blocks again, then what a link would say
    if (p == g_attack_target) {
      fprintf(stderr, "FORGED: malloc returned the attacker's address\n");
      _exit(1);
    }
  }
  for (void* p : out) free(p);
  _exit(0);
}

TEST(InvalidFreeDeathTest, UseAfterFreeWriteOfAnAddressIsNeverHandedOut) {
  // Tiny (48 B), pool (4 KiB, 64 KiB), large (256 KiB) and huge (4 MiB).
  for (size_t size :
       {size_t{48}, size_t{4096}, size_t{65536}, size_t{256} << 10, size_t{4} << 20}) {
    const bool pool = size > 1024 && size <= (size_t{128} << 10);
    if (ProfilerOn() && size <= (size_t{128} << 10)) {
      // Uncached lists: the freed blocks go to their slab's list, and the mallocs
      // take them from there (reported) or first take the blocks a refill left
      // for the sampler (nothing written comes out): either, never the address.
      EXPECT_EXIT(
          PoisonFreedLink(size),
          [](int status) {
            return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                   (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
          },
          "^$|hakmem: corrupted free list")
          << size;
    } else if (pool && !hakmem::config::kPoolTls) {
      EXPECT_DEATH(PoisonFreedLink(size), "hakmem: corrupted free list") << size;
    } else {
      EXPECT_EXIT(PoisonFreedLink(size), testing::ExitedWithCode(0), "") << size;
    }
  }
}

// The same through a slab's free list, in the tiny and the pool lane: the cache
// overflowed, so most blocks went back to their slabs' lists, then a link there
// overwritten; the refill that walks it reports.
TEST(InvalidFreeDeathTest, UseAfterFreeWriteInASlabListIsReported) {
  for (size_t size : {size_t{48}, size_t{4096}, size_t{65536}}) {
    EXPECT_DEATH(
        {
          const size_t n = std::min<size_t>(4000, (size_t{64} << 20) / size);
          std::vector<char*> blocks;
          for (size_t i = 0; i < n; ++i) blocks.push_back(static_cast<char*>(malloc(Opaque(size))));
          for (char* p : blocks) free(p);  // overflows the thread cache: most go back to slabs
          void* target = g_attack_target;
          for (char* p : blocks) memcpy(p, &target, sizeof(target));
          for (size_t i = 0; i < n; ++i) {
            if (malloc(Opaque(size)) == g_attack_target) _exit(1);
          }
        },
        "hakmem: corrupted free list")
        << size;
  }
}

// A 16-byte overflow off the last block of a superslab overwrites the next
// superslab's header (magic kept, owner replaced). A remote free used to write a
// heap pointer through the forged owner (an arbitrary write); the owner's seal
// fails now, and nothing is written.
uintptr_t g_fake_heap[64] __attribute__((aligned(64)));

constexpr uintptr_t kSuperSlab = uintptr_t{2} << 20;
// Hardened builds follow each superslab with a 2 MiB guard chunk (superslab.h).
constexpr bool kGuardChunks = hakmem::config::kHardened;
constexpr int kLayoutBlocks = 70000;  // 64-byte blocks: more than two superslabs

// A 64-byte block that is the last of its superslab, with `victim` set to a
// block of the superslab right after it when `victim` is given; exits 2 when
// there is none.
char* LastBlockOfASuperSlab(void** victim) {
  static char* blocks[kLayoutBlocks];
  for (char*& p : blocks) p = static_cast<char*>(malloc(Opaque(size_t{64})));
  for (int i = 0; i < kLayoutBlocks; ++i) {
    const uintptr_t end = reinterpret_cast<uintptr_t>(blocks[i]) + 64;
    if (end % kSuperSlab != 0) continue;
    if (victim == nullptr) return blocks[i];
    const uintptr_t next = end / kSuperSlab;
    for (char* p : blocks) {
      if (reinterpret_cast<uintptr_t>(p) / kSuperSlab == next) {
        *victim = p;
        return blocks[i];
      }
    }
  }
  fprintf(stderr, "layout not found\n");
  _exit(2);
}

void OverflowIntoTheNextSuperSlabHeader() {
  void* victim = nullptr;
  char* last = LastBlockOfASuperSlab(&victim);
  uintptr_t* overflow = reinterpret_cast<uintptr_t*>(last + 64);
  overflow[1] = reinterpret_cast<uintptr_t>(g_fake_heap);  // the owner field
  std::thread([victim] { free(victim); }).join();
  if (g_fake_heap[0] != 0) {
    fprintf(stderr, "WRITTEN through the forged owner\n");
    _exit(1);
  }
  _exit(0);
}

TEST(InvalidFreeDeathTest, ForgedOwnerOfASuperSlabIsNeverWrittenThrough) {
  if (kGuardChunks) GTEST_SKIP() << "the guard chunk stops the overflow (OverflowOffTheLast...)";
  EXPECT_DEATH(OverflowIntoTheNextSuperSlabHeader(), "hakmem: corrupted superslab header");
}

// Hardened builds: a double free is caught even when a use-after-free write
// erased the block's freed-block tag (word 1) in between, wherever
// the block waits: in the thread cache, on its slab's list (after the cache
// overflowed), or in its owner's remote queue.
void DoubleFreeAfterErasing(int where) {
  constexpr int kMany = 5000;
  std::vector<char*> blocks;
  for (int i = 0; i < kMany; ++i) blocks.push_back(static_cast<char*>(malloc(Opaque(size_t{48}))));
  char* victim = blocks[where == 1 ? 0 : kMany - 1];
  if (where == 2) {
    std::thread([victim] { free(victim); }).join();
  } else {
    for (int i = kMany - 1; i >= 0; --i) free(blocks[i]);  // the first ones overflow to slabs
  }
  memset(victim + 8, 0, 8);  // the use-after-free write over the freed-block tag
  fprintf(stderr, "erased\n");
  free(victim);
  _exit(0);
}

TEST(InvalidFreeDeathTest, DoubleFreeOfAnErasedBlockAborts) {
  if (!hakmem::config::kHardened) {
    GTEST_SKIP() << "the default build finds a double free by the tag the write erased";
  }
  if (ProfilerOn()) GTEST_SKIP() << "thread caches are uncached under the heap profiler";
  for (int where : {0, 1, 2}) {  // thread cache, slab list, remote queue
    EXPECT_DEATH(DoubleFreeAfterErasing(where),
                 "erased\n[^\n]*hakmem: invalid free[^\n]*double free")
        << where;
  }
}

// 10000 mallocs of 64 bytes (enough to drain the remote queue and empty what it
// filled): exits with 1, saying so, if one returns the attacker's address.
void ExitIfMallocHandsOutTheTarget() {
  for (int i = 0; i < 10000; ++i) {
    if (malloc(Opaque(size_t{64})) == g_attack_target) {
      fprintf(stderr, "FORGED: malloc returned the attacker's address\n");
      _exit(1);
    }
  }
}

// A use-after-free write of a well-encoded link (one made with the process's
// key, which the test can read) into a block waiting in its owner's remote
// queue, pushed there on its own (linked through its first word: what a remote
// free does when no batch record can be made, and hardened builds always).
// Every build checks each such link against the owner's slabs before following
// it: cached, the forged address would be handed out; freed, written through.
void ForgeARemoteLink() {
  char* block = static_cast<char*>(malloc(Opaque(size_t{64})));
  std::thread([block] { hakmem::PushRemote(hakmem::SuperSlabOf(block), block); }).join();
  hakmem::StoreLink(block, g_attack_target);  // the forged write
  ExitIfMallocHandsOutTheTarget();
  _exit(0);
}

TEST(InvalidFreeDeathTest, ForgedRemoteLinkIsReported) {
  // In every build, reported where it is followed: the drain finds the forged
  // address.
  EXPECT_DEATH(ForgeARemoteLink(),
               ReportRegex(g_attack_target, "hakmem: corrupted free list[^\n]*decodes to"));
}

// The same write into blocks freed by another thread the usual way: their batch
// goes to the owner as a record of addresses, and no link through a block is
// ever followed, so the forged one is never read (default builds; hardened ones
// push each block on its own, above).
void ForgeLinksInABatch() {
  std::vector<char*> blocks;
  for (int i = 0; i < 200; ++i) blocks.push_back(static_cast<char*>(malloc(Opaque(size_t{64}))));
  std::thread([&] {
    for (char* b : blocks) free(b);
  }).join();  // batches handed over as they fill and at the thread's exit
  for (char* b : blocks) hakmem::StoreLink(b, g_attack_target);  // the forged writes
  ExitIfMallocHandsOutTheTarget();
  fprintf(stderr, "never followed\n");
  _exit(0);
}

TEST(InvalidFreeDeathTest, ForgedLinksInABatchOfRemoteFreesAreNeverFollowed) {
  if (hakmem::config::kHardened) GTEST_SKIP() << "hardened: each block pushed on its own";
  EXPECT_EXIT(ForgeLinksInABatch(), testing::ExitedWithCode(0), "never followed");
}

// Hardened builds: the same overflow off a superslab's last block faults in the
// guard chunk after it and never reaches the next superslab's header.
TEST(InvalidFreeDeathTest, OverflowOffTheLastBlockOfASuperSlabFaults) {
  if (!kGuardChunks) GTEST_SKIP() << "no guard chunks without --define hakmem_hardened=on";
  EXPECT_EXIT(
      {
        char* last = LastBlockOfASuperSlab(nullptr);
        static_cast<volatile char*>(last)[63] = 1;  // its own last byte
        fprintf(stderr, "last byte written\n");
        static_cast<volatile char*>(last)[64] = 1;
        _exit(0);
      },
      testing::KilledBySignal(SIGSEGV), "last byte written");
}

// Hardened builds: a huge block ends with a guard page right after its usable
// size.
TEST(InvalidFreeDeathTest, OverflowOffAHugeBlockFaults) {
  if (!kGuardChunks) GTEST_SKIP() << "no guard pages without --define hakmem_hardened=on";
  EXPECT_EXIT(
      {
        const size_t size = (size_t{3} << 20) + 100;
        char* p = static_cast<char*>(malloc(Opaque(size)));
        const size_t usable = malloc_usable_size(p);
        if (p == nullptr || usable < size) _exit(2);
        memset(p, 1, usable);
        fprintf(stderr, "usable bytes written\n");
        static_cast<volatile char*>(p)[usable] = 1;
        _exit(0);
      },
      testing::KilledBySignal(SIGSEGV), "usable bytes written");
}

// The same for a huge block that realloc moved to a bigger mapping (its whole
// 2 MiB pages moved, its partial last one copied): the new mapping's guard page
// stands after its usable bytes, and none of the old ones was lost.
TEST(InvalidFreeDeathTest, OverflowOffAHugeBlockGrownByReallocFaults) {
  if (!kGuardChunks) GTEST_SKIP() << "no guard pages without --define hakmem_hardened=on";
  EXPECT_EXIT(
      {
        const size_t size = (size_t{3} << 20) + 100;
        char* p = static_cast<char*>(malloc(Opaque(size)));
        if (p == nullptr) _exit(2);
        const size_t old_usable = malloc_usable_size(p);
        memset(p, 1, old_usable);
        p = static_cast<char*>(realloc(p, Opaque(size_t{9} << 20)));
        const size_t usable = malloc_usable_size(p);
        if (p == nullptr || usable < (size_t{9} << 20)) _exit(3);
        for (size_t i = 0; i < old_usable; ++i) {
          if (p[i] != 1) _exit(4);
        }
        memset(p, 1, usable);
        fprintf(stderr, "usable bytes written\n");
        static_cast<volatile char*>(p)[usable] = 1;
        _exit(0);
      },
      testing::KilledBySignal(SIGSEGV), "usable bytes written");
}

// A huge block freed again after its mapping went back to the OS (malloc_trim
// releases the cached mapping): the registry no longer knows it, and it used to be
// handed to the C library's free, which crashed on it.
TEST(InvalidFreeDeathTest, StaleFreeOfAReleasedHugeBlockIsReported) {
  void* block = malloc(Opaque(size_t{4} << 20));
  ASSERT_NE(block, nullptr);
  memset(block, 1, size_t{4} << 20);
  free(block);
  malloc_trim(0);
  EXPECT_DEATH(free(Opaque(block)), ReportRegex(block) + ".*released huge block");
  EXPECT_DEATH(malloc_usable_size(Opaque(block)), ReportRegex(block));
}

// The same for the address a huge block had before realloc moved it to a bigger
// mapping: nothing is registered there any more either.
TEST(InvalidFreeDeathTest, StaleFreeOfAHugeBlockMovedByReallocIsReported) {
  char* old = static_cast<char*>(malloc(Opaque(size_t{3} << 20)));
  ASSERT_NE(old, nullptr);
  memset(old, 1, size_t{3} << 20);
  char* grown = static_cast<char*>(realloc(old, Opaque(size_t{9} << 20)));
  ASSERT_NE(grown, nullptr);
  ASSERT_NE(grown, old);
  EXPECT_DEATH(free(Opaque(old)), ReportRegex(old) + ".*before realloc moved it");
  free(grown);
}

// ---------------------------------------------------------------------------
// HAKMEM_INVALID_FREE=warn: report and go on. Each case runs in a fresh process.

// What a child of this binary did.
struct ChildRun {
  int status = -1;
  std::string out;
  std::string err;
};

// Runs this binary with `--invalid_free_child=<name>` and `env_entry` added to
// the environment, and collects its stdout, stderr and exit status.
ChildRun RunChild(const std::string& name, const std::string& env_entry) {
  ChildRun run;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return run;
  }
  // Everything the child needs, built before fork.
  const std::string flag = std::string(kChildFlag) + name;
  std::vector<std::string> env_strings;
  const std::string env_name = env_entry.substr(0, env_entry.find('=') + 1);
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, env_name.c_str(), env_name.size()) != 0) env_strings.push_back(*e);
  }
  env_strings.push_back(env_entry);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(&s[0]);
  envp.push_back(nullptr);
  char self[] = "/proc/self/exe";
  std::vector<char*> argv = {self, const_cast<char*>(flag.c_str()), nullptr};

  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execve(self, argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return run;
  }
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&run.out, &run.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  while (waitpid(pid, &run.status, 0) < 0 && errno == EINTR) {
  }
  return run;
}

// The lines of `text` that contain `needle`.
std::vector<std::string> LinesWith(const std::string& text, const std::string& needle) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (line.find(needle) != std::string::npos) lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

// The address after the first "0x" in `line`, or 0.
uintptr_t AddressIn(const std::string& line) {
  const size_t at = line.find("0x");
  if (at == std::string::npos) return 0;
  return static_cast<uintptr_t>(strtoull(line.c_str() + at + 2, nullptr, 16));
}

// Runs `name` in warn mode: it must exit 0 after its invalid free, having printed
// exactly one report, which names the address the child printed on stdout.
void ExpectWarnedAndContinued(const std::string& name) {
  const ChildRun run = RunChild(name, "HAKMEM_INVALID_FREE=warn");
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << name << ": child status " << run.status
      << (WIFSIGNALED(run.status)
              ? " (killed by signal " + std::to_string(WTERMSIG(run.status)) + ")"
              : "")
      << "\nstdout:\n"
      << run.out << "\nstderr:\n"
      << run.err;
  EXPECT_NE(run.out.find("continued"), std::string::npos) << name << ": stdout:\n" << run.out;
  const std::vector<std::string> freed = LinesWith(run.out, "freed 0x");
  ASSERT_EQ(freed.size(), 1u) << name << ": stdout:\n" << run.out;
  const uintptr_t address = AddressIn(freed[0]);
  // Exactly one report (a debug_log build adds other hakmem lines, not reports).
  const std::vector<std::string> reports = LinesWith(run.err, "hakmem: invalid free");
  ASSERT_EQ(reports.size(), 1u) << name << ": expected one invalid-free report on stderr:\n"
                                << run.err;
  EXPECT_EQ(AddressIn(reports[0]), address)
      << name << ": report \"" << reports[0] << "\" for a free of 0x" << std::hex << address;
}

TEST(InvalidFreeWarnTest, StackAddressIsReportedAndTheProgramGoesOn) {
  ExpectWarnedAndContinued("stack");
}

TEST(InvalidFreeWarnTest, InteriorPointerOfTinyBlockIsReportedAndTheProgramGoesOn) {
  ExpectWarnedAndContinued("interior_tiny");
}

TEST(InvalidFreeWarnTest, InteriorPointerOfPoolBlockIsReportedAndTheProgramGoesOn) {
  ExpectWarnedAndContinued("interior_pool");
}

TEST(InvalidFreeWarnTest, DoubleFreeOfTinyBlockIsReportedAndTheProgramGoesOn) {
  ExpectWarnedAndContinued("double_tiny");
}

TEST(InvalidFreeWarnTest, ChildWithTheVariableSetToAbortDies) {
  // The same child with the variable set to "abort": it dies after one report
  // (and the re-executed child is shown to see the variable).
  const ChildRun run = RunChild("interior_tiny", "HAKMEM_INVALID_FREE=abort");
  EXPECT_FALSE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "the child went on after an invalid free in abort mode\nstderr:\n"
      << run.err;
  EXPECT_EQ(LinesWith(run.err, "hakmem: invalid free").size(), 1u) << run.err;
  EXPECT_EQ(run.out.find("continued"), std::string::npos);
}

// The warn-mode child: one invalid free, then more work, then exit 0.
int ChildMain(const std::string& name) {
  void* reported = nullptr;
  void* block = nullptr;
  if (name == "stack") {
    FreeStackAddress(&reported);
  } else if (name == "interior_tiny") {
    block = malloc(Opaque(size_t{64}));
    FreeInteriorOfTinyBlock(block, &reported);
  } else if (name == "interior_pool") {
    block = malloc(Opaque(size_t{4096}));
    FreeInteriorOfPoolBlock(block, &reported);
  } else if (name == "double_tiny") {
    DoubleFreeTinyBlock(malloc(Opaque(size_t{32})), &reported);
  } else {
    fprintf(stderr, "unknown child case %s\n", name.c_str());
    return 2;
  }
  // stdout is a pipe: print after the free (stdio may allocate).
  printf("freed %p\n", reported);
  // The allocator still works after the report.
  for (int i = 0; i < 1000; ++i) {
    void* p = malloc(Opaque(static_cast<size_t>(1 + i * 37 % 5000)));
    if (p == nullptr) return 3;
    memset(p, 0x5a, 1);
    free(p);
  }
  printf("continued\n");
  fflush(stdout);
  (void)block;  // left allocated: no claim about a block an invalid free pointed into
  return 0;
}

// ---------------------------------------------------------------------------
// Foreign pointers: the C library's own blocks, freed with free().

TEST(ForeignFreeTest, SmallBlockFromLibcMallocIsHandedBack) {
  for (int i = 0; i < 1000; ++i) {
    void* p = __libc_malloc(100);
    ASSERT_NE(p, nullptr);
    memset(p, 0x11, 100);
    free(Opaque(p));
  }
  // Handed back, not dropped: many cycles do not grow the C library's heap.
  const size_t before = mallinfo2().arena;
  for (int i = 0; i < 100000; ++i) {
    void* p = __libc_malloc(100);
    ASSERT_NE(p, nullptr);
    free(Opaque(p));
  }
  EXPECT_LT(mallinfo2().arena, before + (size_t{1} << 20))
      << "100000 x 100-byte libc blocks freed with free() grew libc's heap";
}

TEST(ForeignFreeTest, LargeMmappedBlockFromLibcMallocIsHandedBack) {
  for (int i = 0; i < 20; ++i) {
    const size_t hblkhd_before = mallinfo2().hblkhd;
    void* p = __libc_malloc(size_t{1} << 20);
    ASSERT_NE(p, nullptr);
    memset(p, 0x22, size_t{1} << 20);
    const bool mmapped = mallinfo2().hblkhd >= hblkhd_before + (size_t{1} << 20);
    free(Opaque(p));
    // If glibc served it with its own mapping, free() must have unmapped it.
    if (mmapped) {
      EXPECT_EQ(mallinfo2().hblkhd, hblkhd_before) << "the libc mapping was not given back";
    }
  }
}

TEST(ForeignFreeTest, LibcBlocksFreedFromAnotherThread) {
  // Allocated by libc in this thread, freed with free() in another.
  std::vector<void*> blocks;
  for (size_t n : {size_t{16}, size_t{100}, size_t{5000}, size_t{200000}, size_t{1} << 20}) {
    void* p = __libc_malloc(n);
    ASSERT_NE(p, nullptr);
    memset(p, 0x33, n);
    blocks.push_back(p);
  }
  std::thread([&] {
    for (void* p : blocks) free(Opaque(p));
  }).join();
  // Allocated by libc in another thread (its own arena), freed here.
  blocks.clear();
  std::thread([&] {
    for (size_t n : {size_t{16}, size_t{100}, size_t{5000}, size_t{200000}, size_t{1} << 20}) {
      void* p = __libc_malloc(n);
      if (p != nullptr) memset(p, 0x44, n);
      blocks.push_back(p);
    }
  }).join();
  for (void* p : blocks) {
    ASSERT_NE(p, nullptr);
    free(Opaque(p));
  }
  // And the allocator under test is fine afterwards.
  void* p = malloc(Opaque(size_t{100}));
  ASSERT_NE(p, nullptr);
  free(p);
}

TEST(ForeignFreeTest, NullAndOwnBlocksAreNotReported) {
  free(Opaque(static_cast<void*>(nullptr)));
  for (size_t n : {size_t{1}, size_t{64}, size_t{4096}, size_t{200000}, size_t{3} << 20}) {
    void* p = malloc(Opaque(n));
    ASSERT_NE(p, nullptr);
    free(p);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && strncmp(argv[1], kChildFlag, strlen(kChildFlag)) == 0) {
    return ChildMain(argv[1] + strlen(kChildFlag));
  }
  testing::InitGoogleTest(&argc, argv);
  // Death tests fork without exec, so the child has this process's addresses
  // and the reports can be matched against exact addresses.
  GTEST_FLAG_SET(death_test_style, "fast");
  return RUN_ALL_TESTS();
}
