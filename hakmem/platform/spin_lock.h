// platform/spin_lock: the lock of hakmem's rare global paths (reservations, the
// superslab cache, the heap lists, registry leaves) and of each heap's slow paths. A
// test-and-test-and-set lock that yields the CPU after a short spin; it never calls futex and never
// allocates, so it works before main, in signal-free fork handlers and during thread exit. Never
// taken on the malloc/free fast paths. Thread-safety: it is the lock. Called by: stats, profiler,
// registry, superslab, heap.
#ifndef HAKMEM_PLATFORM_SPIN_LOCK_H_
#define HAKMEM_PLATFORM_SPIN_LOCK_H_

#include <sched.h>

#include <atomic>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"

namespace hakmem::platform {

// Annotated for clang's -Wthread-safety (on in every clang build of hakmem): data
// declared ABSL_GUARDED_BY a SpinLock is touched only with it held.
class ABSL_LOCKABLE SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    for (int spins = 0;; ++spins) {
      if (!locked_.load(std::memory_order_relaxed) &&
          !locked_.exchange(true, std::memory_order_acquire)) {
        return;
      }
      if (spins < 64) {
        __builtin_ia32_pause();
      } else {
        sched_yield();  // contended: let the holder run (2-core machines)
      }
    }
  }
  // Takes the lock if it is free; never waits.
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() { locked_.store(false, std::memory_order_release); }
  // After fork() the child has one thread: whatever a dead thread held is free
  // (the child's fork handler releases what the parent's took before fork).
  void ResetAfterFork() ABSL_UNLOCK_FUNCTION() { locked_.store(false, std::memory_order_relaxed); }

 private:
  std::atomic<bool> locked_{false};
};

class ABSL_SCOPED_LOCKABLE SpinLockHolder {
 public:
  explicit SpinLockHolder(SpinLock* lock) ABSL_EXCLUSIVE_LOCK_FUNCTION(lock) : lock_(lock) {
    lock_->Lock();
  }
  ~SpinLockHolder() ABSL_UNLOCK_FUNCTION() { lock_->Unlock(); }
  SpinLockHolder(const SpinLockHolder&) = delete;
  SpinLockHolder& operator=(const SpinLockHolder&) = delete;

 private:
  SpinLock* lock_;
};

}  // namespace hakmem::platform

#endif  // HAKMEM_PLATFORM_SPIN_LOCK_H_
