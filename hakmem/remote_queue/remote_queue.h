// remote_queue: the blocks other threads freed into a heap.
//
// Owns: a multi-producer, single-consumer stack of batch records (RemoteNode:
// up to kRemoteNodeBlocks block addresses in allocator memory, so the owner
// follows no link a program could overwrite) and, for blocks pushed one at a
// time (hardened builds; a freeing thread past its exit flush or without a
// record), an intrusive stack linked through the blocks' first words (encoded,
// free_link.h), whose every link the owner checks (heap.h's RemoteLinkCheck).
// PushNode and Push publish with one compare-and-swap (release); TakeNodes and
// TakeAll take everything with one exchange (acquire) each. RemoteNodeStack is
// the stack of records on its own (also the free records' pool, heap.h).
// There is no ABA problem: the only consumer takes everything, and never pops
// single nodes.
// With --define hakmem_remote_queue=mutex the same interface takes a pthread
// mutex instead (A/B runs only: it reproduces a design whose remote frees wait on
// a futex under contention).
// Thread-safety: Push, PushList and PushNode from any thread; TakeAll, TakeNodes
// and MaybeNonEmpty from the owner (or any single consumer); RemoteNodeStack:
// Push from any thread, TakeAll from any (each record goes to one taker),
// PopChain under the caller's lock.
// Called by: heap (drain, the records' pool), free_dispatch (push).
#ifndef HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_
#define HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "absl/base/attributes.h"
#include "hakmem/config/build_config.h"
#include "hakmem/superslab/free_link.h"

namespace hakmem {

// A batch of remote frees for one heap: the blocks' addresses, in free order.
// Lives in allocator metadata (never in a block), from a freeing thread's batch
// (free_dispatch) to its owner's drain (heap), then back to the pool.
inline constexpr uint32_t kRemoteNodeBlocks = 64;
struct RemoteNode {
  RemoteNode* next;  // the next record of its stack (or chain)
  uint32_t count;    // blocks[0 .. count) are filled
  void* blocks[kRemoteNodeBlocks];
};

// A multi-producer stack of RemoteNodes. Push takes a chain `first` .. `last`
// (linked through next). Records leave all at once (TakeAll: one exchange), or a
// few at a time (PopChain) by callers that serialise their pops with a lock of
// their own: either way a record is never popped while another thread pushes it
// again, so there is no ABA problem (pushes only ever put records on top).
class RemoteNodeStack {
 public:
  constexpr RemoteNodeStack() = default;
  RemoteNodeStack(const RemoteNodeStack&) = delete;
  RemoteNodeStack& operator=(const RemoteNodeStack&) = delete;

  void Push(RemoteNode* first, RemoteNode* last) {
    RemoteNode* old_head = head_.load(std::memory_order_relaxed);
    do {
      last->next = old_head;
    } while (!head_.compare_exchange_weak(old_head, first, std::memory_order_release,
                                          std::memory_order_relaxed));
  }
  // Every record pushed so far, newest first (nullptr if none).
  RemoteNode* TakeAll() {
    if (head_.load(std::memory_order_relaxed) == nullptr) return nullptr;
    return head_.exchange(nullptr, std::memory_order_acquire);
  }
  bool MaybeNonEmpty() const { return head_.load(std::memory_order_relaxed) != nullptr; }
  // Up to `max` (>= 1) records from the top, as a chain ending in nullptr (nullptr
  // if none). The caller holds the lock that serialises every PopChain of this
  // stack; pushes may run meanwhile (the records below the top are not written
  // by them).
  RemoteNode* PopChain(uint32_t max) {
    RemoteNode* first = head_.load(std::memory_order_acquire);
    while (first != nullptr) {
      RemoteNode* last = first;
      for (uint32_t n = 1; n < max && last->next != nullptr; ++n) last = last->next;
      if (head_.compare_exchange_weak(first, last->next, std::memory_order_acquire,
                                      std::memory_order_acquire)) {
        last->next = nullptr;
        return first;
      }
    }
    return nullptr;
  }

 private:
  std::atomic<RemoteNode*> head_{nullptr};
};

class RemoteQueue {
 public:
  constexpr RemoteQueue() = default;
  RemoteQueue(const RemoteQueue&) = delete;
  RemoteQueue& operator=(const RemoteQueue&) = delete;

  // Adds `block` (at least 8 writable bytes, no longer used by the caller).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Push(void* block) { PushList(block, block); }

  // Adds the list `head` .. `tail` (linked through first words with StoreLink;
  // tail's link is overwritten) with one compare-and-swap.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PushList(void* head, void* tail) {
    if constexpr (config::kRemoteQueueMutex) {
      pthread_mutex_lock(&mutex_);
      StoreLink(tail, head_.load(std::memory_order_relaxed));
      head_.store(head, std::memory_order_relaxed);
      pthread_mutex_unlock(&mutex_);
    } else {
      void* old_head = head_.load(std::memory_order_relaxed);
      do {
        StoreLink(tail, old_head);
      } while (!head_.compare_exchange_weak(old_head, head, std::memory_order_release,
                                            std::memory_order_relaxed));
    }
  }

  // Takes every block pushed on its own so far, linked through first words
  // (LoadLink), newest first; nullptr if none.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TakeAll() {
    if (head_.load(std::memory_order_relaxed) == nullptr) return nullptr;
    if constexpr (config::kRemoteQueueMutex) {
      pthread_mutex_lock(&mutex_);
      void* list = head_.load(std::memory_order_relaxed);
      head_.store(nullptr, std::memory_order_relaxed);
      pthread_mutex_unlock(&mutex_);
      return list;
    } else {
      return head_.exchange(nullptr, std::memory_order_acquire);
    }
  }

  // Adds a batch record (node->count blocks, each no longer used by the caller).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PushNode(RemoteNode* node) {
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_lock(&mutex_);
    nodes_.Push(node, node);
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_unlock(&mutex_);
  }

  // Takes every record pushed so far (linked through next; nullptr if none).
  ABSL_ATTRIBUTE_ALWAYS_INLINE RemoteNode* TakeNodes() {
    if (!nodes_.MaybeNonEmpty()) return nullptr;
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_lock(&mutex_);
    RemoteNode* nodes = nodes_.TakeAll();
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_unlock(&mutex_);
    return nodes;
  }

  // A hint: false means nothing was pushed as of some recent moment.
  bool MaybeNonEmpty() const {
    return nodes_.MaybeNonEmpty() || head_.load(std::memory_order_relaxed) != nullptr;
  }

  // fork(): the child's copy of a mutex a dead thread held must be usable.
  void ResetAfterFork() {
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_init(&mutex_, nullptr);
  }

 private:
  std::atomic<void*> head_{nullptr};  // blocks pushed on their own
  RemoteNodeStack nodes_;             // batch records (the mutex variant: under mutex_)
  pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
};

}  // namespace hakmem

#endif  // HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_
