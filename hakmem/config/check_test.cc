#include "hakmem/config/check.h"

#include "gtest/gtest.h"

namespace hakmem::config {
namespace {

// With checks on, a false condition names itself and its place, then aborts.
TEST(CheckDeathTest, AFalseConditionAbortsWithItsTextWhenChecksAreOn) {
  if constexpr (!kChecks) GTEST_SKIP() << "built with hakmem_checks=off";
  int used = 0;
  EXPECT_DEATH(HAKMEM_DCHECK(used == 1),
               "hakmem: check failed: used == 1 at .*check_test.cc:[0-9]+");
}

// Off, the condition is not evaluated at all (its side effect never happens);
// on, it is evaluated once.
TEST(CheckTest, TheConditionIsEvaluatedOnlyWhenChecksAreOn) {
  int evaluations = 0;
  HAKMEM_DCHECK(++evaluations > 0);
  EXPECT_EQ(evaluations, kChecks ? 1 : 0);
}

}  // namespace
}  // namespace hakmem::config
