#include "hakmem/config/options.h"

#include <atomic>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "hakmem/config/build_config.h"
#include "hakmem/platform/platform.h"

namespace hakmem::config {
namespace {

void ReportBadValue(const char* name, const char* value, const char* expected) {
  platform::DiagLine()
      .Str("hakmem: ignoring ")
      .Str(name)
      .Str("=")
      .Str(value)
      .Str(": expected ")
      .Str(expected)
      .Str("; the default stays")
      .Write();
}

void Parse(const char* name, const char* text, bool* out) {
  if (strcmp(text, "1") == 0 || strcmp(text, "on") == 0 || strcmp(text, "yes") == 0 ||
      strcmp(text, "true") == 0) {
    *out = true;
  } else if (strcmp(text, "0") == 0 || strcmp(text, "off") == 0 || strcmp(text, "no") == 0 ||
             strcmp(text, "false") == 0) {
    *out = false;
  } else {
    ReportBadValue(name, text, "1 or 0");
  }
}

void Parse(const char* name, const char* text, uint64_t* out) {
  uint64_t value = 0;
  const char* p = text;
  if (*p == '\0') return ReportBadValue(name, text, "a decimal number");
  for (; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9' || value > (UINT64_MAX - 9) / 10) {
      return ReportBadValue(name, text, "a decimal number");
    }
    value = value * 10 + static_cast<uint64_t>(*p - '0');
  }
  *out = value;
}

void Parse(const char*, const char* text, const char** out) {
  *out = text[0] != '\0' ? text : nullptr;  // empty: unset
}

void Parse(const char* name, const char* text, InvalidFreePolicy* out) {
  if (strcmp(text, "abort") == 0) {
    *out = InvalidFreePolicy::kAbort;
  } else if (strcmp(text, "warn") == 0) {
    *out = InvalidFreePolicy::kWarn;
  } else {
    ReportBadValue(name, text, "abort or warn");
  }
}

void Parse(const char* name, const char* text, ThpPolicy* out) {
  if (strcmp(text, "auto") == 0) {
    *out = ThpPolicy::kAuto;
  } else if (strcmp(text, "always") == 0) {
    *out = ThpPolicy::kAlways;
  } else if (strcmp(text, "never") == 0) {
    *out = ThpPolicy::kNever;
  } else {
    ReportBadValue(name, text, "auto, always or never");
  }
}

Options ReadEnvironment() {
  Options options;
#define HAKMEM_OPTION_READ(NAME, field, type, default_value, help)             \
  if (const char* text = platform::GetEnv("HAKMEM_" #NAME); text != nullptr) { \
    Parse("HAKMEM_" #NAME, text, &options.field);                              \
  }
  HAKMEM_OPTION_LIST(HAKMEM_OPTION_READ)
#undef HAKMEM_OPTION_READ
  return options;
}

// Constant-initialised so that GetOptions() works before any constructor runs.
ABSL_CONST_INIT Options g_options;
// 0: not read, 1: being read by one thread, 2: ready.
ABSL_CONST_INIT std::atomic<int> g_state{0};

ABSL_ATTRIBUTE_NOINLINE void Load() {
  int expected = 0;
  if (g_state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) {
    g_options = ReadEnvironment();
    g_state.store(2, std::memory_order_release);
    return;
  }
  while (g_state.load(std::memory_order_acquire) != 2) {
  }
}

}  // namespace

const Options& GetOptions() {
  if (ABSL_PREDICT_FALSE(g_state.load(std::memory_order_acquire) != 2)) Load();
  return g_options;
}

void ReloadOptionsForTesting() {
  g_state.store(0, std::memory_order_relaxed);
  Load();
}

bool HugePagesEnabled() {
  if (!kThp || platform::KernelThpMode() == platform::ThpMode::kNever) return false;
  switch (GetOptions().thp) {
    case ThpPolicy::kAlways:
      return true;
    case ThpPolicy::kAuto:
      // With a defrag mode that compacts on the fault of an advised range, a
      // fault can take milliseconds on a machine whose memory is fragmented:
      // measured at 5 s of a 7 s run (fragmentation benchmark), and not at all in
      // the next run. Peers advise no huge pages by default either.
      return !platform::KernelThpFaultsMayStall();
    case ThpPolicy::kNever:
      break;
  }
  return false;
}

const char* ThpStatus() {
  if constexpr (!kThp) return "off (built with hakmem_thp=off)";
  if (GetOptions().thp == ThpPolicy::kNever) return "off (HAKMEM_THP=never)";
  const bool stalls = platform::KernelThpFaultsMayStall();
  const bool always = GetOptions().thp == ThpPolicy::kAlways;
  switch (platform::KernelThpMode()) {
    case platform::ThpMode::kAlways:
      if (!stalls) return "on (kernel: always, defrag: defer or never)";
      return always ? "on (HAKMEM_THP=always; kernel: always, defrag may stall faults)"
                    : "off (kernel defrag may stall faults; HAKMEM_THP=always turns it on)";
    case platform::ThpMode::kMadvise:
      if (!stalls) return "on (kernel: madvise, defrag: defer or never)";
      return always ? "on (HAKMEM_THP=always; kernel: madvise, defrag may stall faults)"
                    : "off (kernel defrag may stall faults; HAKMEM_THP=always turns it on)";
    case platform::ThpMode::kNever:
      break;
  }
  return "off (kernel: never, or no THP)";
}

}  // namespace hakmem::config
