// Thread lifecycle: 10,000 short-lived threads one after another (their heaps are
// handed back at exit and adopted by the next thread; blocks they leave behind
// are freed later by the main thread, i.e. remote frees to exited threads), with
// resident memory checked to stay bounded; and fork() while other threads are
// allocating, with the child allocating, freeing and starting a thread of its own.
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/tests/test_util.h"

#if HAKMEM_TEST_LINKS_HAKMEM
#include "hakmem/hakmem.h"
#endif

namespace {

using hakmem_test::FillPattern;
using hakmem_test::FirstPatternMismatch;
using hakmem_test::Mix;
using hakmem_test::Opaque;
using hakmem_test::PatternKey;
using hakmem_test::ResidentBytes;

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

using Block = hakmem_test::PatternBlock;
using hakmem_test::AllocateFilled;
using hakmem_test::Intact;

// A size in [lo, hi], log-uniform.
size_t LogUniform(uint64_t r, size_t lo, size_t hi) {
  const int lo_bits = 64 - __builtin_clzll(lo | 1);
  const int hi_bits = 64 - __builtin_clzll(hi);
  const int bits = lo_bits + static_cast<int>(r % static_cast<uint64_t>(hi_bits - lo_bits + 1));
  const size_t from = std::max(lo, size_t{1} << (bits - 1));
  const size_t to = std::min(hi, (size_t{1} << bits) - 1);
  return from + Mix(r) % (to - from + 1);
}

// A size for block `i` of thread `index`: mostly tiny, some pool, one large
// block in every fourth thread.
size_t ChurnSize(uint64_t r, int index, int i) {
  if (i == 15 && index % 4 == 0) return LogUniform(r, 128 * kKiB + 1, kMiB);  // large
  if (i % 4 == 3) return LogUniform(r, 1 * kKiB + 1, 128 * kKiB);             // pool
  return LogUniform(r, 1, 1024);                                              // tiny
}

// One thread's life: allocate a mix of blocks, free most of them, and leave the
// rest (those of `left_behind`) for the main thread to free after the join.
void ThreadLife(int index, std::vector<Block>* left_behind, std::atomic<int>* failures) {
  uint64_t r = Mix(static_cast<uint64_t>(index));
  std::vector<Block> blocks;
  blocks.reserve(48);
  for (int i = 0; i < 48; ++i) {
    r = Mix(r);
    blocks.push_back(AllocateFilled(ChurnSize(r, index, i), r));
    if (blocks.back().p == nullptr) {
      failures->fetch_add(1);
      blocks.pop_back();
    }
  }
  if (index % 64 == 0) {  // now and then a huge block
    blocks.push_back(AllocateFilled(2 * kMiB + static_cast<size_t>(r % (2 * kMiB)), r + 1));
    if (blocks.back().p == nullptr) {
      failures->fetch_add(1);
      blocks.pop_back();
    }
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (!Intact(blocks[i])) failures->fetch_add(1);
    if (i % 3 == 0) {
      left_behind->push_back(blocks[i]);
    } else {
      free(blocks[i].p);
    }
  }
}

#if HAKMEM_TEST_LINKS_HAKMEM
hak_stats Stats() {
  hak_stats s;
  hak_get_stats(&s);
  return s;
}
#endif

TEST(ThreadsTest, TenThousandShortLivedThreadsKeepMemoryBounded) {
  constexpr int kThreads = 10000;
  constexpr int kWarmup = 200;
  // Blocks of a thread are freed by main a few threads later, so some heaps are
  // abandoned with live blocks and get their remote frees after adoption.
  constexpr size_t kLag = 8;
  std::atomic<int> failures{0};
  std::deque<std::vector<Block>> pending;

  auto run_one = [&](int index) {
    std::vector<Block> left_behind;
    left_behind.reserve(64);
    std::thread t(ThreadLife, index, &left_behind, &failures);
    t.join();
    pending.push_back(std::move(left_behind));
    if (pending.size() > kLag) {
      for (const Block& b : pending.front()) {
        if (!Intact(b)) failures.fetch_add(1);
        free(b.p);
      }
      pending.pop_front();
    }
  };

  for (int i = 0; i < kWarmup; ++i) run_one(i);
  const size_t rss_before = ResidentBytes();
  ASSERT_GT(rss_before, 0u) << "cannot read /proc/self/statm";
#if HAKMEM_TEST_LINKS_HAKMEM
  const hak_stats stats_before = Stats();
#endif

  size_t rss_max = rss_before;
  for (int i = kWarmup; i < kWarmup + kThreads; ++i) {
    run_one(i);
    if (i % 250 == 0) {
      const size_t rss = ResidentBytes();
      if (rss > rss_max) rss_max = rss;
    }
  }
  while (!pending.empty()) {
    for (const Block& b : pending.front()) {
      if (!Intact(b)) failures.fetch_add(1);
      free(b.p);
    }
    pending.pop_front();
  }
  const size_t rss_after = ResidentBytes();
  if (rss_after > rss_max) rss_max = rss_after;

  EXPECT_EQ(failures.load(), 0) << "failed allocations or blocks whose contents changed";
  const size_t limit = 64 * kMiB;
  EXPECT_LT(rss_max - rss_before, limit)
      << "RSS grew from " << rss_before / kKiB << " KiB to a peak of " << rss_max / kKiB
      << " KiB over " << kThreads << " threads";
  RecordProperty("rss_before_kib", static_cast<int>(rss_before / kKiB));
  RecordProperty("rss_peak_kib", static_cast<int>(rss_max / kKiB));
  RecordProperty("rss_after_kib", static_cast<int>(rss_after / kKiB));

#if HAKMEM_TEST_LINKS_HAKMEM
  // Exited threads' heaps are adopted by new threads: 10,000 threads one after
  // another need only a handful of heaps, not one each. (With --define
  // hakmem_stats=off the counters read 0 and this holds trivially.)
  const hak_stats stats_after = Stats();
  const uint64_t heaps_created = stats_after.heaps_created - stats_before.heaps_created;
  EXPECT_LT(heaps_created, uint64_t{kThreads / 10})
      << "heaps_created grew by " << heaps_created << " over " << kThreads << " sequential threads";
  RecordProperty("heaps_created", static_cast<int>(heaps_created));
  RecordProperty("heaps_adopted",
                 static_cast<int>(stats_after.heaps_adopted - stats_before.heaps_adopted));
#endif
}

// ---------------------------------------------------------------------------
// Allocations during thread teardown

pthread_key_t g_rearming_key;

// A key destructor that allocates in every destructor round and re-arms itself,
// as some libraries do to run "last": its allocations in the final round come
// after the allocator's own destructor has handed the heap back.
void RearmingDestructor(void* value) {
  const intptr_t round = reinterpret_cast<intptr_t>(value);
  void* p = malloc(Opaque(size_t{64}));
  void* q = malloc(Opaque(size_t{5000}));
  memset(p, 1, 64);
  memset(q, 2, 5000);
  free(p);
  free(q);
  if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
    pthread_setspecific(g_rearming_key, reinterpret_cast<void*>(round + 1));
  }
}

