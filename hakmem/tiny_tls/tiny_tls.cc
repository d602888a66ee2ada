#include "hakmem/tiny_tls/tiny_tls.h"

namespace hakmem::tiny_tls {

void DescribeLane(platform::DiagLine* line) {
  line->Str("tiny lane (tiny_tls): 0..")
      .Dec(kTinyMax)
      .Str(" B in ")
      .Dec(kNumTinyClasses)
      .Str(" classes, cached, size table per thread (")
      .Dec(sizeof(SizeTable))
      .Str(" B of TLS)");
}

}  // namespace hakmem::tiny_tls
