// platform/intrusive_list: the one doubly linked list of hakmem's metadata.
//
// Owns: IntrusiveList<T>, a list of objects that carry their own `T* next` and
// `T* prev` (superslabs in a heap or in the shared caches, slabs on a heap's
// partial and kept-empty lists, huge mappings in the huge cache, the stats' live
// threads), or another pair of links named by the list's type (a heap's
// superslabs with backed free units). It allocates nothing, and a
// default-constructed list is a constant initialiser (ABSL_CONST_INIT globals,
// constant-initialised heaps). An object is on at most one list through each pair
// of links at a time.
// Thread-safety: none of its own; each list is guarded by its owner (a lock, or
// the heap's thread). Called by: stats, superslab, heap.
#ifndef HAKMEM_PLATFORM_INTRUSIVE_LIST_H_
#define HAKMEM_PLATFORM_INTRUSIVE_LIST_H_

#include <cstdint>

namespace hakmem {

template <typename T, T* T::*kNext = &T::next, T* T::*kPrev = &T::prev>
class IntrusiveList {
 public:
  constexpr IntrusiveList() = default;

  T* head() const { return head_; }  // the newest
  T* tail() const { return tail_; }  // the oldest
  uint32_t size() const { return size_; }
  bool empty() const { return head_ == nullptr; }
  static T* Next(const T* item) { return item->*kNext; }

  // Whether `item` is on this list (or on another through the same links).
  bool Holds(const T* item) const { return item->*kPrev != nullptr || head_ == item; }

  void PushFront(T* item) {
    item->*kPrev = nullptr;
    item->*kNext = head_;
    if (head_ != nullptr) head_->*kPrev = item;
    head_ = item;
    if (tail_ == nullptr) tail_ = item;
    ++size_;
  }

  // `item` must be on this list.
  void Remove(T* item) {
    if (item->*kPrev != nullptr)
      item->*kPrev->*kNext = item->*kNext;
    else
      head_ = item->*kNext;
    if (item->*kNext != nullptr)
      item->*kNext->*kPrev = item->*kPrev;
    else
      tail_ = item->*kPrev;
    item->*kNext = item->*kPrev = nullptr;
    --size_;
  }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
  uint32_t size_ = 0;
};

}  // namespace hakmem

#endif  // HAKMEM_PLATFORM_INTRUSIVE_LIST_H_