void* RearmingThread(void*) {
  free(malloc(Opaque(size_t{64})));
  pthread_setspecific(g_rearming_key, reinterpret_cast<void*>(intptr_t{1}));
  return nullptr;
}

// 2,000 threads whose teardown allocates in every destructor round: address space
// and heaps stay bounded (a heap attached in the last round used to stay attached
// to the dead thread: one heap and one superslab per thread, 4 GB of address
// space over 2,000 threads), and the stats (whose per-thread list such a thread
// left in a cycle) still answer.
TEST(ThreadsTest, AllocationsInTheLastDestructorRoundAreHandedBack) {
  free(malloc(Opaque(size_t{1})));  // the allocator's own key is created first
  ASSERT_EQ(pthread_key_create(&g_rearming_key, RearmingDestructor), 0);
  constexpr int kThreads = 2000;
  for (int i = 0; i < 50; ++i) {  // warm-up
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr, RearmingThread, nullptr), 0);
    pthread_join(t, nullptr);
  }
  const size_t vm_before = hakmem_test::VirtualBytes();
#if HAKMEM_TEST_LINKS_HAKMEM
  const hak_stats stats_before = Stats();
#endif
  for (int i = 0; i < kThreads; ++i) {
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr, RearmingThread, nullptr), 0);
    pthread_join(t, nullptr);
  }
  // Signed: the address space may also shrink (cached mappings released).
  const int64_t vm_grown =
      static_cast<int64_t>(hakmem_test::VirtualBytes()) - static_cast<int64_t>(vm_before);
  EXPECT_LT(vm_grown, static_cast<int64_t>(256 * kMiB))
      << "address space grew by " << vm_grown / static_cast<int64_t>(kMiB) << " MiB over "
      << kThreads << " threads";
