#include "hakmem/remote_queue/remote_queue.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hakmem {
namespace {

// Blocks are 16-byte aligned, as the link check expects.
struct alignas(16) Node {
  void* next;
  int producer;
  int sequence;
};

TEST(RemoteQueueTest, TakeAllReturnsEverythingOnce) {
  RemoteQueue queue;
  EXPECT_EQ(queue.TakeAll(), nullptr);
  EXPECT_FALSE(queue.MaybeNonEmpty());
  Node nodes[3] = {};
  for (Node& n : nodes) queue.Push(&n);
  EXPECT_TRUE(queue.MaybeNonEmpty());
  std::set<void*> seen;
  for (void* p = queue.TakeAll(); p != nullptr; p = LoadLink(p)) seen.insert(p);
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(queue.TakeAll(), nullptr);
}

// Many producers, one consumer draining concurrently: nothing lost, nothing twice,
// and each block's payload (written before Push) is visible to the consumer.
TEST(RemoteQueueTest, ConcurrentProducersLoseNothing) {
  constexpr int kProducers = 4, kPerProducer = 20000;
  RemoteQueue queue;
  std::vector<std::vector<Node>> nodes(kProducers, std::vector<Node>(kPerProducer));
  std::atomic<int> done{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        nodes[p][i].producer = p;
        nodes[p][i].sequence = i;
        queue.Push(&nodes[p][i]);
      }
      done.fetch_add(1);
    });
  }
  std::vector<std::vector<bool>> seen(kProducers, std::vector<bool>(kPerProducer));
  int total = 0;
  auto drain = [&] {
    for (void* p = queue.TakeAll(); p != nullptr;) {
      Node* n = static_cast<Node*>(p);
      p = LoadLink(n);
      ASSERT_FALSE(seen[n->producer][n->sequence]);
      ASSERT_EQ(n, &nodes[n->producer][n->sequence]);
      seen[n->producer][n->sequence] = true;
      ++total;
    }
  };
  while (done.load() < kProducers) drain();
  for (auto& t : producers) t.join();
  drain();
  EXPECT_EQ(total, kProducers * kPerProducer);
}

}  // namespace
}  // namespace hakmem
