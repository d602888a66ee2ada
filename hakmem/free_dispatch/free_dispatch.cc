#include "hakmem/free_dispatch/free_dispatch.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include <atomic>

#include "hakmem/config/options.h"
#include "hakmem/platform/platform.h"
#include "hakmem/profiler/profiler.h"

extern "C" {
void __libc_free(void* ptr);    // glibc: the C library's own free
extern void* __libc_stack_end;  // ld.so: the main thread's stack top at start
}

namespace hakmem::free_dispatch {
namespace {

using stats::Count;
using stats::Counter;

void ReportInvalid(const void* ptr, Call call, const char* reason) {
  ReportInvalidFree(ptr, reason, CallName(call));
}

// Whether `ptr` lies in the live part of the calling thread's stack: between the
// stack pointer and the top of the stack (a thread's descriptor sits just above
// its stack; the main thread's top is __libc_stack_end plus its environment).
bool OnCurrentStack(const void* ptr) {
  const uintptr_t sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  const uintptr_t self = static_cast<uintptr_t>(pthread_self());
  const uintptr_t top =
      self > sp ? self : reinterpret_cast<uintptr_t>(__libc_stack_end) + (256 << 10);
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  return p >= sp && p < top;
}

// IsFreeInSlab of the calling thread's heap, under its lock.
bool IsFreeInSlabLocked(const SlabMeta* slab, const void* ptr) {
  HeapLock hold(&tls_heap->lock);
  return IsFreeInSlab(tls_heap, slab, ptr);
}

// A slab block freed by the thread that owns it, after the fast path declined.
void FreeOwnBlock(SuperSlab* ss, SlabMeta* slab, void* ptr, Call call) {
  const int cls = slab->cls;
  if constexpr (kLiveMap) {
    // Exact: a block's live byte is set from its hand-out to its first free, by
    // whichever thread.
    if (!TakeLive(ptr)) return ReportInvalid(ptr, call, "double free");
    return CacheOwnBlock(slab->list_offset, ptr);
  }
  if (LooksFree(ptr)) {
    // Tagged as free: confirmed by finding it in the thread cache, the slab's free
    // list or the remote queue (else the program wrote the tag itself).
    if (thread_cache::IsCached(cls, ptr) || IsFreeInSlabLocked(slab, ptr))
      return ReportInvalid(ptr, call, "double free");
  }
  CacheOwnBlock(slab->list_offset, ptr);
}

// ---- batched remote frees ----

// A batch's blocks wait in a record (RemoteNode) that goes to the owner whole:
// the owner reads their addresses from allocator memory and follows no link
// through a block.
struct RemoteBatch {
  Heap* owner;
  RemoteNode* node;  // its record: blocks[0 .. count)
  void* last;        // the block added last (a large block freed twice in a row is that one)
  uint32_t count;
};

enum RemoteMode : uint8_t {
  kRemoteUnset,    // no remote free yet: the exit hook is set by the first
  kRemoteBatched,  // the exit hook is set: blocks wait in batches
  kRemoteDirect,   // after the thread's exit flush (or without a hook): pushed at once
};

struct RemoteBuffer {
  RemoteBatch batches[kRemoteBatchSlots];
  RemoteNode* spare;  // free records for the next batches (a chain), from the pool
  RemoteMode mode;
};

// Constant-initialised to empty batches and kRemoteUnset, so the remote-free path
// has no init branch beyond its mode test. Initial-exec TLS, declared __thread:
// no TLS init wrapper.
ABSL_CONST_INIT __thread RemoteBuffer tls_remote HAKMEM_TLS = {};

ABSL_CONST_INIT pthread_once_t g_remote_key_once = PTHREAD_ONCE_INIT;
ABSL_CONST_INIT pthread_key_t g_remote_key = 0;
ABSL_CONST_INIT bool g_remote_key_ok = false;

// A free record for a new batch (nullptr: none can be made).
RemoteNode* TakeSpareNode(RemoteBuffer& buffer) {
  if (buffer.spare == nullptr) buffer.spare = TakeRemoteNodes();
  RemoteNode* node = buffer.spare;
  if (node != nullptr) {
    buffer.spare = node->next;
    node->count = 0;
  }
  return node;
}

void HandOver(RemoteBatch& batch) {
  if (batch.count != 0) {
    batch.node->count = batch.count;
    batch.owner->remote.PushNode(batch.node);
    Count(Counter::k_remote_batches);
    if (ABSL_PREDICT_FALSE(IsAbandoned(batch.owner))) ReclaimAbandoned(batch.owner);
  } else if (batch.node != nullptr) {
    batch.node->next = tls_remote.spare;  // unused: kept for the next batch
    tls_remote.spare = batch.node;
  }
  batch = RemoteBatch{};
}

// The key destructor: the exiting thread's batches go over; what later
// destructors free is pushed at once (no destructor round may be left). Its
// spare records go back to the pool.
void FlushAtThreadExit(void*) {
  FlushRemoteFrees();
  tls_remote.mode = kRemoteDirect;
  if (RemoteNode* spare = tls_remote.spare) {
    RemoteNode* last = spare;
    while (last->next != nullptr) last = last->next;
    tls_remote.spare = nullptr;
    ReturnRemoteNodes(spare, last);
  }
}

// Pushes `ptr` on `owner`'s remote queue on its own, linked through its first
// word (which the owner's drain checks): hardened builds, a thread past its exit
// flush, or no batch record to be had.
void PushAlone(Heap* owner, void* ptr) {
  owner->remote.Push(ptr);
  if (ABSL_PREDICT_FALSE(IsAbandoned(owner))) ReclaimAbandoned(owner);
}

bool SetExitHook() {
  pthread_once(&g_remote_key_once,
               [] { g_remote_key_ok = pthread_key_create(&g_remote_key, FlushAtThreadExit) == 0; });
  return g_remote_key_ok && pthread_setspecific(g_remote_key, &tls_remote) == 0;
}

// Frees `ptr` of `ss`, a block (a large run when `large_run`) another thread's
// heap owns.
void FreeRemote(SuperSlab* ss, void* ptr, Call call, bool large_run) {
  Heap* owner = TakeForRemoteFree(ss, ptr, large_run);
  if (owner == nullptr) return;  // a corrupt owner: reported
  RemoteBuffer& buffer = tls_remote;
  if (ABSL_PREDICT_FALSE(buffer.mode != kRemoteBatched)) {
    if (config::kHardened || buffer.mode == kRemoteDirect || !SetExitHook()) {
      buffer.mode = kRemoteDirect;
      return PushAlone(owner, ptr);
    }
    buffer.mode = kRemoteBatched;
  }
  RemoteBatch* batch = nullptr;
  RemoteBatch* emptiest = &buffer.batches[0];
  for (RemoteBatch& b : buffer.batches) {
    if (b.owner == owner) {
      batch = &b;
      break;
    }
    if (b.count < emptiest->count) emptiest = &b;
  }
  if (batch == nullptr) {
    HandOver(*emptiest);
    emptiest->owner = owner;
    emptiest->node = TakeSpareNode(buffer);
    batch = emptiest;
  }
  // A large block (no freed-block tag) freed twice in a row would be pushed twice.
  if (ABSL_PREDICT_FALSE(batch->last == ptr)) {
    return ReportInvalid(ptr, call, "double free, from another thread");
  }
  if (ABSL_PREDICT_FALSE(batch->node == nullptr)) {
    batch->owner = nullptr;  // no record could be made: the slot stays free
    return PushAlone(owner, ptr);
  }
  batch->node->blocks[batch->count] = ptr;
  batch->last = ptr;
  if (++batch->count == kRemoteBatchBlocks) HandOver(*batch);
}

using UsableSizeFn = size_t (*)(void*);
ABSL_CONST_INIT std::atomic<UsableSizeFn> g_libc_usable_size{nullptr};

size_t LibcUsableSize(const void* ptr) {
  UsableSizeFn fn = g_libc_usable_size.load(std::memory_order_acquire);
  if (fn == nullptr) {
    // The C library's own definition, asked of libc.so.6 itself (resolved once):
    // RTLD_NEXT could find another interposer first, a sanitizer's say.
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    fn = reinterpret_cast<UsableSizeFn>(libc != nullptr ? dlsym(libc, "malloc_usable_size")
                                                        : dlsym(RTLD_NEXT, "malloc_usable_size"));
    if (fn == nullptr) return 0;
    g_libc_usable_size.store(fn, std::memory_order_release);
  }
  return fn(const_cast<void*>(ptr));
}

}  // namespace

const char* CallName(Call call) {
  switch (call) {
    case Call::kFree:
      return "free";
    case Call::kRealloc:
      return "realloc";
    case Call::kUsableSize:
      return "malloc_usable_size";
    case Call::kDelete:
      return "operator delete";
  }
  return "?";
}

Classified Classify(const void* ptr, void* header) {
  if (header != nullptr && static_cast<const ChunkHeader*>(header)->magic == kHugeMagic &&
      !InHugeMapping(static_cast<const HugeHeader*>(header), ptr)) {
    header = nullptr;  // past the huge mapping's last page: someone else's memory
  }
  if (header == nullptr) {
    // Not ours: the C library's pointer, unless plainly wrong.
    if (reinterpret_cast<uintptr_t>(ptr) % alignof(max_align_t) != 0) {
      return {Kind::kInvalid, 0, "misaligned: not from any allocator"};
    }
    if (OnCurrentStack(ptr)) return {Kind::kInvalid, 0, "stack address"};
    // A huge block's user pointer is page-aligned, which the C library's blocks
    // handed out through malloc never are: no pointer of its can match.
    if (WasReleasedHuge(ptr))
      return {Kind::kInvalid, 0,
              "double free of a released huge block (or its address before realloc moved it)"};
    return {Kind::kForeign, 0, nullptr};
  }
  const ChunkHeader* chunk = static_cast<const ChunkHeader*>(header);
  if (chunk->magic == kHugeMagic) {
    const HugeHeader* h = static_cast<const HugeHeader*>(chunk);
    if (ptr != h->user) return {Kind::kInvalid, 0, "interior pointer of a huge block"};
    if (h->cached) return {Kind::kInvalid, 0, kCachedHugeBlock};
    return {Kind::kHuge, HugeUsableSize(h), nullptr};
  }
  SuperSlab* ss = static_cast<SuperSlab*>(header);
  const SlabMeta* slab = SlabOf(ss, ptr);
  if (slab->cls == kNoClass || ss->owner.load(std::memory_order_acquire) == nullptr) {
    return {Kind::kInvalid, 0, "not an allocated block"};
  }
  if (slab->cls == kLargeClass) {
    if (ptr != slab->start) return {Kind::kInvalid, 0, "interior pointer of a large block"};
    return {Kind::kLarge, slab->block_size, nullptr};
  }
  if (!IsBlockStart(slab, ptr)) return {Kind::kInvalid, 0, "interior pointer"};
  return {Kind::kBlock, slab->block_size, nullptr};
}

Found FindIn(const void* ptr, void* header, Call call) {
  const Classified c = Classify(ptr, header);
  if (c.kind == Kind::kInvalid) ReportInvalid(ptr, call, c.reason);
  return {c.kind, c.usable};
}

void FreeViaRegistry(void* ptr, Call call) {
  void* header = registry::Lookup(ptr);
  // Read through the common prefix: a huge header's owner is nullptr and the
  // sentinel heap owns nothing, so only the owner's own blocks pass.
  SuperSlab* ss = static_cast<SuperSlab*>(header);
  if (ABSL_PREDICT_FALSE(header == nullptr ||
                         ss->owner.load(std::memory_order_relaxed) != tls_heap)) {
    return FreeSlow(ptr, header, call);
  }
  thread_cache::tls_cache.hot.NoteOwned(reinterpret_cast<uintptr_t>(ss));
  FreeInOwnSuperSlab(ss, ptr, call);
}

namespace {

// Every case FreeSlow's first test leaves: classified, then freed or reported.
ABSL_ATTRIBUTE_NOINLINE void FreeClassified(void* ptr, void* header, Call call) {
  if (ptr == nullptr) return;  // (Free's fast path leaves nullptr to this test)
  const Found found = FindIn(ptr, header, call);
  // Before the block can be reused (a remote free is reused by its owner).
  if (ABSL_PREDICT_FALSE(profiler::Enabled()) && found.kind != Kind::kInvalid &&
      found.kind != Kind::kForeign) {
    profiler::OnFree(ptr);
  }
  switch (found.kind) {
    case Kind::kInvalid:
      return;
    case Kind::kForeign:
      Count(Counter::k_frees_foreign);
      return __libc_free(ptr);
    case Kind::kHuge:
      return HugeFree(static_cast<HugeHeader*>(header));
    case Kind::kLarge:
    case Kind::kBlock:
      break;
  }
  SuperSlab* ss = static_cast<SuperSlab*>(header);
  SlabMeta* slab = SlabOf(ss, ptr);
  if (ss->owner.load(std::memory_order_relaxed) != tls_heap) {
    // Only the owner may search its lists: a tagged block is reported here, before
    // a second push could loop the queue and hand the block out twice.
    if (found.kind == Kind::kBlock && (kLiveMap ? !TakeLive(ptr) : LooksFree(ptr))) {
      return ReportInvalid(ptr, call, "double free, from another thread");
    }
    return FreeRemote(ss, ptr, call, found.kind == Kind::kLarge);
  }
  if (found.kind == Kind::kLarge) {
    bool freed = false;
    {
      // (The run's state under the lock too: the background release may be
      // giving back the heap's cached runs.)
      HeapLock hold(&tls_heap->lock);
      if (slab->used != 0) {
        FreeLarge(tls_heap, ss, slab);
        freed = true;
      }
    }
    if (!freed) return ReportInvalid(ptr, call, "double free of a large block");
    stats::Count(stats::Counter::k_frees_local);  // (a large run has no class counts)
    return AfterSlowPath();
  }
  FreeOwnBlock(ss, slab, ptr, call);
}

// The slab whose block of a size class starts at `ptr`, in a superslab some heap
// owns (`*owner`), given the registry's answer for `ptr`; else nullptr. Classify's
// kBlock, without its reasons: the short paths of free and malloc_usable_size.
// (A huge header's owner, read through the common prefix, is nullptr, as is a
// cached superslab's; IsBlockStart fails in large runs, free units and between
// blocks.)
ABSL_ATTRIBUTE_ALWAYS_INLINE inline const SlabMeta* BlockSlabOf(void* header, const void* ptr,
                                                                const void** owner) {
  if (header == nullptr) return nullptr;
  SuperSlab* ss = static_cast<SuperSlab*>(header);
  *owner = ss->owner.load(std::memory_order_acquire);
  if (*owner == nullptr) return nullptr;
  const SlabMeta* slab = SlabOf(ss, ptr);
  return IsBlockStart(slab, ptr) ? slab : nullptr;
}

}  // namespace

void FreeSlow(void* ptr, void* header, Call call) {
  if constexpr (!kLiveMap) {
    // What the fast path leaves here most: a live block of a size class that
    // another thread's heap owns (every free of a producer/consumer pair), taken
    // straight to its batch after the tests Classify and FreeClassified would
    // make of it, without their frame. (Hardened builds take the general path,
    // whose live-map test clears the block's byte.)
    const void* owner;
    if (ABSL_PREDICT_TRUE(!profiler::Enabled()) && BlockSlabOf(header, ptr, &owner) != nullptr &&
        ABSL_PREDICT_TRUE(owner != tls_heap && !LooksFree(ptr))) {
      return FreeRemote(static_cast<SuperSlab*>(header), ptr, call, /*large_run=*/false);
    }
  }
  FreeClassified(ptr, header, call);
}

namespace {

// Every pointer but a block of a size class: classified (and reported when
// invalid, as free would).
ABSL_ATTRIBUTE_NOINLINE size_t UsableSizeSlow(const void* ptr, void* header) {
  const Found found = FindIn(ptr, header, Call::kUsableSize);
  if (found.kind == Kind::kForeign) return LibcUsableSize(ptr);
  return found.usable;
}

}  // namespace

Found Find(const void* ptr, Call call) {
  void* header = registry::Lookup(ptr);
  // A block of a size class without Classify's frames (realloc: lua reallocs
  // every block it grows or shrinks).
  const void* owner;
  if (const SlabMeta* slab = BlockSlabOf(header, ptr, &owner); ABSL_PREDICT_TRUE(slab != nullptr)) {
    return {Kind::kBlock, slab->block_size};
  }
  return FindIn(ptr, header, call);
}

size_t UsableSize(const void* ptr) {
  if (ptr == nullptr) return 0;
  void* header = registry::Lookup(ptr);
  // A block of a size class without Classify's frames: programs that account for
  // their memory with malloc_usable_size (redis) call it on every malloc and free.
  const void* owner;
  if (const SlabMeta* slab = BlockSlabOf(header, ptr, &owner); ABSL_PREDICT_TRUE(slab != nullptr)) {
    return slab->block_size;
  }
  return UsableSizeSlow(ptr, header);
}

void FlushRemoteFrees() {
  for (RemoteBatch& batch : tls_remote.batches) HandOver(batch);
}

uint32_t PendingRemoteFrees() {
  uint32_t pending = 0;
  for (const RemoteBatch& batch : tls_remote.batches) pending += batch.count;
  return pending;
}

bool Owns(const void* ptr) {
  const Classified c = Classify(ptr, registry::Lookup(ptr));
  return c.kind == Kind::kBlock || c.kind == Kind::kLarge || c.kind == Kind::kHuge ||
         c.reason == kCachedHugeBlock;
}

}  // namespace hakmem::free_dispatch
