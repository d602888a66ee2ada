#include "hakmem/superslab/free_link.h"

#include <stdlib.h>
#include <sys/auxv.h>

#include <cstring>

#include "hakmem/config/options.h"
#include "hakmem/platform/platform.h"
#include "hakmem/stats/stats.h"

namespace hakmem {

ABSL_CONST_INIT BlockSecrets g_block_secrets = {};

namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

void InitBlockSecrets() {
  if (g_block_secrets.free_tag != 0) return;
  // AT_RANDOM: 16 bytes the kernel drew for this process; glibc uses the first 8
  // for its stack and pointer guards, these use the other 8. ASLR adds an address.
  uint64_t seed = reinterpret_cast<uintptr_t>(&g_block_secrets);
  if (const char* random = reinterpret_cast<const char*>(getauxval(AT_RANDOM))) {
    uint64_t bytes;
    memcpy(&bytes, random + 8, sizeof(bytes));  // not necessarily 8-byte aligned
    seed ^= bytes;
  }
  // Low 4 bits 0: nullptr and aligned pointers stay aligned when encoded. Top bit
  // 1: a raw address written over a link (any user address has it 0) decodes
  // with it set, so the check always fails.
  g_block_secrets.link_key = (Mix(seed) & ~uint64_t{15}) | (uint64_t{1} << 63);
  g_block_secrets.free_tag = Mix(seed + 0x9E3779B97F4A7C15ull) | 1;
}

void ReportMisuse(platform::DiagLine& line) {
  stats::Count(stats::Counter::k_frees_invalid);
  line.Write();
  if (config::GetOptions().invalid_free == config::InvalidFreePolicy::kAbort) abort();
}

void ReportInvalidFree(const void* ptr, const char* reason, const char* call) {
  platform::DiagLine line;
  line.Str("hakmem: invalid free of ")
      .Hex(reinterpret_cast<uintptr_t>(ptr))
      .Str(" (")
      .Str(reason)
      .Str(") in ")
      .Str(call)
      .Str("()");
  ReportMisuse(line);
}

void* ReportCorruptLink(const void* block, uintptr_t decoded) {
  platform::DiagLine line;
  line.Str("hakmem: corrupted free list: the link in freed block ")
      .Hex(reinterpret_cast<uintptr_t>(block))
      .Str(" decodes to ")
      .Hex(decoded)
      .Str(" (written after free?)");
  ReportMisuse(line);
  return nullptr;
}

}  // namespace hakmem
