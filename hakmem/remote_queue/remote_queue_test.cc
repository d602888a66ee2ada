#include "hakmem/remote_queue/remote_queue.h"

#include <atomic>
#include <mutex>
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

// Every block of a list TakeAll took, in its order.
std::vector<void*> Blocks(void* list) {
  std::vector<void*> out;
  for (void* p = list; p != nullptr; p = LoadLink(p)) out.push_back(p);
  return out;
}

// Runs `produce(p)` on `producers` threads while this thread calls `drain()`
// until they are done, then once more after they have been joined.
template <typename Produce, typename Drain>
void ProduceWhileDraining(int producers, Produce produce, Drain drain) {
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      produce(p);
      done.fetch_add(1);
    });
  }
  while (done.load() < producers) drain();
  for (std::thread& t : threads) t.join();
  drain();
}

TEST(RemoteQueueTest, TakeAllReturnsEverythingOnce) {
  RemoteQueue queue;
  EXPECT_EQ(queue.TakeAll(), nullptr);
  EXPECT_FALSE(queue.MaybeNonEmpty());
  Node nodes[3] = {};
  for (Node& n : nodes) queue.Push(&n);
  EXPECT_TRUE(queue.MaybeNonEmpty());
  const std::vector<void*> taken = Blocks(queue.TakeAll());
  EXPECT_EQ(taken, (std::vector<void*>{&nodes[2], &nodes[1], &nodes[0]})) << "newest first";
  EXPECT_EQ(queue.TakeAll(), nullptr);
  EXPECT_FALSE(queue.MaybeNonEmpty());
}

// A list pushed whole comes back in its order, before what the queue held.
TEST(RemoteQueueTest, AListPushedWholeComesBackInItsOrder) {
  RemoteQueue queue;
  Node nodes[3] = {};
  queue.Push(&nodes[2]);
  StoreLink(&nodes[0], &nodes[1]);
  queue.PushList(&nodes[0], &nodes[1]);
  EXPECT_EQ(Blocks(queue.TakeAll()), (std::vector<void*>{&nodes[0], &nodes[1], &nodes[2]}));
  EXPECT_FALSE(queue.MaybeNonEmpty());
}

// Many producers, one consumer draining concurrently: nothing lost, nothing twice,
// and each block's payload (written before Push) is visible to the consumer.
TEST(RemoteQueueTest, ConcurrentProducersLoseNothing) {
  constexpr int kProducers = 4, kPerProducer = 20000;
  RemoteQueue queue;
  std::vector<std::vector<Node>> nodes(kProducers, std::vector<Node>(kPerProducer));
  std::vector<std::vector<bool>> seen(kProducers, std::vector<bool>(kPerProducer));
  int total = 0;
  ProduceWhileDraining(
      kProducers,
      [&](int p) {
        for (int i = 0; i < kPerProducer; ++i) {
          nodes[p][i].producer = p;
          nodes[p][i].sequence = i;
          if (i % 2 == 0) {
            queue.Push(&nodes[p][i]);
          } else {
            queue.PushList(&nodes[p][i], &nodes[p][i]);
          }
        }
      },
      [&] {
        for (void* p : Blocks(queue.TakeAll())) {
          Node* n = static_cast<Node*>(p);
          ASSERT_FALSE(seen[n->producer][n->sequence]);
          ASSERT_EQ(n, &nodes[n->producer][n->sequence]);
          seen[n->producer][n->sequence] = true;
          ++total;
        }
      });
  EXPECT_EQ(total, kProducers * kPerProducer);
}

