// platform: hakmem's memory and clock calls to the operating system.
//
// Owns: reservation of aligned address ranges and their commit/decommit/release
// (mmap, madvise, munmap, mremap), the page size, a small thread id kept in TLS, the
// monotonic clock, the environment, the kernel's THP mode and the process's page
// faults, and diagnostics written to stderr without calling malloc. Every syscall
// made here is counted; stats prints the counts. (The rest of hakmem's OS calls
// are libc ones where they are used: pthread keys and atfork in core, getauxval for
// the block secrets, getpid in reports, the heap profiler's file.)
// Thread-safety: every function may be called from any thread at any time,
// including before main, inside a fork child and during thread exit. Nothing here
// allocates. Called by every box above it and //hakmem.
#ifndef HAKMEM_PLATFORM_PLATFORM_H_
#define HAKMEM_PLATFORM_PLATFORM_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/config.h"
#include "absl/base/optimization.h"

// The attributes of every hakmem thread-local: initial-exec, so the fast paths
// address it %fs-relative (also in the LD_PRELOAD object), and hidden, so every
// translation unit that inlines a fast path (tests included) agrees on how it is
// reached.
#define HAKMEM_TLS __attribute__((tls_model("initial-exec"), visibility("hidden")))
// On the declaration of a global the fast paths read: hidden there too, the
// compiler addresses it %rip-relative in one load instead of through the GOT.
#define HAKMEM_HIDDEN __attribute__((visibility("hidden")))

// On each exported allocation entry point (malloc, free, operator new/delete, the
// hak_* API): it starts 32 bytes into a 64-byte line, whatever code is linked
// before it. The function is aligned to 64 and patchable_function_entry emits 32
// bytes of never-executed NOPs ahead of its entry. Without it the entries sat
// wherever the size of all hakmem's other code put them, and tiny_hot moved by 7%
// with changes to unrelated code: on AMD Zen 5, the same malloc and free starting
// 0 or 16 bytes into a line ran at 0.93-0.94x of 32 or 48 (docs/security.md).
// 32 is also the start of a 32-byte fetch window, the unit of older x86 decoders.
#define HAKMEM_ENTRY_LAYOUT __attribute__((aligned(64), patchable_function_entry(32, 32)))

// The fast paths may address their thread-locals in asm on x86-64 (not under
// ThreadSanitizer, which does not see into asm): given the thread-local's
// ThreadOffset and an index in registers, each access is one %fs-relative
// instruction. gcc 12 cannot address a thread-local %fs-relative with a variable
// index (it materialises the thread pointer: two more instructions per access).
#if defined(__x86_64__) && !defined(ABSL_HAVE_THREAD_SANITIZER)
#define HAKMEM_FS_ASM 1
#else
#define HAKMEM_FS_ASM 0
#endif

