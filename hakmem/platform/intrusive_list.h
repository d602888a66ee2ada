// platform/intrusive_list: the one doubly linked list of hakmem's metadata.
//
// Owns: IntrusiveList<T>, a list of objects that carry their own `T* next` and
// `T* prev` (superslabs in a heap or in the shared caches, slabs on a heap's
// partial and kept-empty lists, huge mappings in the huge cache, the stats' live
// threads). It allocates nothing, and a default-constructed list is a constant
// initialiser (ABSL_CONST_INIT globals, constant-initialised heaps). An object is
// on at most one list through its links at a time.
// Thread-safety: none of its own; each list is guarded by its owner (a lock, or
// the heap's thread). Called by: stats, superslab, heap.
#ifndef HAKMEM_PLATFORM_INTRUSIVE_LIST_H_
#define HAKMEM_PLATFORM_INTRUSIVE_LIST_H_

#include <cstdint>

namespace hakmem {

template <typename T>
class IntrusiveList {
 public:
  constexpr IntrusiveList() = default;

  T* head() const { return head_; }  // the newest
  T* tail() const { return tail_; }  // the oldest
  uint32_t size() const { return size_; }
  bool empty() const { return head_ == nullptr; }

  void PushFront(T* item) {
    item->prev = nullptr;
    item->next = head_;
    if (head_ != nullptr) head_->prev = item;
    head_ = item;
    if (tail_ == nullptr) tail_ = item;
    ++size_;
  }

  // `item` must be on this list.
  void Remove(T* item) {
    if (item->prev != nullptr)
      item->prev->next = item->next;
    else
      head_ = item->next;
    if (item->next != nullptr)
      item->next->prev = item->prev;
    else
      tail_ = item->prev;
    item->next = item->prev = nullptr;
    --size_;
  }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
  uint32_t size_ = 0;
};

}  // namespace hakmem

#endif  // HAKMEM_PLATFORM_INTRUSIVE_LIST_H_
