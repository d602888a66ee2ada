#include "benchmarks/bench_util.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace bench {
namespace {

// Set by ParseArgs; PrintResult echoes the values, Fail and UsageError name the workload.
const char* g_bench = "bench";
const char* g_what = "";
const Arg* g_args = nullptr;
size_t g_arg_count = 0;
std::vector<double> g_defaults;  // for the usage text, once argv has replaced them

void PrintUsage(FILE* out) {
  fprintf(out, "usage: %s", g_bench);
  for (size_t i = 0; i < g_arg_count; ++i) fprintf(out, " [%s", g_args[i].name);
  for (size_t i = 0; i < g_arg_count; ++i) fputc(']', out);
  fprintf(out, "\n%s\nArguments are positional; a missing one takes its default.\n", g_what);
  for (size_t i = 0; i < g_arg_count; ++i) {
    const Arg& a = g_args[i];
    fprintf(out, "  %-10s %s (default %.15g, range %.15g..%.15g)\n", a.name, a.help, g_defaults[i],
            a.min, a.max);
  }
  fprintf(out, "Integers take a K, M or G suffix (powers of 1024).\n");
}

// Parses `text` as the value of `arg`; false if it is not a number in range.
bool ParseValue(const char* text, const Arg& arg, double* out) {
  char* end = nullptr;
  double v = strtod(text, &end);
  if (end == text) return false;
  if (arg.integer && *end != '\0') {
    switch (toupper(static_cast<unsigned char>(*end))) {
      case 'G':
        v *= 1024;
        [[fallthrough]];
      case 'M':
        v *= 1024;
        [[fallthrough]];
      case 'K':
        v *= 1024;
        ++end;
        break;
      default:
        return false;
    }
  }
  if (*end != '\0' || !std::isfinite(v) || v < arg.min || v > arg.max) return false;
  if (arg.integer && v != std::floor(v)) return false;
  *out = v;
  return true;
}

// The file name of the object whose malloc the dynamic linker resolves first: the
// preloaded library, "exe" when the program links its own, else the C library.
// Shows in every RESULT line so a run on the wrong allocator cannot pass unnoticed.
const char* MallocProvider() {
  Dl_info found;
  Dl_info self;
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  if (sym == nullptr || dladdr(sym, &found) == 0 || found.dli_fname == nullptr) return "unknown";
  if (dladdr(reinterpret_cast<void*>(&MallocProvider), &self) != 0 &&
      self.dli_fbase == found.dli_fbase) {
    return "exe";
  }
  const char* slash = strrchr(found.dli_fname, '/');
  return slash != nullptr ? slash + 1 : found.dli_fname;
}

// Reads a small /proc file into `buf` as a string, without allocating.
bool ReadProcFile(const char* path, char* buf, size_t size) {
  const int fd = open(path, O_RDONLY);
  if (fd < 0) return false;
  const ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

}  // namespace

void ParseArgs(int argc, char** argv, const char* bench, const char* what, Arg* args,
               size_t count) {
  g_bench = bench;
  g_what = what;
  g_args = args;
  g_arg_count = count;
  for (size_t i = 0; i < count; ++i) g_defaults.push_back(args[i].value);
  if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    PrintUsage(stdout);
    exit(0);
  }
  if (static_cast<size_t>(argc - 1) > count) UsageError("too many arguments");
  for (int i = 1; i < argc; ++i) {
    Arg& arg = args[i - 1];
    if (!ParseValue(argv[i], arg, &arg.value)) {
      fprintf(stderr, "%s: bad %s '%s'\n", bench, arg.name, argv[i]);
      PrintUsage(stderr);
      exit(2);
    }
  }
}

void UsageError(const char* message) {
  fprintf(stderr, "%s: %s\n", g_bench, message);
  PrintUsage(stderr);
  exit(2);
}

void Fail(const char* format, ...) {
  fprintf(stderr, "%s: FAILED: ", g_bench);
  va_list ap;
  va_start(ap, format);
  vfprintf(stderr, format, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

void PrintResult(uint64_t ops, double seconds, std::initializer_list<Field> extra) {
  printf("RESULT bench=%s ops=%llu seconds=%.6f ops_per_sec=%.0f peak_rss_kb=%llu malloc=%s",
         g_bench, static_cast<unsigned long long>(ops), seconds,
         seconds > 0 ? static_cast<double>(ops) / seconds : 0.0,
         static_cast<unsigned long long>(PeakRssKb()), MallocProvider());
  for (const Field& f : extra) printf(" %s=%llu", f.key, static_cast<unsigned long long>(f.value));
  printf(" args=");
  for (size_t i = 0; i < g_arg_count; ++i) printf(i == 0 ? "%.10g" : ",%.10g", g_args[i].value);
  printf("\n");
  fflush(stdout);
}

uint64_t PeakRssKb() {
  char buf[4096];
  if (ReadProcFile("/proc/self/status", buf, sizeof(buf))) {
    const char* hwm = strstr(buf, "VmHWM:");
    unsigned long long kb = 0;
    if (hwm != nullptr && sscanf(hwm, "VmHWM: %llu", &kb) == 1) return kb;
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss);
}

uint64_t CurrentRssKb() {
  char buf[128];
  unsigned long long size_pages = 0;
  unsigned long long resident_pages = 0;
  if (!ReadProcFile("/proc/self/statm", buf, sizeof(buf)) ||
      sscanf(buf, "%llu %llu", &size_pages, &resident_pages) != 2) {
    return 0;
  }
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

size_t LogUniformSize(uint32_t r, size_t min, size_t max) {
  const unsigned lo = 63 - __builtin_clzll(min | 1);
  const unsigned hi = 63 - __builtin_clzll(max | 1);
  const unsigned octave = lo + (r >> 16) % (hi - lo + 1);
  const size_t base = size_t{1} << octave;
  // The offset takes other bits of r than the octave and the caller's slot did.
  uint32_t mixed = r * 2654435761u;
  mixed ^= mixed >> 15;
  return Clamp(base + (mixed & (base - 1)), min, max);
}

void TouchPages(void* p, size_t size, uint8_t value) {
  volatile uint8_t* bytes = static_cast<volatile uint8_t*>(p);
  for (size_t off = 0; off < size; off += 4096) bytes[off] = value;
  bytes[size - 1] = value;
}

}  // namespace bench
