#include "hakmem/platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace hakmem::platform {
namespace {

std::atomic<uint64_t> g_syscalls[static_cast<int>(Syscall::kCount)];

void Count(Syscall call) {
  g_syscalls[static_cast<int>(call)].fetch_add(1, std::memory_order_relaxed);
}

// A refusal can be transient (another thread's munmap is in flight, an injected
// fault, the kernel short of a VMA for a moment): each call is tried this many
// times before the caller hears ENOMEM. A real exhaustion costs two more syscalls
// on a path that is failing anyway.
constexpr int kSyscallAttempts = 3;

bool Transient(int error) { return error == ENOMEM || error == EAGAIN || error == EINTR; }

// Makes `call` (counted as `kind`; true when it succeeded) up to kSyscallAttempts
// times while it fails with a transient errno.
template <typename Call>
bool WithRetries(Syscall kind, Call call) {
  for (int attempt = 1;; ++attempt) {
    Count(kind);
    if (call()) return true;
    if (attempt == kSyscallAttempts || !Transient(errno)) return false;
  }
}

// One anonymous read-write mapping of `size` bytes, at `hint` if the kernel
// takes it (nullptr: anywhere; `extra_flags` may make it exact); nullptr with
// errno when refused. Not counted.
void* MapAnonymous(void* hint, size_t size, int extra_flags = 0) {
  void* p = mmap(hint, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra_flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void* RawMmap(size_t size) {
  void* p = nullptr;
  WithRetries(Syscall::k_mmap, [&] { return (p = MapAnonymous(nullptr, size)) != nullptr; });
  return p;
}

// The thread id counter starts at 1 so that 0 can mean "not yet assigned".
std::atomic<uint32_t> g_next_thread_id{1};
ABSL_CONST_INIT __thread uint32_t tls_thread_id HAKMEM_TLS = 0;

}  // namespace

uint64_t SyscallCount(Syscall call) {
  return g_syscalls[static_cast<int>(call)].load(std::memory_order_relaxed);
}

const char* SyscallName(Syscall call) {
  static const char* const kNames[] = {
#define HAKMEM_SYSCALL_NAME(name) #name,
      HAKMEM_SYSCALL_LIST(HAKMEM_SYSCALL_NAME)
#undef HAKMEM_SYSCALL_NAME
  };
  return kNames[static_cast<int>(call)];
}

namespace {

// The last aligned reservation: the kernel places new mappings top-down, so the
// address space just below it is usually free.
ABSL_CONST_INIT std::atomic<uintptr_t> g_last_aligned{0};

// An aligned reservation without the padding, for when the padded one is refused
// (an address space limit leaves room for the range but not for range + alignment):
// asks for the aligned spot below the last aligned reservation, and keeps what the
// kernel gives only if it is there.
void* ReserveAtHint(size_t size, size_t alignment, size_t offset) {
  const int error = errno;
  const uintptr_t last = g_last_aligned.load(std::memory_order_relaxed);
  if (last < size + alignment) {
    errno = error;
    return nullptr;
  }
  const uintptr_t hint = ((last - size + offset) & ~(uintptr_t{alignment} - 1)) - offset;
  Count(Syscall::k_mmap);
  void* p = MapAnonymous(reinterpret_cast<void*>(hint), size);
  if (p == nullptr) {
    errno = error;
    return nullptr;
  }
  if (reinterpret_cast<uintptr_t>(p) != hint) {
    Release(p, size);
    errno = error;
    return nullptr;
  }
  g_last_aligned.store(hint, std::memory_order_relaxed);
  return p;
}

}  // namespace

void* Reserve(size_t size, size_t alignment, size_t offset) {
  if (alignment < kPageSize || (alignment & (alignment - 1)) != 0 || size == 0 ||
      size % kPageSize != 0 || offset % kPageSize != 0 || offset >= size) {
    errno = EINVAL;
    return nullptr;
  }
  if (alignment == kPageSize) return RawMmap(size);
  // Over-reserve and trim both ends: the kernel gives page alignment only.
  const size_t padded = size + alignment - kPageSize;
  if (padded < size) {
    errno = ENOMEM;
    return nullptr;
  }
  char* raw = static_cast<char*>(RawMmap(padded));
  if (raw == nullptr) return ReserveAtHint(size, alignment, offset);
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned =
      ((start + offset + alignment - 1) & ~(uintptr_t{alignment} - 1)) - offset;
  const size_t head = aligned - start;
  const size_t tail = padded - head - size;
  if (head != 0) Release(raw, head);
  if (tail != 0) Release(reinterpret_cast<char*>(aligned) + size, tail);
  g_last_aligned.store(aligned, std::memory_order_relaxed);
  return reinterpret_cast<void*>(aligned);
}

bool Release(void* ptr, size_t size) {
  return WithRetries(Syscall::k_munmap, [&] { return munmap(ptr, size) == 0; });
}

bool Decommit(void* ptr, size_t size) {
  return WithRetries(Syscall::k_madvise, [&] { return madvise(ptr, size, MADV_DONTNEED) == 0; });
}

bool Populate(void* ptr, size_t size) {
  Count(Syscall::k_madvise);
  const bool ok = madvise(ptr, size, MADV_WILLNEED) == 0;
  // Anonymous memory ignores WILLNEED; touching one byte per page backs it.
  volatile char* bytes = static_cast<volatile char*>(ptr);
  for (size_t offset = 0; offset < size; offset += kPageSize) bytes[offset] = 0;
  return ok;
}

ThpMode ParseThpMode(const char* text) {
  const char* open = strchr(text, '[');
  if (open == nullptr) return ThpMode::kNever;
  if (strncmp(open, "[always]", 8) == 0) return ThpMode::kAlways;
  if (strncmp(open, "[madvise]", 9) == 0) return ThpMode::kMadvise;
  return ThpMode::kNever;
}

namespace {
// KernelThpMode's answer + 1; 0: not read yet (two first calls read the same file).
ABSL_CONST_INIT std::atomic<int> g_thp_mode{0};
}  // namespace

ThpMode KernelThpMode() {
  const int mode = g_thp_mode.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_TRUE(mode != 0)) return static_cast<ThpMode>(mode - 1);
  char text[128];
  const ThpMode read =
      ReadSmallFile("/sys/kernel/mm/transparent_hugepage/enabled", text, sizeof(text)) > 0
          ? ParseThpMode(text)
          : ThpMode::kNever;
  g_thp_mode.store(static_cast<int>(read) + 1, std::memory_order_relaxed);
  return read;
}

bool ParseThpDefragStalls(const char* text) {
  const char* open = strchr(text, '[');
  if (open == nullptr) return true;
  return !(strncmp(open, "[defer]", 7) == 0 || strncmp(open, "[never]", 7) == 0);
}

namespace {
// KernelThpFaultsMayStall's answer + 1; 0: not read yet.
ABSL_CONST_INIT std::atomic<int> g_thp_defrag_stalls{0};
}  // namespace

bool KernelThpFaultsMayStall() {
  const int stalls = g_thp_defrag_stalls.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_TRUE(stalls != 0)) return stalls == 2;
  char text[128];
  const bool read =
      ReadSmallFile("/sys/kernel/mm/transparent_hugepage/defrag", text, sizeof(text)) > 0
          ? ParseThpDefragStalls(text)
          : true;
  g_thp_defrag_stalls.store(read ? 2 : 1, std::memory_order_relaxed);
  return read;
}

