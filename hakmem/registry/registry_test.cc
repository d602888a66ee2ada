#include "hakmem/registry/registry.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/platform/platform.h"

namespace hakmem::registry {
namespace {

TEST(RegistryTest, UnknownAddressesAreNotOurs) {
  int on_stack = 0;
  EXPECT_EQ(Lookup(&on_stack), nullptr);
  EXPECT_EQ(Lookup(nullptr), nullptr);
  EXPECT_EQ(Lookup(reinterpret_cast<void*>(uintptr_t{1} << 47)), nullptr);  // beyond user space
  EXPECT_EQ(Lookup(reinterpret_cast<void*>(~uintptr_t{0})), nullptr);
  EXPECT_EQ(Lookup(reinterpret_cast<void*>(0x1234)), nullptr);
}

TEST(RegistryTest, RegisteredRangeMapsEveryByteAndNothingBeyond) {
  const size_t size = 3 * kChunkSize + 4096;  // ends inside its fourth chunk
  char* base = static_cast<char*>(platform::Reserve(4 * kChunkSize, kChunkSize));
  ASSERT_NE(base, nullptr);
  int header = 0;
  ASSERT_TRUE(Register(base, size, &header));
  EXPECT_EQ(Lookup(base), &header);
  EXPECT_EQ(Lookup(base + kChunkSize - 1), &header);
  EXPECT_EQ(Lookup(base + 2 * kChunkSize + 12345), &header);
  EXPECT_EQ(Lookup(base + size - 1), &header);
  EXPECT_EQ(Lookup(base - 1), nullptr);
  EXPECT_EQ(Lookup(base + 4 * kChunkSize), nullptr);
  Unregister(base, size);
  EXPECT_EQ(Lookup(base), nullptr);
  EXPECT_EQ(Lookup(base + size - 1), nullptr);
  platform::Release(base, 4 * kChunkSize);
}

// PrepareRange maps the leaves and registers nothing; Register then finds them.
TEST(RegistryTest, PrepareRangeMapsLeavesWithoutRegistering) {
  char* base = static_cast<char*>(platform::Reserve(2 * kChunkSize, kChunkSize));
  ASSERT_NE(base, nullptr);
  ASSERT_TRUE(PrepareRange(base, 2 * kChunkSize));
  EXPECT_EQ(Lookup(base), nullptr);
  EXPECT_EQ(Lookup(base + kChunkSize), nullptr);
  const size_t leaves = LeafBytes();
  int header = 0;
  ASSERT_TRUE(Register(base, 2 * kChunkSize, &header));
  EXPECT_EQ(LeafBytes(), leaves) << "Register mapped a leaf PrepareRange had not";
  EXPECT_EQ(Lookup(base + kChunkSize), &header);
  Unregister(base, 2 * kChunkSize);
  EXPECT_FALSE(PrepareRange(base + 4096, kChunkSize));  // unaligned
  platform::Release(base, 2 * kChunkSize);
}

TEST(RegistryTest, RejectsUnalignedRanges) {
  int header = 0;
  EXPECT_FALSE(Register(reinterpret_cast<void*>(kChunkSize + 4096), kChunkSize, &header));
  EXPECT_FALSE(Register(reinterpret_cast<void*>(kChunkSize), 0, &header));
  EXPECT_FALSE(Register(reinterpret_cast<void*>(uintptr_t{1} << 47), kChunkSize, &header));
}

TEST(RegistryTest, LeavesAreSharedAndCounted) {
  char* base = static_cast<char*>(platform::Reserve(2 * kChunkSize, kChunkSize));
  ASSERT_NE(base, nullptr);
  int a = 0, b = 0;
  ASSERT_TRUE(Register(base, kChunkSize, &a));
  const size_t leaves = LeafBytes();
  ASSERT_TRUE(Register(base + kChunkSize, kChunkSize, &b));
  EXPECT_GE(leaves, sizeof(Leaf));
  EXPECT_EQ(Lookup(base), &a);
  EXPECT_EQ(Lookup(base + kChunkSize), &b);
  Unregister(base, 2 * kChunkSize);
  platform::Release(base, 2 * kChunkSize);
}

// Readers never see a torn or stale header while writers register and unregister
// other chunks (run under --config=tsan too).
TEST(RegistryTest, ConcurrentLookupsDuringWrites) {
  constexpr int kChunks = 16;
  char* base = static_cast<char*>(platform::Reserve(kChunks * kChunkSize, kChunkSize));
  ASSERT_NE(base, nullptr);
  static int headers[kChunks];
  ASSERT_TRUE(Register(base, kChunkSize, &headers[0]));  // chunk 0 stays registered
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      ASSERT_EQ(Lookup(base + 100), &headers[0]);
      for (int c = 1; c < kChunks; ++c) {
        void* h = Lookup(base + c * kChunkSize);
        ASSERT_TRUE(h == nullptr || h == &headers[c]);
      }
    }
  });
  for (int round = 0; round < 200; ++round) {
    for (int c = 1; c < kChunks; ++c)
      ASSERT_TRUE(Register(base + c * kChunkSize, kChunkSize, &headers[c]));
    for (int c = 1; c < kChunks; ++c) Unregister(base + c * kChunkSize, kChunkSize);
  }
  stop = true;
  reader.join();
  Unregister(base, kChunkSize);
  platform::Release(base, kChunks * kChunkSize);
}

}  // namespace
}  // namespace hakmem::registry