#if HAKMEM_TEST_LINKS_HAKMEM
  // Every heap attached is handed back: the heaps attached to live threads are as
  // many as before. (hak_get_stats hung here when the thread list had a cycle.)
  const hak_stats stats_after = Stats();
  auto attached = [](const hak_stats& s) {
    return static_cast<int64_t>(s.heaps_created + s.heaps_adopted - s.heaps_abandoned);
  };
  EXPECT_EQ(attached(stats_after), attached(stats_before))
      << "heaps attached and never handed back over " << kThreads << " threads";
#endif
  pthread_key_delete(g_rearming_key);
}

// ---------------------------------------------------------------------------
// fork()

// Exit codes of the child, to tell the parent what went wrong.
enum ChildExit : int {
  kChildOk = 0,
  kChildMallocFailed = 10,
  kChildContentsChanged = 11,
  kChildInheritedBlockChanged = 12,
  kChildThreadFailed = 13,
  kChildWriteFailed = 14,
};

// The child of a fork: allocate and free in every lane, free blocks inherited
// from the parent (one from the main thread, one from a worker thread that does
// not exist in the child), start and join a thread, report one byte, _exit.
[[noreturn]] void ChildMain(int write_fd, const Block& inherited_main,
                            const Block& inherited_worker) {
  alarm(30);  // a deadlocked child dies of SIGALRM instead of hanging the test
  if (!Intact(inherited_main) || !Intact(inherited_worker)) _exit(kChildInheritedBlockChanged);
  free(inherited_main.p);
  free(inherited_worker.p);
  const size_t sizes[] = {1,     16,         100,    1024, 1025,         5000,
                          70000, 128 * kKiB, 200000, kMiB, 2 * kMiB + 1, 5 * kMiB};
  for (int round = 0; round < 4; ++round) {
    Block blocks[sizeof(sizes) / sizeof(sizes[0])];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
      blocks[i] = AllocateFilled(sizes[i], static_cast<uint64_t>(round));
      if (blocks[i].p == nullptr) _exit(kChildMallocFailed);
    }
    for (const Block& b : blocks) {
      if (!Intact(b)) _exit(kChildContentsChanged);
      free(b.p);
    }
  }
  // A thread in the child: its allocator state must be usable after fork.
  std::atomic<int> thread_result{-1};
  Block from_thread;
  std::thread t([&] {
    for (size_t n : sizes) {
      Block b = AllocateFilled(n, 99);
      if (b.p == nullptr || !Intact(b)) {
        thread_result = 1;
        return;
      }
      free(b.p);
    }
    from_thread = AllocateFilled(3000, 5);
    thread_result = from_thread.p == nullptr ? 1 : 0;
  });
  t.join();
  if (thread_result.load() != 0) _exit(kChildThreadFailed);
  if (!Intact(from_thread)) _exit(kChildContentsChanged);
  free(from_thread.p);  // a free to the exited thread's heap
  const char ok = 'k';
  if (write(write_fd, &ok, 1) != 1) _exit(kChildWriteFailed);
  _exit(kChildOk);
}

