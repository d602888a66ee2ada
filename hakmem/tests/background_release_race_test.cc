// background_release_race: the background release thread trims heaps whose
// threads pause, while those threads (and others freeing their blocks) come
// back at any moment. Through the hak_* API (no malloc replacement), so that it
// runs under ThreadSanitizer, which then checks that every heap access of the
// owners and of the release thread is ordered by the heap's lock. The purge
// delay is 8 ms (HAKMEM_PURGE_DELAY_MS in BUILD.bazel): a pass every 10 ms.
#include <string.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config/build_config.h"
#include "hakmem/hakmem.h"
#include "hakmem/heap/heap.h"

namespace {

struct Block {
  unsigned char* p;
  size_t size;
  unsigned char tag;
};

bool Intact(const Block& b) {
  for (size_t i = 0; i < b.size; i += 61) {
    if (b.p[i] != b.tag) return false;
  }
  return b.p[b.size - 1] == b.tag;
}

TEST(BackgroundReleaseRaceTest, TrimsOfPausingHeapsLoseNothing) {
  hakmem::NoteMainStarted();  // as the wrappers' __libc_start_main would
  constexpr int kThreads = 4;
  constexpr int kRounds = 60;
  std::atomic<int> corrupt{0};
  // Each thread hands half of each round's blocks to the next thread, which
  // frees them (remote frees into a heap that may be pausing).
  std::vector<std::vector<Block>> handoff(kThreads);
  std::vector<std::atomic<bool>> ready(kThreads);
  for (auto& r : ready) r.store(false);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint32_t x = 0x9e3779b9u * static_cast<uint32_t>(t + 1);
      for (int round = 0; round < kRounds; ++round) {
        std::vector<Block> mine;
        for (int i = 0; i < 600; ++i) {
          x ^= x << 13;
          x ^= x >> 17;
          x ^= x << 5;
          const size_t size = (x & 31) == 0 ? 150000 + x % 100000 : 16 + x % 3000;
          auto* p = static_cast<unsigned char*>(hak_malloc(size));
          ASSERT_NE(p, nullptr);
          const unsigned char tag = static_cast<unsigned char>(x >> 24);
          memset(p, tag, size);
          mine.push_back({p, size, tag});
        }
        // Take what the previous thread handed over, free it.
        const int from = (t + kThreads - 1) % kThreads;
        if (ready[from].load(std::memory_order_acquire)) {
          for (const Block& b : handoff[from]) {
            if (!Intact(b)) corrupt.fetch_add(1);
            hak_free(b.p);
          }
          handoff[from].clear();
          ready[from].store(false, std::memory_order_release);
        }
        for (size_t i = 0; i < mine.size(); ++i) {
          if (!Intact(mine[i])) corrupt.fetch_add(1);
        }
        if (!ready[t].load(std::memory_order_acquire)) {
          handoff[t].assign(mine.begin() + mine.size() / 2, mine.end());
          mine.resize(mine.size() / 2);
          ready[t].store(true, std::memory_order_release);
        }
        for (const Block& b : mine) hak_free(b.p);
        // Some rounds end in a pause longer than a pass: the heap is trimmed.
        if (round % 4 == t % 4) std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (const Block& b : handoff[t]) {
      if (!Intact(b)) corrupt.fetch_add(1);
      hak_free(b.p);
    }
  }
  EXPECT_EQ(corrupt.load(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if constexpr (hakmem::config::kStats) {
    hak_stats stats;
    hak_get_stats(&stats);
    EXPECT_GT(stats.background_passes, 0u);
    EXPECT_GT(stats.background_trims, 0u);
  }
}

}  // namespace
