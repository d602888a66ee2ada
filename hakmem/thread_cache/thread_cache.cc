#include "hakmem/thread_cache/thread_cache.h"

namespace hakmem {

ABSL_CONST_INIT void* g_no_cache_slots[1] = {nullptr};

}  // namespace hakmem

namespace hakmem::thread_cache {

ABSL_CONST_INIT __thread ThreadCache tls_cache HAKMEM_TLS = ThreadCache::Empty();

void* Refill(Heap* heap, int cls, bool* zeroed) { return tls_cache.Refill(heap, cls, zeroed); }

void Flush(Heap* heap, int cls, void* block) { tls_cache.Flush(heap, cls, block); }

bool IsCached(int cls, const void* block) { return tls_cache.Contains(cls, block); }

uint32_t CachedBlocks(int cls) { return tls_cache.Count(cls); }

void SetUncached() { tls_cache.SetUncached(); }

void Prewarm(Heap* heap) {
  if constexpr (!pool_tls::kPrewarm) return;
  for (int cls = kFirstPoolClass; cls < kNumClasses; ++cls) {
    if (!pool_tls::Prewarms(cls) || tls_cache.Head(cls) != nullptr) continue;
    bool zeroed;
    void* block = tls_cache.Refill(heap, cls, &zeroed);
    if (block == nullptr) return;
    TakeLive(block);  // not the program's: cached, not handed out
    tls_cache.Push(cls, block);
  }
}

void FlushAll(Heap* heap) {
  HeapLock hold(&heap->lock);
  tls_cache.FlushAll(heap);
}

void Detach(Heap* heap) {
  HeapLock hold(&heap->lock);
  tls_cache.FlushAll(heap);
  tls_cache.DetachSlots();
}

}  // namespace hakmem::thread_cache
