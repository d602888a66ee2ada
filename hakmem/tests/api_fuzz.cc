// A coverage-guided fuzz target of hakmem's allocation API (libFuzzer's entry
// point). Each input decodes to a sequence of operations — malloc, calloc,
// realloc, reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
// free, sized free, usable size, and blocks handed to another thread that checks
// and frees them — run through the hak_* API and checked against a model: every
// block holds its own pattern, is aligned as asked, has a usable size of at least
// its size, calloc's bytes are zero, realloc keeps the prefix, and errors come
// with the errno glibc gives. A mismatch aborts with a line saying what.
//
// Built two ways: with `clang -fsanitize=fuzzer,address` by tools/fuzz.sh for
// open-ended runs, and with fuzz_replay_main.cc into api_fuzz_test, which
// `bazel test //...` runs over the checked-in corpus and fixed-seed inputs.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cstddef>

#include "hakmem/hakmem.h"

namespace {

[[noreturn]] void Fail(const char* what, size_t a, size_t b) {
  fprintf(stderr, "api_fuzz: %s (%zu, %zu)\n", what, a, b);
  abort();
}

// The input, read a byte or a number at a time; zeros once it runs out.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | Byte();
    return v;
  }

  // A size: mostly small, with every lane, the class and lane boundaries +-1 and
  // a few impossible ones.
  size_t Size() {
    const uint8_t kind = Byte();
    const uint32_t r = U32();
    switch (kind % 16) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
        return r % 1025;  // tiny, 0 included
      case 5:
      case 6:
      case 7:
        return 1024 + r % (128 << 10);  // pool
      case 8:
      case 9:
        return (128 << 10) + r % (896 << 10);  // large
      case 10:
        return (1 << 20) + r % (5 << 20);  // huge
      case 11:
      case 12: {  // a power of two from 16 B to 8 MiB, +-1
        const size_t p = size_t{16} << (r % 20);
        return p - 1 + (r >> 8) % 3;
      }
      case 13:
        return r % 64;
      case 14:
        return r % 4096;
      default: {
        static const size_t kImpossible[] = {
            SIZE_MAX,        SIZE_MAX - 4095, size_t{PTRDIFF_MAX}, size_t{PTRDIFF_MAX} + 1,
            size_t{1} << 62, size_t{1} << 48};
        return kImpossible[r % 6];
      }
    }
  }

  // An alignment: a power of two from 1 to 4 MiB, now and then an invalid one.
  size_t Alignment() {
    const uint8_t b = Byte();
    if (b % 32 == 31) {
      static const size_t kOdd[] = {0, 3, 24, 100, 4097, SIZE_MAX};
      return kOdd[(b >> 5) % 6];
    }
    return size_t{1} << (b % 23);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

bool Impossible(size_t size) { return size > (size_t{1} << 47); }

struct Block {
  uint8_t* p = nullptr;
  size_t size = 0;
  uint8_t seed = 0;
};

uint8_t PatternByte(const Block& b, size_t i) {
  return static_cast<uint8_t>(b.seed + i * 131 + (i >> 8));
}

// Visits the first and last 256 bytes and one byte in every 4 KiB (64 KiB for
// blocks above 1 MiB) between: enough to catch overlap and lost contents, cheap
// for huge blocks.
template <typename F>
void ForSampled(size_t size, F f) {
  const size_t stride = size > (size_t{1} << 20) ? size_t{64} << 10 : 4096;
  for (size_t i = 0; i < size && i < 256; ++i) f(i);
  for (size_t i = 256; i + 256 < size; i += stride) f(i);
  for (size_t i = size > 256 ? size - 256 : 256; i < size; ++i) f(i);
}

void Fill(Block* b) {
  ForSampled(b->size, [b](size_t i) { b->p[i] = PatternByte(*b, i); });
}

// Checks the bytes Fill wrote (for b.size) below `upto`.
void Check(const Block& b, size_t upto, const char* what) {
  ForSampled(b.size, [&](size_t i) {
    if (i < upto && b.p[i] != PatternByte(b, i)) Fail(what, b.size, i);
  });
}

void CheckNew(const Block& b, size_t alignment, const char* what) {
  if (reinterpret_cast<uintptr_t>(b.p) % alignment != 0) Fail(what, b.size, alignment);
  if (hak_malloc_usable_size(b.p) < b.size) Fail(what, b.size, hak_malloc_usable_size(b.p));
}

// ---- blocks handed to another thread, which checks and frees them ----

constexpr int kQueue = 256;
pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
Block g_queue[kQueue];
int g_queued = 0;
bool g_worker_busy = false;

void* Worker(void*) {
  for (;;) {
    pthread_mutex_lock(&g_mutex);
    while (g_queued == 0) pthread_cond_wait(&g_cond, &g_mutex);
    Block b = g_queue[--g_queued];
    g_worker_busy = true;
    pthread_mutex_unlock(&g_mutex);
    Check(b, b.size, "contents changed before a remote free");
    hak_free(b.p);  // a remote free
    pthread_mutex_lock(&g_mutex);
    g_worker_busy = false;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_mutex);
  }
  return nullptr;
}

