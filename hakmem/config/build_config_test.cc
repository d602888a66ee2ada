// Each flag variant of a test (hakmem/config/variants.bzl) is compiled with the
// flag values it names, and only those: the transition reaches the build, and a
// --define on the command line does not leak into a variant. Run plain (no
// HAKMEM_TEST_FLAG_VALUES), it checks only that every value is one of its flag's.
#include "hakmem/config/build_config.h"

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace {

// The HAKMEM_BUILD_* macros the build defined (flags.bzl), by flag name.
std::map<std::string, int> CompiledValues() {
  return {
      {"POOL_TLS", HAKMEM_BUILD_POOL_TLS},
      {"REMOTE_QUEUE", HAKMEM_BUILD_REMOTE_QUEUE},
      {"PREWARM", HAKMEM_BUILD_PREWARM},
      {"PREFAULT", HAKMEM_BUILD_PREFAULT},
      {"STATS", HAKMEM_BUILD_STATS},
      {"HARDENED", HAKMEM_BUILD_HARDENED},
      {"ENCODED_LISTS", HAKMEM_BUILD_ENCODED_LISTS},
      {"THP", HAKMEM_BUILD_THP},
      {"DEBUG_LOG", HAKMEM_BUILD_DEBUG_LOG},
      {"ACE", HAKMEM_BUILD_ACE},
      {"CHECKS", HAKMEM_BUILD_CHECKS},
  };
}

TEST(BuildConfigTest, EveryFlagIsZeroOrOne) {
  for (const auto& [name, value] : CompiledValues()) {
    EXPECT_TRUE(value == 0 || value == 1) << name << "=" << value;
  }
}

TEST(BuildConfigTest, VariantCompiledWithItsValues) {
  const char* expected_text = std::getenv("HAKMEM_TEST_FLAG_VALUES");
  if (expected_text == nullptr) GTEST_SKIP() << "not a flag variant";
  std::map<std::string, int> expected;
  std::stringstream items(expected_text);
  for (std::string item; std::getline(items, item, ',');) {
    const size_t equals = item.find('=');
    ASSERT_NE(equals, std::string::npos) << item;
    expected[item.substr(0, equals)] = std::stoi(item.substr(equals + 1));
  }
  // Every flag of flags.bzl is named, and this test knows each of them.
  EXPECT_EQ(expected, CompiledValues()) << "HAKMEM_TEST_FLAG_VALUES=" << expected_text;
}

}  // namespace