// Records pushed from many threads while one consumer takes them: each record
// arrives once, with the addresses written into it before PushNode.
TEST(RemoteQueueTest, RecordsArriveOnceWithTheirBlocks) {
  constexpr int kProducers = 4, kRecordsEach = 2000;
  RemoteQueue queue;
  std::vector<std::vector<RemoteNode>> records(kProducers, std::vector<RemoteNode>(kRecordsEach));
  std::set<RemoteNode*> seen;
  ProduceWhileDraining(
      kProducers,
      [&](int p) {
        for (int i = 0; i < kRecordsEach; ++i) {
          RemoteNode& r = records[p][i];
          r.count = 1 + static_cast<uint32_t>(i) % kRemoteNodeBlocks;
          for (uint32_t b = 0; b < r.count; ++b) r.blocks[b] = &r.blocks[b];
          queue.PushNode(&r);
        }
      },
      [&] {
        for (RemoteNode* r = queue.TakeNodes(); r != nullptr; r = r->next) {
          ASSERT_TRUE(seen.insert(r).second) << "a record taken twice";
          for (uint32_t b = 0; b < r->count; ++b) ASSERT_EQ(r->blocks[b], &r->blocks[b]);
        }
      });
  EXPECT_EQ(seen.size(), size_t{kProducers} * kRecordsEach);
  EXPECT_FALSE(queue.MaybeNonEmpty());
}

TEST(RemoteQueueTest, RecordsMakeTheQueueNonEmpty) {
  RemoteQueue queue;
  RemoteNode record{};
  queue.PushNode(&record);
  EXPECT_TRUE(queue.MaybeNonEmpty());
  EXPECT_EQ(queue.TakeAll(), nullptr) << "no block was pushed on its own";
  EXPECT_EQ(queue.TakeNodes(), &record);
  EXPECT_EQ(queue.TakeNodes(), nullptr);
  EXPECT_FALSE(queue.MaybeNonEmpty());
}

// PopChain takes at most `max` records from the top, a chain ending in nullptr;
// the rest stay.
TEST(RemoteNodeStackTest, PopChainTakesAtMostMax) {
  RemoteNodeStack stack;
  RemoteNode r[5] = {};
  for (RemoteNode& n : r) stack.Push(&n, &n);  // top: r[4]
  RemoteNode* chain = stack.PopChain(3);
  ASSERT_EQ(chain, &r[4]);
  ASSERT_EQ(chain->next, &r[3]);
  ASSERT_EQ(chain->next->next, &r[2]);
  EXPECT_EQ(chain->next->next->next, nullptr);
  chain = stack.PopChain(3);
  ASSERT_EQ(chain, &r[1]);
  ASSERT_EQ(chain->next, &r[0]);
  EXPECT_EQ(chain->next->next, nullptr);
  EXPECT_EQ(stack.PopChain(3), nullptr);
  EXPECT_FALSE(stack.MaybeNonEmpty());
}

// Pushes of chains from many threads while pops, serialised by a lock, take a few
// at a time and push them back: no record is lost or held by two threads at once.
TEST(RemoteNodeStackTest, PushesDuringSerialisedPopsLoseNothing) {
  constexpr int kThreads = 4, kRounds = 20000;
  constexpr int kRecords = kThreads * 8;
  RemoteNodeStack stack;
  std::vector<RemoteNode> records(kRecords);
  for (RemoteNode& r : records) {
    r.count = 0;
    stack.Push(&r, &r);
  }
  std::mutex pop_lock;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        RemoteNode* chain;
        {
          std::lock_guard<std::mutex> hold(pop_lock);
          chain = stack.PopChain(1 + static_cast<uint32_t>(i) % 4);
        }
        if (chain == nullptr) continue;
        RemoteNode* last = chain;
        for (RemoteNode* r = chain; r != nullptr; r = r->next) {
          // count is this thread's mark while it holds the record.
          if (++r->count != 1) errors.fetch_add(1);
          last = r;
        }
        for (RemoteNode* r = chain; r != nullptr; r = r->next) --r->count;
        stack.Push(chain, last);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<RemoteNode*> left;
  for (RemoteNode* r = stack.TakeAll(); r != nullptr; r = r->next) left.insert(r);
  EXPECT_EQ(left.size(), size_t{kRecords});
}

}  // namespace
}  // namespace hakmem