namespace hakmem::platform {

#if HAKMEM_FS_ASM
// The offset of thread-local `object` from the thread pointer (%fs): compilers
// fold this into the initial-exec offset load (or the local-exec constant) when
// `object` is the thread-local itself, not a reference to a part of it.
template <typename T>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline uintptr_t ThreadOffset(const T& object) {
  return reinterpret_cast<uintptr_t>(&object) -
         reinterpret_cast<uintptr_t>(__builtin_thread_pointer());
}
#endif

// The allocator's page: the unit of its address arithmetic. The OS page may be
// smaller, never larger: CheckPageSize() stops a process where it is.
inline constexpr size_t kPageSize = 4096;

// `n` rounded up to a multiple of `to`, a power of two (pages, superslabs).
constexpr size_t RoundUp(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

// Fatal when the OS page is larger than kPageSize (a 16 or 64 KiB-page kernel,
// which hakmem does not support). Called once, by core's initialisation.
void CheckPageSize();

// The syscalls hakmem makes, counted as they happen.
#define HAKMEM_SYSCALL_LIST(X) \
  X(mmap)                      \
  X(munmap)                    \
  X(madvise)                   \
  X(mremap)                    \
  X(mprotect)                  \
  X(write)                     \
  X(open)                      \
  X(read)                      \
  X(fcntl)

enum class Syscall : int {
#define HAKMEM_SYSCALL_ENUM(name) k_##name,
  HAKMEM_SYSCALL_LIST(HAKMEM_SYSCALL_ENUM)
#undef HAKMEM_SYSCALL_ENUM
      kCount
};

// Number of times `call` was made by this process so far (all threads).
uint64_t SyscallCount(Syscall call);
const char* SyscallName(Syscall call);

// Reserves `size` bytes of address space, readable and writable, backed lazily by
// the OS, placed so that `base + offset` is aligned to `alignment` (a power of two,
// at least kPageSize; `offset` a multiple of kPageSize below `size`). Only `size`
// bytes stay reserved whatever the alignment: the padding taken to find an aligned
// spot is given back at once. Returns nullptr with errno set when the OS refuses;
// it never aborts.
void* Reserve(size_t size, size_t alignment, size_t offset = 0);

// Gives a range back to the OS. `ptr` and `size` are page-aligned.
bool Release(void* ptr, size_t size);

// Drops the physical pages of a range; the range stays reserved and reads as zero
// afterwards. `ptr` and `size` are page-aligned.
bool Decommit(void* ptr, size_t size);

// Asks the OS to back a range now (prefault builds).
bool Populate(void* ptr, size_t size);

// The kernel's transparent huge page mode, from
// /sys/kernel/mm/transparent_hugepage/enabled (read once, without allocating):
// kAlways backs every anonymous mapping with 2 MiB pages where it can, kMadvise
// only ranges advised with AdviseHugePages, kNever (also: no THP in the kernel,
// or the file unreadable) none.
enum class ThpMode : uint8_t { kNever, kMadvise, kAlways };
ThpMode KernelThpMode();
// Parses the text of that file ("always [madvise] never": the mode in brackets).
ThpMode ParseThpMode(const char* text);
// Whether the fault of a range advised with AdviseHugePages may wait for the
// kernel to compact memory (reclaim, then move pages) when no free 2 MiB page is
// at hand: /sys/kernel/mm/transparent_hugepage/defrag is always, madvise
// (Debian's default) or defer+madvise; not with defer or never (kcompactd does it
// in the background). Read once, without allocating; true if unreadable.
bool KernelThpFaultsMayStall();
// Parses the text of that file ("always defer defer+madvise [madvise] never").
bool ParseThpDefragStalls(const char* text);

// Asks the OS to back a range with 2 MiB pages when it is faulted in
// (MADV_HUGEPAGE). `ptr` and `size` are page-aligned; false if refused.
bool AdviseHugePages(void* ptr, size_t size);
// The opposite (MADV_NOHUGEPAGE): the range stays in 4 KiB pages, and khugepaged
// does not collapse it into huge pages again.
bool AdviseNoHugePages(void* ptr, size_t size);

// Makes a range inaccessible (PROT_NONE: hardened builds' guards) or, with
// `accessible`, readable and writable again. `ptr` and `size` are page-aligned;
// false if refused (no memory for the split mapping, or the map count limit).
bool Protect(void* ptr, size_t size, bool accessible);

// Moves the pages of [old_ptr, old_ptr + old_size) to new_ptr, a reserved range of
// new_size >= old_size bytes, without copying (mremap with MREMAP_FIXED). The old
// range is unmapped. Returns kMoved, or (nothing moved, the OS refused):
//  - kRefused: [new_ptr, new_ptr + new_size) is still the caller's reservation;
//  - kDestinationLost: the kernel may have unmapped the destination before it
//    refused, and something stands there now that may be another thread's
//    mapping: the caller must neither unmap nor register anything there.
enum class MoveResult : uint8_t { kMoved, kRefused, kDestinationLost };
MoveResult MovePages(void* old_ptr, size_t old_size, void* new_ptr, size_t new_size);

// A small dense id for the calling thread, read from TLS (no gettid()).
uint32_t ThreadId();

// Monotonic time in nanoseconds (vDSO clock, no syscall in practice).
uint64_t NowNanos();

// One thread's sleep until another wakes it (futex(2); nothing allocated): the
// background release's wait while it has nothing to give back. The sleeper
// Arm()s, checks once more that there is no work (a waker that made work after
// that check sees the word armed: the seq_cst store and load order them), then
// Wait()s; a waker that made work calls Wake(), one load while nobody sleeps.
class Wakeup {
 public:
  constexpr Wakeup() = default;
  void Arm() { word_.store(1, std::memory_order_seq_cst); }
  void Disarm() { word_.store(0, std::memory_order_relaxed); }
  // Sleeps while armed, for at most `timeout_ns`; false on the timeout.
  bool Wait(uint64_t timeout_ns);
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Wake() {
    if (ABSL_PREDICT_FALSE(word_.load(std::memory_order_seq_cst) != 0)) WakeSleeper();
  }

 private:
  ABSL_ATTRIBUTE_NOINLINE void WakeSleeper();
  std::atomic<int> word_{0};
};

// The value of an environment variable, or nullptr. Does not allocate.
const char* GetEnv(const char* name);

// Reads up to `size - 1` bytes of a file into `buffer` and NUL-terminates it.
// Returns the number of bytes read, or -1. Does not allocate.
long ReadSmallFile(const char* path, char* buffer, size_t size);

// Page faults of this process so far (getrusage): minor ones (a page mapped
// without I/O: first touches of anonymous memory) and major ones (with I/O).
struct PageFaults {
  uint64_t minor;
  uint64_t major;
};
PageFaults ProcessPageFaults();

// Bytes of this process's anonymous memory in 2 MiB pages (AnonHugePages of
// /proc/self/smaps), counting only the mappings whose start address `counted`
// accepts. Streams the file through a fixed buffer: no allocation. 0 if it
// cannot be read.
uint64_t AnonHugePageBytes(bool (*counted)(uintptr_t start));

// Plain file I/O without allocating (the heap profiler's dumps). OpenFile:
// `write` creates or truncates `path` (mode 0644); returns a descriptor or -1 with
// errno set. WriteAll writes every byte (false on error, errno set). ReadSome
// reads at most `size` bytes: the count, 0 at the end, -1 on error.
int OpenFile(const char* path, bool write);
bool WriteAll(int fd, const char* data, size_t size);
long ReadSome(int fd, char* buffer, size_t size);
void CloseFile(int fd);

// Writes the digits of `value` in `base` (10 or 16, lower case, no prefix), at
// least `min_digits` of them (zero-padded, at most 20), to `out` (room for 20) and
// returns how many. No NUL, no allocation: for every formatter without malloc.
int FormatUnsigned(uint64_t value, int base, int min_digits, char* out);

// A line of diagnostics assembled in a fixed buffer and written to stderr with
// one write(2). Never allocates; text beyond the buffer is cut.
class DiagLine {
 public:
  DiagLine& Str(const char* text);
  DiagLine& Dec(uint64_t value);
  DiagLine& SignedDec(int64_t value);
  DiagLine& Hex(uintptr_t value);
  DiagLine& Pad(size_t width);  // spaces up to `width` characters into the line
  // Writes the line (adding '\n') to file descriptor `fd` and clears it.
  void Write(int fd = 2);
  const char* text() const { return buffer_; }
  size_t size() const { return length_; }

 private:
  char buffer_[512] = {};
  size_t length_ = 0;
};

// A duplicate of `fd` at a number >= 3, closed on exec; -1 on failure. Used to
// keep stderr for the at-exit report of programs that close fd 2 before exit.
int DuplicateFd(int fd);

// Writes `message` and aborts the process. For invariant violations only.
[[noreturn]] ABSL_ATTRIBUTE_NOINLINE void Fatal(const char* message);

}  // namespace hakmem::platform

#endif  // HAKMEM_PLATFORM_PLATFORM_H_
