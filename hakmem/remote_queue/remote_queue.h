// remote_queue: the list of blocks other threads freed into a heap.
//
// Owns: a multi-producer, single-consumer intrusive stack, in kRemoteLanes lanes.
// Push links the block through its first word (encoded, free_link.h) and
// publishes it with one compare-and-swap (release); PushList publishes a whole
// list onto a lane the same way; the owner takes every lane's list with one
// exchange (acquire) each and returns the blocks in a batch. The lanes are there
// for the owner's walk: a pusher spreads a batch over them, so the owner follows
// several lists side by side and their blocks' cache misses (each block was last
// written by the freeing thread) overlap instead of queueing behind one another.
// There is no ABA problem: the only consumer takes everything, and never pops
// single nodes.
// With --define hakmem_remote_queue=mutex the same interface takes a pthread
// mutex instead (A/B runs only: it reproduces a design whose remote frees wait on
// a futex under contention).
// Thread-safety: Push from any thread; TakeAll and MaybeNonEmpty from the owner
// (or any single consumer). Called by: heap (drain), free_dispatch (push).
#ifndef HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_
#define HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "absl/base/attributes.h"
#include "hakmem/config/build_config.h"
#include "hakmem/superslab/free_link.h"

namespace hakmem {

inline constexpr uint32_t kRemoteLanes = 4;

class RemoteQueue {
 public:
  constexpr RemoteQueue() = default;
  RemoteQueue(const RemoteQueue&) = delete;
  RemoteQueue& operator=(const RemoteQueue&) = delete;

  // Adds `block` (at least 8 writable bytes, no longer used by the caller).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Push(void* block) { PushList(block, block); }

  // Adds the list `head` .. `tail` (linked through first words with StoreLink;
  // tail's link is overwritten) to lane `lane` (< kRemoteLanes) with one
  // compare-and-swap: a batch of remote frees costs one atomic per lane it uses,
  // not one per block.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PushList(void* head, void* tail, uint32_t lane = 0) {
    std::atomic<void*>& lane_head = heads_[lane];
    if constexpr (config::kRemoteQueueMutex) {
      pthread_mutex_lock(&mutex_);
      StoreLink(tail, lane_head.load(std::memory_order_relaxed));
      lane_head.store(head, std::memory_order_relaxed);
      pthread_mutex_unlock(&mutex_);
    } else {
      void* old_head = lane_head.load(std::memory_order_relaxed);
      do {
        StoreLink(tail, old_head);
      } while (!lane_head.compare_exchange_weak(old_head, head, std::memory_order_release,
                                                std::memory_order_relaxed));
    }
  }

  // Takes every block pushed so far: lane i's as lists[i], linked through first
  // words (LoadLink; nullptr for an empty lane). Returns whether any was taken.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool TakeAll(void* (&lists)[kRemoteLanes]) {
    bool any = false;
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_lock(&mutex_);
    for (uint32_t lane = 0; lane < kRemoteLanes; ++lane) {
      void* list = nullptr;
      if (heads_[lane].load(std::memory_order_relaxed) != nullptr) {
        if constexpr (config::kRemoteQueueMutex) {
          list = heads_[lane].load(std::memory_order_relaxed);
          heads_[lane].store(nullptr, std::memory_order_relaxed);
        } else {
          list = heads_[lane].exchange(nullptr, std::memory_order_acquire);
        }
      }
      lists[lane] = list;
      any |= list != nullptr;
    }
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_unlock(&mutex_);
    return any;
  }

  // A hint: false means nothing was pushed as of some recent moment.
  bool MaybeNonEmpty() const {
    for (const std::atomic<void*>& head : heads_) {
      if (head.load(std::memory_order_relaxed) != nullptr) return true;
    }
    return false;
  }

  // fork(): the child's copy of a mutex a dead thread held must be usable.
  void ResetAfterFork() {
    if constexpr (config::kRemoteQueueMutex) pthread_mutex_init(&mutex_, nullptr);
  }

 private:
  std::atomic<void*> heads_[kRemoteLanes] = {};
  pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
};

}  // namespace hakmem

#endif  // HAKMEM_REMOTE_QUEUE_REMOTE_QUEUE_H_
