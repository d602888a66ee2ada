// The pool lane's size lookup (the malloc fast path's first load for 1 KiB ..
// 128 KiB requests): one load from the shared list-offset table.
#include <cstddef>
#include <vector>

#include "benchmark/benchmark.h"
#include "hakmem/pool_tls/pool_tls.h"

namespace hakmem::pool_tls {
namespace {

void BM_SizeListOffset(benchmark::State& state) {
  std::vector<size_t> sizes;
  for (size_t i = 0; i < 4096; ++i) {
    sizes.push_back(kTinyMax + 1 + (i * 2654435761u) % (kPoolMax - kTinyMax));
  }
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(SizeListOffset(sizes[i++ & 4095]));
}
BENCHMARK(BM_SizeListOffset);

}  // namespace
}  // namespace hakmem::pool_tls

BENCHMARK_MAIN();
