// Cross-thread stress: blocks of every lane are allocated in one thread, handed to
// another through a mutex-protected queue, checked there and freed there (a
// remote free for hakmem). The fill pattern of a block derives from its address,
// its size and a unique sequence number, so a block handed out twice, overwritten
// by a neighbour, or moved without its contents shows up as a mismatch.
//
// All synchronisation between test threads goes through std::mutex and
// std::condition_variable, so the glibc twin runs clean under --config=tsan; the
// work is scaled down under sanitizers. Bounded to well under 20 s on 2 cores.
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/tests/test_util.h"

namespace {

using hakmem_test::FillPattern;
using hakmem_test::FirstPatternMismatch;
using hakmem_test::IsAligned;
using hakmem_test::Mix;
using hakmem_test::Opaque;
using hakmem_test::PatternKey;

// gcc defines __SANITIZE_THREAD__/__SANITIZE_ADDRESS__; clang 14 only the second,
// and answers __has_feature for both.
#if defined(__has_feature)
#define STRESS_HAS_FEATURE(x) __has_feature(x)
#else
#define STRESS_HAS_FEATURE(x) 0
#endif

#if defined(__SANITIZE_THREAD__) || STRESS_HAS_FEATURE(thread_sanitizer)
constexpr int kScaleDivisor = 40;  // every byte of the fill is instrumented
#elif defined(__SANITIZE_ADDRESS__) || STRESS_HAS_FEATURE(address_sanitizer)
constexpr int kScaleDivisor = 10;
#else
constexpr int kScaleDivisor = 1;
#endif

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

struct Lane {
  const char* name;
  size_t min_size;
  size_t max_size;
  int blocks_per_producer;  // before kScaleDivisor
};

// The lanes of ARCHITECTURE.md, each from its lower to its upper boundary.
const Lane kTiny{"tiny", 16, 1024, 100000};
const Lane kPool{"pool", 1 * kKiB, 128 * kKiB, 10000};
const Lane kLarge{"large", 128 * kKiB, 1 * kMiB, 1200};
const Lane kHuge{"huge", 2 * kMiB, 8 * kMiB, 100};

int Scaled(int n) { return n / kScaleDivisor > 0 ? n / kScaleDivisor : 1; }

struct Rng {
  uint64_t state;
  uint64_t Next() { return state = Mix(state); }
  // A size in [lo, hi], log-uniform (as many 100-byte blocks as 100 KiB ones
  // per power of two), like real programs, which keeps the bytes touched small.
  size_t Size(size_t lo, size_t hi) {
    const int lo_bits = 64 - __builtin_clzll(lo | 1);
    const int hi_bits = 64 - __builtin_clzll(hi);
    const int bits =
        lo_bits + static_cast<int>(Next() % static_cast<uint64_t>(hi_bits - lo_bits + 1));
    const size_t top = bits >= 64 ? hi : (size_t{1} << bits) - 1;
    const size_t bottom = size_t{1} << (bits - 1);
    const size_t from = bottom < lo ? lo : bottom;
    const size_t to = top > hi ? hi : top;
    return from + Next() % (to - from + 1);
  }
};

struct Block {
  void* p = nullptr;
  size_t size = 0;
  uint64_t key = 0;
};

std::atomic<uint64_t> g_sequence{1};

Block Allocate(size_t size) {
  Block b;
  b.size = size;
  b.p = malloc(Opaque(size));
  if (b.p == nullptr) return b;
  b.key = PatternKey(b.p, size, g_sequence.fetch_add(1, std::memory_order_relaxed));
  FillPattern(b.p, size, b.key);
  return b;
}

// Checks a received block (in the receiving thread) and frees it. Every few
// blocks it is first realloc'ed by the receiver, which must keep the contents.
void CheckAndFree(Block b, uint64_t salt) {
  ASSERT_NE(b.p, nullptr);
  ASSERT_TRUE(IsAligned(b.p, 16)) << b.p;
  ASSERT_GE(malloc_usable_size(b.p), b.size);
  const size_t bad = FirstPatternMismatch(b.p, b.size, b.key);
  ASSERT_EQ(bad, b.size) << "block " << b.p << " of " << b.size << " bytes changed at offset "
                         << bad << " between its allocation in one thread and its free in another";
  if (Mix(salt) % 8 == 0) {
    const size_t new_size = (Mix(salt + 1) & 1) ? b.size + b.size / 2 + 1 : b.size / 2 + 1;
    void* q = realloc(Opaque(b.p), new_size);
    ASSERT_NE(q, nullptr);
    const size_t kept = new_size < b.size ? new_size : b.size;
    ASSERT_EQ(FirstPatternMismatch(q, kept, b.key), kept) << "remote realloc lost the contents";
    b.p = q;
  }
  free(Opaque(b.p));
}

// A blocking queue with a bound (so producers cannot run far ahead).
template <typename T>
class Queue {
 public:
  explicit Queue(size_t capacity) : capacity_(capacity) {}
  void Push(T item) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_; });
    items_.push_back(std::move(item));
    not_empty_.notify_one();
  }
  // False when the queue is closed and empty.
  bool Pop(T* item) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return false;
    *item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return true;
  }
  // False when nothing is queued right now.
  bool TryPop(T* item) {
    std::lock_guard<std::mutex> lock(mu_);
    if (items_.empty()) return false;
    *item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;
  bool closed_ = false;
};

