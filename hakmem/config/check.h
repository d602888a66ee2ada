// config/check: HAKMEM_DCHECK, the allocator's invariants written in code.
//
// Owns: the check macro and its failure report. A check is compiled in with
// --define hakmem_checks=on (--config=debug sets it; the *_checks_on flag
// variants run the unit tests so): a false condition writes "hakmem: check failed: <condition>
// at <file>:<line>" to stderr without allocating, and aborts. Off (the default),
// the condition is compiled (so it stays well-formed) but never evaluated.
// Thread-safety: any thread. Called by: every box above config.
#ifndef HAKMEM_CONFIG_CHECK_H_
#define HAKMEM_CONFIG_CHECK_H_

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/config/build_config.h"

namespace hakmem::config {

[[noreturn]] ABSL_ATTRIBUTE_NOINLINE void CheckFailed(const char* condition, const char* file,
                                                      int line);

}  // namespace hakmem::config

#define HAKMEM_DCHECK(condition)                                       \
  do {                                                                 \
    if constexpr (::hakmem::config::kChecks) {                         \
      if (ABSL_PREDICT_FALSE(!(condition))) {                          \
        ::hakmem::config::CheckFailed(#condition, __FILE__, __LINE__); \
      }                                                                \
    }                                                                  \
  } while (0)

#endif  // HAKMEM_CONFIG_CHECK_H_