bool AdviseHugePages(void* ptr, size_t size) {
  Count(Syscall::k_madvise);
  return madvise(ptr, size, MADV_HUGEPAGE) == 0;
}

bool AdviseNoHugePages(void* ptr, size_t size) {
  Count(Syscall::k_madvise);
  return madvise(ptr, size, MADV_NOHUGEPAGE) == 0;
}

bool Protect(void* ptr, size_t size, bool accessible) {
  const int prot = accessible ? PROT_READ | PROT_WRITE : PROT_NONE;
  return WithRetries(Syscall::k_mprotect, [&] { return mprotect(ptr, size, prot) == 0; });
}

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000  // Linux 4.17; C libraries before glibc 2.28 lack it
#endif

MoveResult MovePages(void* old_ptr, size_t old_size, void* new_ptr, size_t new_size) {
  for (int attempt = 1;; ++attempt) {
    Count(Syscall::k_mremap);
    void* moved = mremap(old_ptr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, new_ptr);
    if (moved == new_ptr) return MoveResult::kMoved;
    const int error = moved == MAP_FAILED ? errno : EFAULT;
    // MREMAP_FIXED may fail after it has unmapped the destination (an
    // accounting or memory refusal): until the range is ours again another
    // thread's mmap can land in it, which a retry's MREMAP_FIXED or the caller's
    // munmap would destroy. Taken back with MAP_FIXED_NOREPLACE, which fails if
    // anything stands in the range; whose it is cannot be told, so it is left
    // alone. That includes a refusal before the unmap (the kernel's map-count
    // check): our reservation then stays mapped, lost address space, never
    // memory, and at most a few times (near the map-count limit the caller's
    // own reservation fails first). A kernel without the flag takes it as a
    // hint, so an answer elsewhere counts as lost too.
    Count(Syscall::k_mmap);
    void* back = MapAnonymous(new_ptr, new_size, MAP_FIXED_NOREPLACE);
    if (back != new_ptr) {
      if (back != nullptr) Release(back, new_size);
      errno = error;
      return MoveResult::kDestinationLost;
    }
    errno = error;
    if (attempt == kSyscallAttempts || !Transient(error)) return MoveResult::kRefused;
  }
}

