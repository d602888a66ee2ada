#include "hakmem/platform/spin_lock.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hakmem::platform {
namespace {

TEST(SpinLockTest, ExcludesConcurrentWriters) {
  SpinLock lock;
  long counter = 0;  // plain: TSan reports a race if the lock fails to exclude
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        SpinLockHolder hold(&lock);
        ++counter;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 80000);
}

}  // namespace
}  // namespace hakmem::platform
