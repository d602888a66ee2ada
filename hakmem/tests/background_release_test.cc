// background_release: memory a program freed goes back to the OS while the
// program makes no allocator call at all (HAKMEM_BACKGROUND_RELEASE=1, the
// default), in a fork child too; with HAKMEM_BACKGROUND_RELEASE=0 it stays until
// the program calls again. Declared twice in BUILD.bazel, with the option unset
// and with it 0. Linked with //hakmem:malloc: the wrappers' __libc_start_main
// tells hakmem that main runs, which the thread waits for.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config/build_config.h"
#include "hakmem/hakmem.h"

namespace {

constexpr long kMiB = 1024;  // in KiB, as RSS is read

long RssKb() {
  FILE* f = fopen("/proc/self/statm", "re");
  if (f == nullptr) return -1;
  long pages = 0, resident = 0;
  const int n = fscanf(f, "%ld %ld", &pages, &resident);
  fclose(f);
  return n == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

bool ReleaseOn() {
  const char* option = getenv("HAKMEM_BACKGROUND_RELEASE");
  return option == nullptr || strcmp(option, "0") != 0;
}

uint64_t Passes() {
  hak_stats stats;
  hak_get_stats(&stats);
  return stats.background_passes;
}

// Allocates and writes `bytes` in blocks of mixed small sizes, frees every one,
// then makes no allocator call for `quiet`; returns {RSS full, RSS after}.
std::pair<long, long> FillFreeAndWait(size_t bytes, std::chrono::milliseconds quiet) {
  std::vector<void*> blocks;
  blocks.reserve(bytes / 48);
  size_t total = 0;
  for (uint32_t i = 0; total < bytes; ++i) {
    const size_t size = 16 + (i * 2654435761u) % 1000;
    void* p = malloc(size);
    if (p == nullptr) break;
    memset(p, 0x5a, size);
    blocks.push_back(p);
    total += size;
  }
  const long full = RssKb();
  for (void* p : blocks) free(p);
  std::vector<void*>().swap(blocks);   // (its own buffer too)
  std::this_thread::sleep_for(quiet);  // no allocator call from here
  return {full, RssKb()};
}

TEST(BackgroundReleaseTest, AQuietProgramGetsItsFreedMemoryBack) {
  const long start = RssKb();
  const auto [full, quiet] = FillFreeAndWait(size_t{256} << 20, std::chrono::milliseconds(2500));
  ASSERT_GT(full - start, 200 * kMiB) << "the fill did not take memory";
  if (ReleaseOn()) {
    // The thread caches keep a few MiB of blocks, which keep their slabs.
    EXPECT_LT(quiet - start, (full - start) / 4)
        << "start " << start << " KiB, full " << full << " KiB, quiet " << quiet << " KiB";
    if constexpr (hakmem::config::kStats) EXPECT_GT(Passes(), 0u);
  } else {
    EXPECT_GT(quiet - start, (full - start) / 2)
        << "start " << start << " KiB, full " << full << " KiB, quiet " << quiet << " KiB";
    if constexpr (hakmem::config::kStats) EXPECT_EQ(Passes(), 0u);
  }
}

uint64_t IdleWaits() {
  hak_stats stats;
  hak_get_stats(&stats);
  return stats.background_idle_waits;
}

// Once everything is back, the thread sleeps until something is held again (no
// wakeups while the program idles), and a heap's new decay clock wakes it.
TEST(BackgroundReleaseTest, TheThreadSleepsWhileNothingIsHeldAndWakesForWork) {
  if (!ReleaseOn()) GTEST_SKIP() << "HAKMEM_BACKGROUND_RELEASE=0";
  if constexpr (!hakmem::config::kStats) GTEST_SKIP() << "counters compiled out";
  FillFreeAndWait(size_t{64} << 20, std::chrono::milliseconds(2500));
  ASSERT_GT(IdleWaits(), 0u) << "the thread never went idle";
  const uint64_t idle_passes = Passes();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // six intervals
  EXPECT_LE(Passes() - idle_passes, 1u) << "the thread kept waking while nothing was held";
  const long start = RssKb();
  const auto [full, quiet] = FillFreeAndWait(size_t{128} << 20, std::chrono::milliseconds(2500));
  ASSERT_GT(full - start, 100 * kMiB) << "the fill did not take memory";
  EXPECT_LT(quiet - start, (full - start) / 4)
      << "not woken: start " << start << " KiB, full " << full << " KiB, quiet " << quiet << " KiB";
  EXPECT_GT(Passes(), idle_passes + 1) << "the thread made no pass after the new work";
}

TEST(BackgroundReleaseTest, AForkChildStartsItsOwnThread) {
  if (!ReleaseOn()) GTEST_SKIP() << "HAKMEM_BACKGROUND_RELEASE=0";
  // The parent's thread runs (or is about to): a child whose fork caught it
  // mid-pass must still allocate (no heap lock left held) and release.
  FillFreeAndWait(size_t{16} << 20, std::chrono::milliseconds(0));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const long start = RssKb();
    const auto [full, quiet] = FillFreeAndWait(size_t{128} << 20, std::chrono::milliseconds(2500));
    const bool released = full - start > 100 * kMiB && quiet - start < (full - start) / 4;
    if (!released) fprintf(stderr, "child: start %ld full %ld quiet %ld KiB\n", start, full, quiet);
    _exit(released ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died: status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child kept its freed memory";
}

}  // namespace
