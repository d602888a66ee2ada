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

}  // namespace
}  // namespace hakmem
