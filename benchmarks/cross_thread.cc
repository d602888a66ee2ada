// cross_thread: every free is remote. PRODUCERS threads malloc blocks (log-uniform
// sizes in [MIN, MAX]) and pass them in batches through a bounded queue to CONSUMERS
// threads, which check and free them.
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "benchmarks/bench_util.h"

namespace {

constexpr size_t kBatch = 64;     // blocks per queue entry, so the lock is not the benchmark
constexpr size_t kQueueCap = 64;  // entries: at most 4096 blocks in flight

struct Batch {
  uint32_t first_tag;  // block i carries tag uint8_t(first_tag + i)
  uint32_t count;
  void* blocks[kBatch];
};

// A bounded FIFO of batches; Pop returns false once it is empty and closed.
class Queue {
 public:
  void Push(const Batch& b) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [this] { return count_ < kQueueCap; });
    ring_[(head_ + count_++) % kQueueCap] = b;
    not_empty_.notify_one();
  }
  bool Pop(Batch* b) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [this] { return count_ > 0 || closed_; });
    if (count_ == 0) return false;
    *b = ring_[head_];
    head_ = (head_ + 1) % kQueueCap;
    --count_;
    not_full_.notify_one();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  Batch ring_[kQueueCap];
  size_t head_ = 0;
  size_t count_ = 0;
  bool closed_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  bench::Arg args[] = {
      {"PRODUCERS", "threads that malloc", 1, 1, 256},
      {"CONSUMERS", "threads that free", 1, 1, 256},
      {"BLOCKS", "blocks each producer allocates", 2e6, 1, 1e12},
      {"MIN", "smallest block size", 16, 1, 1 << 30},
      {"MAX", "largest block size", 32768, 1, 1 << 30},
      {"SEED", "xorshift32 seed; producer t uses SEED ^ (t + 1) * 2654435761", 42, 0, 4294967295.0},
  };
  bench::ParseArgs(argc, argv, "cross_thread",
                   "Producers malloc, consumers free: every free comes from another thread.", args);
  const unsigned producers = static_cast<unsigned>(args[0].u());
  const unsigned consumers = static_cast<unsigned>(args[1].u());
  const uint64_t blocks = args[2].u();
  const size_t min = args[3].u();
  const size_t max = args[4].u();
  const uint32_t seed = static_cast<uint32_t>(args[5].u());
  if (min > max) bench::UsageError("MIN must not exceed MAX");

  Queue queue;
  bench::Stopwatch watch;
  std::vector<std::thread> producer_threads;
  for (unsigned t = 0; t < producers; ++t) {
    producer_threads.emplace_back([&queue, blocks, min, max, seed, t] {
      bench::Xorshift32 rng(bench::ThreadSeed(seed, t));
      Batch b;
      uint32_t tag = 0;
      for (uint64_t done = 0; done < blocks; done += b.count) {
        b.first_tag = tag;
        b.count = static_cast<uint32_t>(blocks - done < kBatch ? blocks - done : kBatch);
        for (uint32_t i = 0; i < b.count; ++i) {
          b.blocks[i] = bench::MallocOrDie(bench::LogUniformSize(rng.Next(), min, max));
          bench::SetTag(b.blocks[i], static_cast<uint8_t>(tag++));
        }
        queue.Push(b);
      }
    });
  }
  std::vector<std::thread> consumer_threads;
  for (unsigned t = 0; t < consumers; ++t) {
    consumer_threads.emplace_back([&queue] {
      Batch b;
      while (queue.Pop(&b)) {
        for (uint32_t i = 0; i < b.count; ++i) {
          bench::CheckTag(b.blocks[i], static_cast<uint8_t>(b.first_tag + i));
          free(b.blocks[i]);
        }
      }
    });
  }
  for (std::thread& p : producer_threads) p.join();
  queue.Close();
  for (std::thread& c : consumer_threads) c.join();
  bench::PrintResult(2 * producers * blocks, watch.Seconds());
  return 0;
}