void HandOff(const Block& b) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, [] {
    pthread_t t;
    if (pthread_create(&t, nullptr, Worker, nullptr) != 0) Fail("pthread_create", 0, 0);
    pthread_detach(t);
  });
  pthread_mutex_lock(&g_mutex);
  while (g_queued == kQueue) pthread_cond_wait(&g_cond, &g_mutex);
  g_queue[g_queued++] = b;
  pthread_cond_broadcast(&g_cond);
  pthread_mutex_unlock(&g_mutex);
}

void WaitForWorker() {
  pthread_mutex_lock(&g_mutex);
  while (g_queued != 0 || g_worker_busy) pthread_cond_wait(&g_cond, &g_mutex);
  pthread_mutex_unlock(&g_mutex);
}

// ---- the operations ----

constexpr int kSlots = 32;

// A new block from `p` of `size` bytes (nullptr allowed only for impossible sizes
// and then errno must be ENOMEM).
void Adopt(Block* slot, void* p, size_t size, size_t alignment, uint8_t seed, const char* what) {
  if (p == nullptr) {
    if (!Impossible(size)) Fail(what, size, alignment);
    if (errno != ENOMEM) Fail("errno is not ENOMEM", size, static_cast<size_t>(errno));
    return;
  }
  if (Impossible(size)) Fail("an impossible size succeeded", size, alignment);
  slot->p = static_cast<uint8_t*>(p);
  slot->size = size;
  slot->seed = seed;
  CheckNew(*slot, alignment, what);
  Fill(slot);
}

void Release(Block* slot) {
  if (slot->p == nullptr) return;
  Check(*slot, slot->size, "contents changed before free");
  hak_free(slot->p);
  *slot = Block();
}