uint32_t ThreadId() {
  uint32_t id = tls_thread_id;
  if (ABSL_PREDICT_FALSE(id == 0)) {
    id = g_next_thread_id.fetch_add(1, std::memory_order_relaxed);
    tls_thread_id = id;
  }
  return id;
}

uint64_t NowNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

bool Wakeup::Wait(uint64_t timeout_ns) {
  struct timespec ts = {static_cast<time_t>(timeout_ns / 1'000'000'000),
                        static_cast<long>(timeout_ns % 1'000'000'000)};
  // (Returns at once when the word is no longer 1: woken before the sleep.)
  const long r =
      syscall(SYS_futex, reinterpret_cast<int*>(&word_), FUTEX_WAIT_PRIVATE, 1, &ts, nullptr, 0);
  return !(r != 0 && errno == ETIMEDOUT);
}

void Wakeup::WakeSleeper() {
  if (word_.exchange(0, std::memory_order_seq_cst) == 1) {
    syscall(SYS_futex, reinterpret_cast<int*>(&word_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
}

const char* GetEnv(const char* name) { return getenv(name); }

long ReadSmallFile(const char* path, char* buffer, size_t size) {
  if (size == 0) return -1;
  Count(Syscall::k_open);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t length = 0;
  while (length + 1 < size) {
    Count(Syscall::k_read);
    const ssize_t n = read(fd, buffer + length, size - 1 - length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    length += static_cast<size_t>(n);
  }
  close(fd);
  buffer[length] = '\0';
  return static_cast<long>(length);
}

PageFaults ProcessPageFaults() {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return PageFaults{0, 0};
  return PageFaults{static_cast<uint64_t>(usage.ru_minflt), static_cast<uint64_t>(usage.ru_majflt)};
}

namespace {

// The value of a hexadecimal number at `text` (stops at the first non-digit).
uintptr_t ParseHex(const char* text) {
  uintptr_t value = 0;
  for (;; ++text) {
    const char c = *text;
    if (c >= '0' && c <= '9')
      value = value * 16 + static_cast<uintptr_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      value = value * 16 + static_cast<uintptr_t>(c - 'a' + 10);
    else
      return value;
  }
}

}  // namespace

uint64_t AnonHugePageBytes(bool (*counted)(uintptr_t start)) {
  Count(Syscall::k_open);
  const int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  static constexpr char kField[] = "AnonHugePages:";
  char buffer[4096];
  size_t filled = 0;
  bool counting = false;
  uint64_t bytes = 0;
  for (;;) {
    Count(Syscall::k_read);
    const ssize_t n = read(fd, buffer + filled, sizeof(buffer) - 1 - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    filled += static_cast<size_t>(n);
    buffer[filled] = '\0';
    // Every whole line: a mapping's first line starts with its address range
    // ("7f..-7f.. rw-p ..."), its fields follow ("AnonHugePages:  2048 kB").
    char* line = buffer;
    for (char* end; (end = strchr(line, '\n')) != nullptr; line = end + 1) {
      *end = '\0';
      const char c = line[0];
      if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
        counting = counted(ParseHex(line));
      } else if (counting && strncmp(line, kField, sizeof(kField) - 1) == 0) {
        const char* digits = line + sizeof(kField) - 1;
        while (*digits == ' ') ++digits;
        uint64_t kib = 0;
        while (*digits >= '0' && *digits <= '9')
          kib = kib * 10 + static_cast<uint64_t>(*digits++ - '0');
        bytes += kib << 10;
      }
    }
    // Keep the partial last line for the next read (a line is far shorter than
    // the buffer; a longer one is dropped).
    size_t rest = static_cast<size_t>(buffer + filled - line);
    if (rest == sizeof(buffer) - 1) rest = 0;
    memmove(buffer, line, rest);
    filled = rest;
  }
  close(fd);
  return bytes;
}

DiagLine& DiagLine::Str(const char* text) {
  while (*text != '\0' && length_ + 1 < sizeof(buffer_)) buffer_[length_++] = *text++;
  return *this;
}

int FormatUnsigned(uint64_t value, int base, int min_digits, char* out) {
  static const char kDigits[] = "0123456789abcdef";
  char reversed[20];
  int n = 0;
  do {
    reversed[n++] = kDigits[value % static_cast<unsigned>(base)];
    value /= static_cast<unsigned>(base);
  } while (value != 0);
  while (n < min_digits && n < 20) reversed[n++] = '0';
  for (int i = 0; i < n; ++i) out[i] = reversed[n - 1 - i];
  return n;
}

DiagLine& DiagLine::Dec(uint64_t value) {
  char digits[20];
  const int n = FormatUnsigned(value, 10, 1, digits);
  for (int i = 0; i < n && length_ + 1 < sizeof(buffer_); ++i) buffer_[length_++] = digits[i];
  return *this;
}

DiagLine& DiagLine::SignedDec(int64_t value) {
  if (value < 0) {
    Str("-");
    return Dec(static_cast<uint64_t>(-(value + 1)) + 1);
  }
  return Dec(static_cast<uint64_t>(value));
}

DiagLine& DiagLine::Hex(uintptr_t value) {
  char digits[20];
  const int n = FormatUnsigned(value, 16, 1, digits);
  Str("0x");
  for (int i = 0; i < n && length_ + 1 < sizeof(buffer_); ++i) buffer_[length_++] = digits[i];
  return *this;
}

DiagLine& DiagLine::Pad(size_t width) {
  while (length_ < width && length_ + 1 < sizeof(buffer_)) buffer_[length_++] = ' ';
  return *this;
}

void DiagLine::Write(int fd) {
  buffer_[length_++] = '\n';
  size_t done = 0;
  while (done < length_) {
    Count(Syscall::k_write);
    const ssize_t n = write(fd, buffer_ + done, length_ - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  length_ = 0;
}

int OpenFile(const char* path, bool write) {
  Count(Syscall::k_open);
  const int flags = write ? O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC : O_RDONLY | O_CLOEXEC;
  return open(path, flags, 0644);
}

bool WriteAll(int fd, const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    Count(Syscall::k_write);
    const ssize_t n = write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

long ReadSome(int fd, char* buffer, size_t size) {
  for (;;) {
    Count(Syscall::k_read);
    const ssize_t n = read(fd, buffer, size);
    if (n < 0 && errno == EINTR) continue;
    return static_cast<long>(n);
  }
}

void CloseFile(int fd) { close(fd); }

int DuplicateFd(int fd) {
  Count(Syscall::k_fcntl);
  return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

void CheckPageSize() {
  const long os_page = sysconf(_SC_PAGESIZE);  // glibc reads it from the auxv: no allocation
  if (os_page > static_cast<long>(kPageSize)) {
    DiagLine()
        .Str("hakmem: fatal: the OS page is ")
        .Dec(static_cast<uint64_t>(os_page))
        .Str(" bytes; hakmem supports pages of up to ")
        .Dec(kPageSize)
        .Str(" bytes")
        .Write();
    abort();
  }
}

void Fatal(const char* message) {
  DiagLine().Str("hakmem: fatal: ").Str(message).Write();
  abort();
}

}  // namespace hakmem::platform
