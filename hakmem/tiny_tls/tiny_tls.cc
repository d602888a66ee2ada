#include "hakmem/tiny_tls/tiny_tls.h"

#include "hakmem/config/build_config.h"

namespace hakmem::tiny_tls {

ABSL_CONST_INIT __thread TinyCaches tls_tiny HAKMEM_TLS =
    TinyCaches::Empty();

void* Refill(Heap* heap, int cls, bool* zeroed) { return tls_tiny.Refill(heap, cls, zeroed); }

void Flush(Heap* heap, int cls, void* block) { tls_tiny.Flush(heap, cls, block); }

bool IsCached(int cls, const void* block) { return tls_tiny.Contains(cls, block); }

void SetUncached() { tls_tiny.SetUncached(); }

void FlushAll(Heap* heap) { tls_tiny.FlushAll(heap); }

}  // namespace hakmem::tiny_tls
