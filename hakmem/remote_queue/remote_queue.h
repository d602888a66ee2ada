// remote_queue: the list of blocks other threads freed into a heap.
//
// Owns: a multi-producer, single-consumer intrusive stack. Push links the block
// through its first word (encoded, free_link.h) and publishes it with one
// compare-and-swap (release); PushList publishes a whole list the same way;
// the owner takes the whole list with one exchange (acquire) and returns the
// blocks to their slabs in a batch. There is no ABA problem: the only consumer
// takes everything, and never pops single nodes.
// With --define hakmem_remote_queue=mutex the same interface takes a pthread
// mutex instead (A/B runs only: it reproduces a design whose remote frees wait on
// a futex under contention).
// Thread-safety: Push from any thread; TakeAll and MaybeNonEmpty from the owner
// (or any single consumer). Called by: heap (drain), free_dispatch (push).
#ifndef HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_
#define HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_

#include <pthread.h>

#include <atomic>

#include "absl/base/attributes.h"
#include "hakmem/config/build_config.h"
#include "hakmem/superslab/free_link.h"

namespace hakmem {

class RemoteQueue {
 public:
  constexpr RemoteQueue() = default;
  RemoteQueue(const RemoteQueue&) = delete;
  RemoteQueue& operator=(const RemoteQueue&) = delete;

  // Adds `block` (at least 8 writable bytes, no longer used by the caller).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Push(void* block) { PushList(block, block); }

  // Adds the list `head` .. `tail` (linked through first words with StoreLink;
  // tail's link is overwritten) with one compare-and-swap: a batch of remote
  // frees costs one atomic, not one per block.
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

  // Takes every block pushed so far, as a list linked through first words
  // (LoadLink).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TakeAll() {
    if constexpr (config::kRemoteQueueMutex) {
      pthread_mutex_lock(&mutex_);
      void* list = head_.load(std::memory_order_relaxed);
      head_.store(nullptr, std::memory_order_relaxed);
      pthread_mutex_unlock(&mutex_);
      return list;
    } else {
      if (head_.load(std::memory_order_relaxed) == nullptr) return nullptr;
      return head_.exchange(nullptr, std::memory_order_acquire);
    }
  }

  // A hint: false means nothing was pushed as of some recent moment.
  bool MaybeNonEmpty() const { return head_.load(std::memory_order_relaxed) != nullptr; }

  // fork(): the child's copy of a mutex a dead thread held must be usable.
  void ResetAfterFork() {
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_init(&mutex_, nullptr);
  }

 private:
  std::atomic<void*> head_{nullptr};
  pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
};

}  // namespace hakmem

#endif  // HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_
