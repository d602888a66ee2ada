#include "hakmem/config/check.h"

#include <stdlib.h>

#include "hakmem/platform/platform.h"

namespace hakmem::config {

void CheckFailed(const char* condition, const char* file, int line) {
  platform::DiagLine()
      .Str("hakmem: check failed: ")
      .Str(condition)
      .Str(" at ")
      .Str(file)
      .Str(":")
      .Dec(static_cast<uint64_t>(line))
      .Write();
  abort();
}

}  // namespace hakmem::config
