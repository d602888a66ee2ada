// The main of api_fuzz_test: runs LLVMFuzzerTestOneInput (api_fuzz.cc) without
// libFuzzer, so that `bazel test //...` exercises the fuzz target with any
// compiler: over every file of the checked-in corpus (directories given as
// arguments), then over inputs drawn from fixed seeds. Fails (aborts) where the
// target does. tools/fuzz.sh runs the real, coverage-guided fuzzer.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// Fixed-seed inputs per run: fewer under ThreadSanitizer, which is 5-15x slower
// (gcc defines __SANITIZE_THREAD__; clang 14 only answers __has_feature).
#if defined(__has_feature)
#define FUZZ_HAS_FEATURE(x) __has_feature(x)
#else
#define FUZZ_HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || FUZZ_HAS_FEATURE(thread_sanitizer)
constexpr int kDefaultRuns = 40;
#else
constexpr int kDefaultRuns = 200;
#endif

namespace {

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::vector<uint8_t> bytes;
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return bytes;
  uint8_t buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), f)) > 0)
    bytes.insert(bytes.end(), buffer, buffer + n);
  fclose(f);
  return bytes;
}

uint64_t Next(uint64_t* state) {  // xorshift64*
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 2685821657736338717ull;
}

}  // namespace

int main(int argc, char** argv) {
  int corpus_files = 0;
  for (int i = 1; i < argc; ++i) {
    DIR* dir = opendir(argv[i]);
    if (dir == nullptr) {
      fprintf(stderr, "fuzz_replay: cannot open corpus directory %s\n", argv[i]);
      return 1;
    }
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      const std::vector<uint8_t> input = ReadFile(std::string(argv[i]) + "/" + entry->d_name);
      LLVMFuzzerTestOneInput(input.data(), input.size());
      ++corpus_files;
    }
    closedir(dir);
  }
  const char* runs_env = getenv("FUZZ_REPLAY_RUNS");
  const int runs = runs_env != nullptr ? atoi(runs_env) : kDefaultRuns;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  std::vector<uint8_t> input;
  for (int run = 0; run < runs; ++run) {
    input.resize(Next(&state) % 4096);
    for (uint8_t& b : input) b = static_cast<uint8_t>(Next(&state) >> 56);
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  printf("fuzz_replay: %d corpus inputs and %d fixed-seed inputs passed\n", corpus_files, runs);
  if (argc > 1 && corpus_files == 0) {
    fprintf(stderr, "fuzz_replay: the corpus is empty\n");
    return 1;
  }
  return 0;
}
