#include "hakmem/pool_tls/pool_tls.h"

#include "hakmem/stats/stats.h"

namespace hakmem::pool_tls {

ABSL_CONST_INIT __thread PoolCaches tls_pool HAKMEM_TLS =
    PoolCaches::Empty();

void* Refill(Heap* heap, int cls, bool* zeroed) {
  if constexpr (config::kPoolTls) return tls_pool.Refill(heap, cls, zeroed);
  stats::Count(stats::Counter::k_fallback_pool_uncached);
  *zeroed = false;
  void* block = nullptr;
  if (AllocBatch(heap, cls, 1, &block) != 1) return nullptr;
  MarkInUse(block);
  return block;
}

void Flush(Heap* heap, int cls, void* block) {
  if constexpr (config::kPoolTls) {
    tls_pool.Flush(heap, cls, block);
  } else {
    SuperSlab* ss = SuperSlabOf(block);
    FreeBlock(heap, ss, SlabOf(ss, block), block);
  }
}

bool IsCached(int cls, const void* block) {
  if constexpr (!config::kPoolTls) return false;
  return tls_pool.Contains(cls, block);
}

void Prewarm(Heap* heap) {
  if constexpr (!config::kPoolTls || !config::kPrewarm) return;
  for (int cls = kFirstPoolClass; cls < kNumClasses && kSizeClasses[cls].size <= 8192; ++cls) {
    if (tls_pool.Head(cls) != nullptr) continue;
    bool zeroed;
    void* block = tls_pool.Refill(heap, cls, &zeroed);
    if (block == nullptr) return;
    tls_pool.Push(cls, block);
  }
}

void SetUncached() { tls_pool.SetUncached(); }

void FlushAll(Heap* heap) { tls_pool.FlushAll(heap); }

}  // namespace hakmem::pool_tls
