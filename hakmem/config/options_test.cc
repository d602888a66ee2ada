#include "hakmem/config/options.h"

#include <stdlib.h>

#include "gtest/gtest.h"

namespace hakmem::config {
namespace {

class OptionsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const OptionInfo& info : kOptionTable) unsetenv(info.env_name);
    ReloadOptionsForTesting();
  }
};

TEST_F(OptionsTest, DefaultsWithEmptyEnvironment) {
  for (const OptionInfo& info : kOptionTable) unsetenv(info.env_name);
  ReloadOptionsForTesting();
  const Options& o = GetOptions();
  EXPECT_FALSE(o.stats);
  EXPECT_FALSE(o.size_hist);
  EXPECT_EQ(o.invalid_free, InvalidFreePolicy::kAbort);
  EXPECT_EQ(o.purge_delay_ms, 1000u);
  EXPECT_EQ(o.retain_mb, 256u);
  EXPECT_EQ(o.heap_profile, nullptr);
  EXPECT_EQ(o.heap_profile_rate, 256u * 1024);
  EXPECT_EQ(o.heap_profile_seed, 0u);
  EXPECT_EQ(o.thp, ThpPolicy::kAuto);
  EXPECT_EQ(o.ace_budget_kb, 4096u);
}

TEST_F(OptionsTest, ParsesEveryType) {
  setenv("HAKMEM_STATS", "1", 1);
  setenv("HAKMEM_SIZE_HIST", "on", 1);
  setenv("HAKMEM_INVALID_FREE", "warn", 1);
  setenv("HAKMEM_PURGE_DELAY_MS", "25", 1);
  setenv("HAKMEM_RETAIN_MB", "0", 1);
  setenv("HAKMEM_HEAP_PROFILE", "/tmp/prof", 1);
  setenv("HAKMEM_THP", "never", 1);
  ReloadOptionsForTesting();
  const Options& o = GetOptions();
  EXPECT_EQ(o.thp, ThpPolicy::kNever);
  EXPECT_STREQ(o.heap_profile, "/tmp/prof");
  EXPECT_TRUE(o.stats);
  EXPECT_TRUE(o.size_hist);
  EXPECT_EQ(o.invalid_free, InvalidFreePolicy::kWarn);
  EXPECT_EQ(o.purge_delay_ms, 25u);
  EXPECT_EQ(o.retain_mb, 0u);
}

TEST_F(OptionsTest, BadValuesAreReportedAndKeepTheDefault) {
  setenv("HAKMEM_STATS", "maybe", 1);
  setenv("HAKMEM_INVALID_FREE", "ignore", 1);
  setenv("HAKMEM_PURGE_DELAY_MS", "12ms", 1);
  setenv("HAKMEM_RETAIN_MB", "99999999999999999999999", 1);
  setenv("HAKMEM_THP", "madvise", 1);
  testing::internal::CaptureStderr();
  ReloadOptionsForTesting();
  const std::string err = testing::internal::GetCapturedStderr();
  const Options& o = GetOptions();
  EXPECT_FALSE(o.stats);
  EXPECT_EQ(o.invalid_free, InvalidFreePolicy::kAbort);
  EXPECT_EQ(o.purge_delay_ms, 1000u);
  EXPECT_EQ(o.retain_mb, 256u);
  EXPECT_NE(err.find("HAKMEM_STATS=maybe: expected 1 or 0"), std::string::npos) << err;
  EXPECT_NE(err.find("HAKMEM_INVALID_FREE=ignore: expected abort or warn"), std::string::npos);
  EXPECT_NE(err.find("HAKMEM_PURGE_DELAY_MS=12ms"), std::string::npos);
  EXPECT_NE(err.find("HAKMEM_RETAIN_MB=9999"), std::string::npos);
  EXPECT_EQ(o.thp, ThpPolicy::kAuto);
  EXPECT_NE(err.find("HAKMEM_THP=madvise: expected auto, always or never"), std::string::npos)
      << err;
}

}  // namespace
}  // namespace hakmem::config