TEST(ThreadsTest, ForkWhileOtherThreadsAllocate) {
  constexpr int kWorkers = 4;
  constexpr int kForks = 20;
  std::atomic<bool> stop{false};
  // Blocks the workers exchange: each worker frees blocks other workers made.
  std::mutex exchange_mu;
  std::vector<Block> exchange;
  std::atomic<int> worker_failures{0};

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      uint64_t r = Mix(static_cast<uint64_t>(w) + 12345);
      std::vector<Block> mine;
      while (!stop.load(std::memory_order_relaxed)) {
        r = Mix(r);
        const int lane = static_cast<int>(r % 32);
        size_t size = 1 + r % 1024;                                                     // tiny
        if (lane >= 20) size = 1 * kKiB + (r >> 8) % (127 * kKiB);                      // pool
        if (lane == 30) size = 128 * kKiB + (r >> 8) % (896 * kKiB);                    // large
        if (lane == 31 && (r >> 40) % 8 == 0) size = 2 * kMiB + (r >> 8) % (2 * kMiB);  // huge
        Block b = AllocateFilled(size, r);
        if (b.p == nullptr) {
          worker_failures.fetch_add(1);
          continue;
        }
        mine.push_back(b);
        if (mine.size() > 64) {
          // Swap one block with the exchange, free another of ours.
          Block out = mine.front();
          mine.erase(mine.begin());
          {
            std::lock_guard<std::mutex> lock(exchange_mu);
            exchange.push_back(out);
            if (exchange.size() > 32) {
              out = exchange.front();
              exchange.erase(exchange.begin());
            } else {
              out = Block();
            }
          }
          if (out.p != nullptr) {
            if (!Intact(out)) worker_failures.fetch_add(1);
            free(out.p);
          }
          Block local = mine.back();
          mine.pop_back();
          if (!Intact(local)) worker_failures.fetch_add(1);
          free(local.p);
        }
      }
      for (const Block& b : mine) {
        if (!Intact(b)) worker_failures.fetch_add(1);
        free(b.p);
      }
    });
  }

  for (int f = 0; f < kForks; ++f) {
    usleep(20 * 1000);  // let the workers run into the middle of something
    // A block of a worker thread, taken out of the exchange (not under the lock
    // at fork time: a std::mutex held by a worker would stay locked in the child).
    Block from_worker;
    for (int tries = 0; from_worker.p == nullptr && tries < 1000; ++tries) {
      {
        std::lock_guard<std::mutex> lock(exchange_mu);
        if (!exchange.empty()) {
          from_worker = exchange.back();
          exchange.pop_back();
        }
      }
      if (from_worker.p == nullptr) usleep(1000);
    }
    ASSERT_NE(from_worker.p, nullptr) << "the workers made no blocks";
    Block from_main = AllocateFilled(777 + static_cast<size_t>(f) * 1000, static_cast<uint64_t>(f));
    ASSERT_NE(from_main.p, nullptr);

    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0) << "fork failed: errno " << errno;
    if (pid == 0) {
      close(fds[0]);
      ChildMain(fds[1], from_main, from_worker);
    }
    close(fds[1]);
    char byte = 0;
    ssize_t got;
    do {
      got = read(fds[0], &byte, 1);
    } while (got < 0 && errno == EINTR);
    close(fds[0]);
    int status = 0;
    pid_t waited;
    do {
      waited = waitpid(pid, &status, 0);
    } while (waited < 0 && errno == EINTR);
    ASSERT_EQ(waited, pid);
    EXPECT_TRUE(WIFEXITED(status))
        << "fork " << f << ": child killed by signal "
        << (WIFSIGNALED(status) ? WTERMSIG(status) : 0)
        << (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (SIGALRM: deadlock?)" : "");
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), kChildOk) << "fork " << f << ": child exit code";
    }
    EXPECT_EQ(got, 1) << "fork " << f << ": child wrote no byte";
    EXPECT_EQ(byte, 'k');

    // The parent's copies are untouched by the child and still ours to free.
    EXPECT_TRUE(Intact(from_main));
    EXPECT_TRUE(Intact(from_worker));
    free(from_main.p);
    free(from_worker.p);
  }

  stop = true;
  for (std::thread& t : workers) t.join();
  for (const Block& b : exchange) {
    if (!Intact(b)) worker_failures.fetch_add(1);
    free(b.p);
  }
  EXPECT_EQ(worker_failures.load(), 0);
}

// fork() from a thread other than main, while main and other threads allocate.
TEST(ThreadsTest, ForkFromASecondaryThread) {
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    uint64_t r = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      r = Mix(r);
      void* p = malloc(1 + r % 100000);
      if (p != nullptr) static_cast<char*>(p)[0] = 1;
      free(p);
    }
  });
  for (int f = 0; f < 5; ++f) {
    int child_status = -1;
    std::thread forker([&] {
      void* before = malloc(5000);
      const pid_t pid = fork();
      if (pid == 0) {
        alarm(30);
        free(before);
        for (size_t n : {size_t{10}, size_t{2000}, size_t{300000}, 3 * kMiB}) {
          void* p = malloc(n);
          if (p == nullptr) _exit(10);
          static_cast<char*>(p)[n - 1] = 1;
          free(p);
        }
        _exit(0);
      }
      int status = 0;
      if (pid > 0 && waitpid(pid, &status, 0) == pid) child_status = status;
      free(before);
    });
    forker.join();
    EXPECT_TRUE(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0)
        << "status " << child_status;
  }
  stop = true;
  busy.join();
}

}  // namespace
