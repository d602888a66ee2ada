#include "hakmem/pool_tls/pool_tls.h"

#include "hakmem/stats/stats.h"

namespace hakmem::pool_tls {

void CountUncachedRefill() { stats::Count(stats::Counter::k_fallback_pool_uncached); }

void DescribeLane(platform::DiagLine* line) {
  line->Str("pool lane (pool_tls): ")
      .Dec(kTinyMax + 1)
      .Str("..")
      .Dec(kPoolMax)
      .Str(" B in ")
      .Dec(kNumPoolClasses)
      .Str(" classes, ")
      .Str(kCached ? "cached" : "uncached (pool_tls=off)");
  if constexpr (kPrewarm) line->Str(", prewarmed up to ").Dec(kPrewarmMaxSize).Str(" B");
}

}  // namespace hakmem::pool_tls
