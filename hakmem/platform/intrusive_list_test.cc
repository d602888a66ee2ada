#include "hakmem/platform/intrusive_list.h"

#include <vector>

#include "absl/base/attributes.h"
#include "gtest/gtest.h"

namespace hakmem {
namespace {

struct Node {
  int value;
  Node* next;
  Node* prev;
};

std::vector<int> Values(const IntrusiveList<Node>& list) {
  std::vector<int> out;
  for (Node* n = list.head(); n != nullptr; n = n->next) out.push_back(n->value);
  return out;
}

std::vector<int> ValuesBackwards(const IntrusiveList<Node>& list) {
  std::vector<int> out;
  for (Node* n = list.tail(); n != nullptr; n = n->prev) out.push_back(n->value);
  return out;
}

ABSL_CONST_INIT IntrusiveList<Node> g_constant_list;  // must be a constant initialiser

TEST(IntrusiveListTest, PushFrontRemoveKeepBothDirectionsAndTheSize) {
  EXPECT_TRUE(g_constant_list.empty());
  IntrusiveList<Node> list;
  Node a{1, nullptr, nullptr}, b{2, nullptr, nullptr}, c{3, nullptr, nullptr};
  list.PushFront(&a);
  list.PushFront(&b);
  list.PushFront(&c);
  EXPECT_EQ(Values(list), (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(ValuesBackwards(list), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(list.size(), 3u);
  list.Remove(&b);  // middle
  EXPECT_EQ(Values(list), (std::vector<int>{3, 1}));
  EXPECT_EQ(ValuesBackwards(list), (std::vector<int>{1, 3}));
  EXPECT_EQ(b.next, nullptr);
  EXPECT_EQ(b.prev, nullptr);
  list.Remove(&a);  // tail
  EXPECT_EQ(list.tail(), &c);
  list.Remove(&c);  // head, the last one
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.tail(), nullptr);
  EXPECT_EQ(list.size(), 0u);
  list.PushFront(&b);
  EXPECT_EQ(list.head(), &b);
  EXPECT_EQ(list.tail(), &b);
}

// One object on two lists at once, through two pairs of links: each list
// follows and rewrites its own pair only; Holds says which lists an object is on.
struct TwoListNode {
  int value;
  TwoListNode* next;
  TwoListNode* prev;
  TwoListNode* other_next;
  TwoListNode* other_prev;
};
using MainList = IntrusiveList<TwoListNode>;
using OtherList = IntrusiveList<TwoListNode, &TwoListNode::other_next, &TwoListNode::other_prev>;

template <typename List>
std::vector<int> ValuesOf(const List& list) {
  std::vector<int> out;
  for (TwoListNode* n = list.head(); n != nullptr; n = List::Next(n)) out.push_back(n->value);
  return out;
}

TEST(IntrusiveListTest, AnObjectIsOnTwoListsThroughTwoPairsOfLinks) {
  MainList main;
  OtherList other;
  TwoListNode a{1, nullptr, nullptr, nullptr, nullptr};
  TwoListNode b{2, nullptr, nullptr, nullptr, nullptr};
  TwoListNode c{3, nullptr, nullptr, nullptr, nullptr};
  for (TwoListNode* n : {&a, &b, &c}) main.PushFront(n);
  other.PushFront(&a);
  other.PushFront(&c);
  EXPECT_EQ(ValuesOf(main), (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(ValuesOf(other), (std::vector<int>{3, 1}));
  EXPECT_TRUE(other.Holds(&a));
  EXPECT_FALSE(other.Holds(&b));
  EXPECT_TRUE(other.Holds(&c));  // the head: no prev
  other.Remove(&c);
  EXPECT_FALSE(other.Holds(&c));
  EXPECT_TRUE(main.Holds(&c));
  EXPECT_EQ(ValuesOf(main), (std::vector<int>{3, 2, 1})) << "the other list's links only";
  EXPECT_EQ(ValuesOf(other), (std::vector<int>{1}));
  main.Remove(&a);
  EXPECT_TRUE(other.Holds(&a)) << "the main list's links only";
  EXPECT_EQ(other.head(), &a);
  EXPECT_EQ(other.size(), 1u);
}

}  // namespace
}  // namespace hakmem
