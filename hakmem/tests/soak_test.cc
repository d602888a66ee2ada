// Soak: for SOAK_SECONDS (default 8; set it to hours for a real soak), waves of
// short-lived threads allocate blocks of every lane, free some of their own and
// leave the rest in a shared pool, from which later threads (and the main thread)
// check and free them: remote frees into the heaps of threads that have exited.
// Every few waves the process forks; the child checks the blocks it inherited,
// allocates, frees, starts a thread and exits. Nothing may be lost (every block
// keeps its contents until its free, every allocation succeeds) and resident
// memory stays bounded.
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/tests/test_util.h"

namespace {

using hakmem_test::FillPattern;
using hakmem_test::FirstPatternMismatch;
using hakmem_test::Mix;
using hakmem_test::PatternKey;
using hakmem_test::ResidentBytes;

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

using Block = hakmem_test::PatternBlock;
using hakmem_test::Intact;

std::mutex g_pool_mutex;
std::vector<Block> g_pool;  // blocks left behind by threads, freed by others
std::atomic<int> g_failures{0};
std::atomic<uint64_t> g_allocated{0};
std::atomic<uint64_t> g_freed{0};

size_t SoakSize(uint64_t r) {
  switch (r % 16) {
    case 0:
      return 128 * kKiB + (r >> 8) % (896 * kKiB);  // large
    case 1:
      return (r >> 8) % 64 == 0 ? kMiB + (r >> 16) % (3 * kMiB) : 4000;  // now and then huge
    case 2:
    case 3:
    case 4:
      return kKiB + (r >> 8) % (127 * kKiB);  // pool
    default:
      return 1 + (r >> 8) % 1024;  // tiny
  }
}

Block NewBlock(uint64_t r) {
  Block b;
  b.size = SoakSize(r);
  b.p = malloc(b.size);
  if (b.p == nullptr) {
    g_failures.fetch_add(1);
    return b;
  }
  g_allocated.fetch_add(1);
  hakmem_test::FillBlock(&b, r);
  return b;
}

void FreeBlock(const Block& b) {
  if (b.p == nullptr) return;
  if (!Intact(b)) g_failures.fetch_add(1);
  free(b.p);
  g_freed.fetch_add(1);
}

// One short life: allocate, free half, take some blocks of exited threads from the
// pool and free them, leave the other half in the pool.
void Life(uint64_t seed) {
  uint64_t r = Mix(seed);
  std::vector<Block> mine;
  for (int i = 0; i < 64; ++i) {
    r = Mix(r);
    mine.push_back(NewBlock(r));
  }
  std::vector<Block> taken;
  {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    for (int i = 0; i < 32 && !g_pool.empty(); ++i) {
      const size_t at = Mix(r + i) % g_pool.size();
      taken.push_back(g_pool[at]);
      g_pool[at] = g_pool.back();
      g_pool.pop_back();
    }
  }
  for (const Block& b : taken) FreeBlock(b);
  for (size_t i = 0; i < mine.size(); i += 2) FreeBlock(mine[i]);
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  for (size_t i = 1; i < mine.size(); i += 2) g_pool.push_back(mine[i]);
}

// The child of a fork: inherited blocks intact, the allocator usable, threads too.
int ForkChild() {
  int bad = 0;
  {
    std::lock_guard<std::mutex> lock(g_pool_mutex);  // held by no one: forked between waves
    for (const Block& b : g_pool) {
      if (!Intact(b)) ++bad;
    }
    for (size_t i = 0; i < g_pool.size(); i += 3) free(g_pool[i].p);  // the child's own frees
    g_pool.clear();
  }
  std::thread t(Life, 12345);
  t.join();
  for (int i = 0; i < 1000; ++i) free(malloc(SoakSize(Mix(i))));
  return bad == 0 && g_failures.load() == 0 ? 0 : 1;
}

double Seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

TEST(SoakTest, ThreadsComeAndGoWhileOthersFreeTheirBlocksWithForks) {
  const char* env = getenv("SOAK_SECONDS");
  const double seconds = env != nullptr ? atof(env) : 8.0;
  const double start = Seconds();
  uint64_t seed = 1;
  size_t rss_after_warmup = 0;
  size_t rss_peak = 0;
  int waves = 0;
  int forks = 0;
  while (Seconds() - start < seconds || waves < 20) {
    std::vector<std::thread> wave;
    for (int i = 0; i < 4; ++i) wave.emplace_back(Life, seed++);
    for (std::thread& t : wave) t.join();
    ++waves;
    {
      // The pool stays near a steady size: the main thread frees the surplus.
      std::lock_guard<std::mutex> lock(g_pool_mutex);
      while (g_pool.size() > 2000) {
        FreeBlock(g_pool.back());
        g_pool.pop_back();
      }
    }
    if (waves % 25 == 0) {
      const pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) _exit(ForkChild());
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "fork child: " << (WIFEXITED(status) ? "exit " : "signal ")
          << (WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      ++forks;
    }
    const size_t rss = ResidentBytes();
    if (waves == 20) rss_after_warmup = rss;
    if (rss > rss_peak) rss_peak = rss;
  }
  {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    for (const Block& b : g_pool) FreeBlock(b);
    g_pool.clear();
  }
  EXPECT_EQ(g_failures.load(), 0) << "failed allocations or blocks whose contents changed";
  EXPECT_EQ(g_allocated.load(), g_freed.load()) << "blocks allocated but never freed by the test";
  // The pool holds at most 2,000 blocks (a few MiB) plus the waves' own: resident
  // memory must not keep growing after the warm-up.
  EXPECT_LT(rss_peak, rss_after_warmup + 128 * kMiB)
      << "RSS grew from " << rss_after_warmup / kMiB << " MiB to " << rss_peak / kMiB << " MiB";
  RecordProperty("waves", waves);
  RecordProperty("forks", forks);
  RecordProperty("rss_peak_mib", static_cast<int>(rss_peak / kMiB));
}

}  // namespace
