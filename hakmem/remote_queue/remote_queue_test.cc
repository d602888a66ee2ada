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

// Every block of every lane, once (what TakeAll took).
std::vector<void*> Blocks(void* (&lists)[kRemoteLanes]) {
  std::vector<void*> out;
  for (void* list : lists) {
    for (void* p = list; p != nullptr; p = LoadLink(p)) out.push_back(p);
  }
  return out;
}

TEST(RemoteQueueTest, TakeAllReturnsEverythingOnce) {
  RemoteQueue queue;
  void* lists[kRemoteLanes];
  EXPECT_FALSE(queue.TakeAll(lists));
  EXPECT_TRUE(Blocks(lists).empty());
  EXPECT_FALSE(queue.MaybeNonEmpty());
  Node nodes[3] = {};
  for (Node& n : nodes) queue.Push(&n);
  EXPECT_TRUE(queue.MaybeNonEmpty());
  ASSERT_TRUE(queue.TakeAll(lists));
  const std::vector<void*> taken = Blocks(lists);
  EXPECT_EQ(std::set<void*>(taken.begin(), taken.end()).size(), 3u);
  EXPECT_EQ(taken.size(), 3u);
  EXPECT_FALSE(queue.TakeAll(lists));
}

// A list pushed onto a lane comes back as that lane's list, in its order, before
// what the lane held; the other lanes keep theirs apart.
TEST(RemoteQueueTest, ListsPushedOntoLanesComeBackPerLane) {
  RemoteQueue queue;
  Node nodes[kRemoteLanes][3] = {};
  for (uint32_t lane = 0; lane < kRemoteLanes; ++lane) {
    queue.Push(&nodes[lane][2]);  // lane 0
    StoreLink(&nodes[lane][0], &nodes[lane][1]);
    queue.PushList(&nodes[lane][0], &nodes[lane][1], lane);
  }
  EXPECT_TRUE(queue.MaybeNonEmpty());
  void* lists[kRemoteLanes];
  ASSERT_TRUE(queue.TakeAll(lists));
  for (uint32_t lane = 0; lane < kRemoteLanes; ++lane) {
    std::vector<void*> got;
    for (void* p = lists[lane]; p != nullptr; p = LoadLink(p)) got.push_back(p);
    const std::vector<void*> want = {&nodes[lane][0], &nodes[lane][1]};
    if (lane != 0) EXPECT_EQ(got, want) << lane;
  }
  std::vector<void*> lane0;
  for (void* p = lists[0]; p != nullptr; p = LoadLink(p)) lane0.push_back(p);
  EXPECT_EQ(lane0.size(), 2 + kRemoteLanes) << "its list and every single Push";
  EXPECT_FALSE(queue.MaybeNonEmpty());
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
        if (i % 2 == 0) {
          queue.Push(&nodes[p][i]);
        } else {
          queue.PushList(&nodes[p][i], &nodes[p][i], static_cast<uint32_t>(p) % kRemoteLanes);
        }
      }
      done.fetch_add(1);
    });
  }
  std::vector<std::vector<bool>> seen(kProducers, std::vector<bool>(kPerProducer));
  int total = 0;
  auto drain = [&] {
    void* lists[kRemoteLanes];
    queue.TakeAll(lists);
    for (void* p : Blocks(lists)) {
      Node* n = static_cast<Node*>(p);
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
