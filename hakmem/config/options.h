// config/options: the runtime options table, one HAKMEM_<NAME> environment
// variable per row, each documented in docs/tuning.md (a table generated from
// this list, tools/gen_tuning.sh; tuning_doc_test fails when the page drifts).
//
// Read once, lazily, on first use, without allocating (a text option points into
// the environment); a value that does not parse
// is reported on stderr and the default is kept. Thread-safety: GetOptions() may be
// called from any thread at any time; the first call parses the environment (a
// concurrent first caller waits for it to finish). Called by: profiler, superslab
// (and free_link), ace, heap, thread_cache, free_dispatch, core, //hakmem.
#ifndef HAKMEM_CONFIG_OPTIONS_H_
#define HAKMEM_CONFIG_OPTIONS_H_

#include <cstdint>

namespace hakmem::config {

enum class InvalidFreePolicy : uint8_t { kAbort, kWarn };
enum class ThpPolicy : uint8_t { kAuto, kAlways, kNever };

//  X(NAME,        field,          type,              default,  help)
#define HAKMEM_OPTION_LIST(X)                                                         \
  X(STATS, stats, bool, false,                                                        \
    "1: print allocation, lane, class and syscall statistics to stderr at exit")      \
  X(SIZE_HIST, size_hist, bool, false,                                                \
    "1: print a histogram of requested sizes at exit (by class, then powers of two)") \
  X(INVALID_FREE, invalid_free, InvalidFreePolicy, InvalidFreePolicy::kAbort,         \
    "abort (default): report an invalid free and abort; warn: report and go on")      \
  X(PURGE_DELAY_MS, purge_delay_ms, uint64_t, 1000,                                   \
    "milliseconds an empty superslab or huge mapping stays committed before purge; "  \
    "memory free inside a heap waits a quarter of it")                                \
  X(RETAIN_MB, retain_mb, uint64_t, 256,                                              \
    "MiB of empty memory kept committed for reuse; beyond it, purge at once")         \
  X(THP, thp, ThpPolicy, ThpPolicy::kAuto,                                            \
    "auto: 2 MiB pages for superslabs and huge blocks when the kernel's THP mode is " \
    "always or madvise and its defrag mode is defer or never (a fault never waits "   \
    "for compaction); always: whenever the THP mode allows, even if faults wait; "    \
    "never: 4 KiB pages only")                                                        \
  X(HEAP_PROFILE, heap_profile, const char*, nullptr,                                 \
    "<prefix>: sample allocations; write <prefix>.<pid>.heap (pprof format) at exit") \
  X(HEAP_PROFILE_RATE, heap_profile_rate, uint64_t, 256 * 1024,                       \
    "mean bytes allocated between two heap-profile samples")                          \
  X(HEAP_PROFILE_SEED, heap_profile_seed, uint64_t, 0,                                \
    "seed of the heap-profile sampler; 0: a different one each run")                  \
  X(BACKGROUND_RELEASE, background_release, bool, true,                               \
    "1: a thread gives back the memory of heaps whose threads went quiet (started "   \
    "by a slow path once main runs, when memory waits for release); 0: only "         \
    "allocator calls give memory back")                                               \
  X(ACE_BUDGET_KB, ace_budget_kb, uint64_t, 4096,                                     \
    "KiB of thread-cache limits one thread may hold (ACE): hot classes take from idle ones")

struct Options {
#define HAKMEM_OPTION_FIELD(NAME, field, type, default_value, help) type field = default_value;
  HAKMEM_OPTION_LIST(HAKMEM_OPTION_FIELD)
#undef HAKMEM_OPTION_FIELD
};

// The options of this process (parsed on first call).
const Options& GetOptions();

// Whether superslabs and huge mappings are advised to use 2 MiB pages (the build
// allows it, the kernel's THP mode is not never, and HAKMEM_THP=always, or
// HAKMEM_THP=auto where the kernel's defrag mode lets no fault of an advised
// range wait for compaction; slow paths only), and why, for the stats report:
// "on (kernel: madvise, defrag: defer)", ...
bool HugePagesEnabled();
const char* ThpStatus();

// Parses the environment again (tests change it with setenv).
void ReloadOptionsForTesting();

// The table itself, for documentation checks and for printing.
struct OptionInfo {
  const char* env_name;  // "HAKMEM_STATS"
  const char* help;
};
inline constexpr OptionInfo kOptionTable[] = {
#define HAKMEM_OPTION_INFO(NAME, field, type, default_value, help) {"HAKMEM_" #NAME, help},
    HAKMEM_OPTION_LIST(HAKMEM_OPTION_INFO)
#undef HAKMEM_OPTION_INFO
};

}  // namespace hakmem::config

#endif  // HAKMEM_CONFIG_OPTIONS_H_