void RunOne(Input* in, Block* slots) {
  const uint8_t op = in->Byte();
  Block* slot = &slots[in->Byte() % kSlots];
  const uint8_t seed = in->Byte();
  errno = 0;
  switch (op % 14) {
    case 0: {
      Release(slot);
      const size_t size = in->Size();
      Adopt(slot, hak_malloc(size), size, 16, seed, "malloc");
      break;
    }
    case 1: {
      Release(slot);
      // Up to 16 MiB (calloc clears reused memory), or an impossible product.
      const size_t count = in->Byte() % 9;
      size_t each = in->Size();
      if (!Impossible(each)) each %= size_t{2} << 20;
      size_t total;
      void* p = hak_calloc(count, each);
      if (__builtin_mul_overflow(count, each, &total)) {
        if (p != nullptr || errno != ENOMEM) Fail("calloc overflow", count, each);
        break;
      }
      if (p != nullptr) {
        ForSampled(total, [&](size_t i) {
          if (static_cast<uint8_t*>(p)[i] != 0) Fail("calloc memory not zero", total, i);
        });
      }
      Adopt(slot, p, total, 16, seed, "calloc");
      break;
    }
    case 2:
    case 3: {  // realloc / reallocarray of a live block (or nullptr)
      const size_t size = in->Size();
      void* p = op % 14 == 2 ? hak_realloc(slot->p, size) : hak_reallocarray(slot->p, 1, size);
      if (size == 0 && slot->p != nullptr) {  // glibc: freed, nullptr
        if (p != nullptr) Fail("realloc(p, 0) returned a block", 0, 0);
        *slot = Block();
        break;
      }
      if (p == nullptr) {
        if (!Impossible(size) || errno != ENOMEM)
          Fail("realloc failed", size, static_cast<size_t>(errno));
        if (slot->p != nullptr) Check(*slot, slot->size, "realloc failure changed the block");
        break;
      }
      Block moved = *slot;
      moved.p = static_cast<uint8_t*>(p);
      if (slot->p != nullptr)
        Check(moved, size < slot->size ? size : slot->size, "realloc lost contents");
      moved.size = size;
      moved.seed = seed;
      *slot = moved;
      CheckNew(*slot, 16, "realloc");
      Fill(slot);
      break;
    }
    case 4: {
      Release(slot);
      const size_t alignment = in->Alignment();
      const size_t size = in->Size();
      void* p = reinterpret_cast<void*>(0x1);
      const int rc = hak_posix_memalign(&p, alignment, size);
      const bool valid = alignment >= sizeof(void*) && (alignment & (alignment - 1)) == 0;
      if (!valid) {
        if (rc != EINVAL || p != reinterpret_cast<void*>(0x1))
          Fail("posix_memalign bad alignment", alignment, rc);
        break;
      }
      if (rc != 0) {
        if (!Impossible(size) || rc != ENOMEM) Fail("posix_memalign failed", alignment, size);
        break;
      }
      Adopt(slot, p, size, alignment, seed, "posix_memalign");
      break;
    }
    case 5:
    case 6: {
      Release(slot);
      const size_t alignment = in->Alignment();
      const size_t size = in->Size();
      const bool c11 = op % 14 == 5;
      void* p = c11 ? hak_aligned_alloc(alignment, size) : hak_memalign(alignment, size);
      const bool pow2 = alignment != 0 && (alignment & (alignment - 1)) == 0;
      // aligned_alloc refuses an alignment that is not a power of two, memalign
      // one above half the address space (and rounds others up); both EINVAL.
      if (c11 ? !pow2 : alignment > (size_t{1} << 62)) {
        if (p != nullptr || errno != EINVAL)
          Fail("bad alignment not refused with EINVAL", alignment, size);
        break;
      }
      size_t effective = 16;
      while (effective < alignment) effective *= 2;
      Adopt(slot, p, size, effective, seed, c11 ? "aligned_alloc" : "memalign");
      break;
    }
    case 7: {
      Release(slot);
      const size_t size = in->Size();
      const bool page_rounded = in->Byte() & 1;
      void* p = page_rounded ? hak_pvalloc(size) : hak_valloc(size);
      Adopt(slot, p, size, 4096, seed, page_rounded ? "pvalloc" : "valloc");
      break;
    }
    case 8:
      Release(slot);
      break;
    case 9:
      if (slot->p != nullptr) {
        Check(*slot, slot->size, "contents changed before sized free");
        hak_free_sized(slot->p, slot->size);
        *slot = Block();
      }
      break;
    case 10:
      if (slot->p != nullptr && hak_malloc_usable_size(slot->p) < slot->size) {
        Fail("usable size below the size", slot->size, hak_malloc_usable_size(slot->p));
      }
      if (hak_malloc_usable_size(nullptr) != 0) Fail("usable size of nullptr", 0, 0);
      break;
    case 11:
      if (slot->p != nullptr) {
        HandOff(*slot);
        *slot = Block();
      }
      break;
    case 12:
      if (slot->p != nullptr && hak_owns(slot->p) != 1)
        Fail("hak_owns of a live block", slot->size, 0);
      break;
    default:
      if (in->Byte() % 8 == 0) hak_purge();
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  Block slots[kSlots];
  for (int ops = 0; ops < 4096 && !in.empty(); ++ops) RunOne(&in, slots);
  for (Block& b : slots) Release(&b);
  WaitForWorker();
  return 0;
}