// `pairs` producer threads each allocate `blocks` blocks of sizes in
// [min_size, max_size] and hand them to their consumer thread, which checks and
// frees them.
void RunPairs(int pairs, int blocks, size_t min_size, size_t max_size, size_t queue_capacity) {
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Queue<Block>>> queues;
  for (int i = 0; i < pairs; ++i) queues.push_back(std::make_unique<Queue<Block>>(queue_capacity));
  for (int i = 0; i < pairs; ++i) {
    Queue<Block>* q = queues[i].get();
    threads.emplace_back([=] {
      Rng rng{static_cast<uint64_t>(i) * 7919 + min_size};
      for (int n = 0; n < blocks; ++n) {
        Block b = Allocate(rng.Size(min_size, max_size));
        if (b.p == nullptr) {
          ADD_FAILURE() << "malloc(" << b.size << ") failed";
          break;
        }
        q->Push(b);
      }
      q->Close();
    });
    threads.emplace_back([=] {
      Block b;
      uint64_t salt = static_cast<uint64_t>(i) << 32;
      while (q->Pop(&b)) {
        CheckAndFree(b, ++salt);
        if (testing::Test::HasFatalFailure()) {
          // Keep draining (and freeing) so the producer is not stuck on a full queue.
          while (q->Pop(&b)) free(b.p);
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

TEST(StressTest, TinyProducerConsumerPairs) {
  RunPairs(4, Scaled(kTiny.blocks_per_producer), kTiny.min_size, kTiny.max_size, 256);
}

TEST(StressTest, PoolProducerConsumerPairs) {
  RunPairs(4, Scaled(kPool.blocks_per_producer), kPool.min_size, kPool.max_size, 64);
}

TEST(StressTest, LargeProducerConsumerPairs) {
  RunPairs(3, Scaled(kLarge.blocks_per_producer), kLarge.min_size, kLarge.max_size, 16);
}

TEST(StressTest, HugeProducerConsumerPairs) {
  RunPairs(2, Scaled(kHuge.blocks_per_producer), kHuge.min_size, kHuge.max_size, 4);
}

TEST(StressTest, MixedLanesProducerConsumerPairs) {
  // One size range across every lane boundary (biased towards small sizes).
  RunPairs(4, Scaled(4000), 1, 3 * kMiB, 64);
}

// Every thread sends blocks to every other thread and frees what it receives:
// each heap takes remote frees from several threads at once while it allocates.
TEST(StressTest, AllToAll) {
  constexpr int kThreads = 6;
  const int blocks_per_thread = Scaled(20000);
  const Lane* lanes[] = {&kTiny, &kTiny, &kTiny, &kTiny, &kPool, &kPool, &kLarge};
  std::vector<std::unique_ptr<Queue<Block>>> inbox;
  for (int i = 0; i < kThreads; ++i) inbox.push_back(std::make_unique<Queue<Block>>(1 << 20));
  std::atomic<int> senders_left{kThreads};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Rng rng{static_cast<uint64_t>(t) + 1000};
      uint64_t salt = static_cast<uint64_t>(t) << 40;
      for (int n = 0; n < blocks_per_thread; ++n) {
        const Lane* lane = lanes[rng.Next() % 7];
        // The large lane, rarely: it is the slow one.
        if (lane == &kLarge && rng.Next() % 8 != 0) lane = &kTiny;
        Block b = Allocate(rng.Size(lane->min_size, lane->max_size));
        if (b.p == nullptr) {
          ADD_FAILURE() << "malloc(" << b.size << ") failed";
          continue;
        }
        inbox[(t + 1 + rng.Next() % (kThreads - 1)) % kThreads]->Push(b);
        // Meanwhile, free some of what others sent (non-blocking drain of a few).
        if (n % 4 == 3) {
          for (int k = 0; k < 4; ++k) {
            Block in;
            if (!inbox[t]->TryPop(&in)) break;
            CheckAndFree(in, ++salt);
          }
        }
      }
      if (senders_left.fetch_sub(1) == 1) {
        for (auto& q : inbox) q->Close();
      }
      Block in;
      while (inbox[t]->Pop(&in)) CheckAndFree(in, ++salt);
    });
  }
  for (std::thread& t : threads) t.join();
}

// Batches: a producer allocates a whole batch, the consumer frees half of it at
// once (a burst of remote frees) and returns the other half, which the producer
// frees locally after the consumer has read it.
TEST(StressTest, BatchHandoffAndReturn) {
  const int rounds = Scaled(300);
  constexpr int kBatch = 1000;
  Queue<std::vector<Block>> to_consumer(2);
  Queue<std::vector<Block>> to_producer(1 << 20);  // unbounded: no cycle of waits
  std::thread consumer([&] {
    std::vector<Block> batch;
    uint64_t salt = 77;
    while (to_consumer.Pop(&batch)) {
      std::vector<Block> back;
      for (size_t i = 0; i < batch.size(); ++i) {
        if (i % 2 == 0) {
          CheckAndFree(batch[i], ++salt);
        } else {
          const Block& b = batch[i];
          EXPECT_EQ(FirstPatternMismatch(b.p, b.size, b.key), b.size);
          back.push_back(b);
        }
      }
      to_producer.Push(std::move(back));
    }
    to_producer.Close();
  });
  auto free_returned = [](const std::vector<Block>& back) {
    for (const Block& b : back) {
      EXPECT_EQ(FirstPatternMismatch(b.p, b.size, b.key), b.size);
      free(b.p);
    }
  };
  Rng rng{5};
  std::vector<Block> back;
  for (int r = 0; r < rounds; ++r) {
    std::vector<Block> batch;
    batch.reserve(kBatch);
    for (int i = 0; i < kBatch; ++i) {
      const size_t size = (i % 10 == 0) ? rng.Size(kPool.min_size, 16 * kKiB) : rng.Size(1, 512);
      Block b = Allocate(size);
      if (b.p == nullptr) {
        ADD_FAILURE() << "malloc(" << size << ") failed";
        continue;
      }
      batch.push_back(b);
    }
    to_consumer.Push(std::move(batch));
    while (to_producer.TryPop(&back)) free_returned(back);
  }
  to_consumer.Close();
  while (to_producer.Pop(&back)) free_returned(back);
  consumer.join();
}

}  // namespace
