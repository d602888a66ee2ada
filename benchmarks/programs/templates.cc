// A template-heavy unit for g++: type lists, recursive instantiations, constexpr
// evaluation and many small inline functions, scaled by -DN. Compiled with -O2
// to an object file; the compiler's own allocations are what is measured.
#include <array>
#include <cstddef>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#ifndef N
#define N 60
#endif

template <int I>
struct Node {
  std::array<int, (I % 7) + 1> values{};
  std::string name = std::to_string(I);
  int Sum() const {
    int s = I;
    for (int v : values) s += v;
    return s + static_cast<int>(name.size());
  }
};

template <typename... Ts>
struct List {};

template <int... Is>
auto MakeTuple(std::integer_sequence<int, Is...>) {
  return std::tuple<Node<Is>...>{};
}

template <typename Tuple, std::size_t... Is>
int SumAll(const Tuple& t, std::index_sequence<Is...>) {
  return (std::get<Is>(t).Sum() + ... + 0);
}

template <int I>
constexpr long Fib() {
  if constexpr (I < 2) {
    return I;
  } else {
    return Fib<I - 1>() + Fib<I - 2>();
  }
}

template <int I>
std::map<std::string, std::vector<Node<I>>> Table() {
  std::map<std::string, std::vector<Node<I>>> m;
  m[std::to_string(Fib<I % 40>())].resize(I % 5 + 1);
  return m;
}

template <int... Is>
int UseTables(std::integer_sequence<int, Is...>) {
  return (static_cast<int>(Table<Is>().size()) + ... + 0);
}

int Entry() {
  auto t = MakeTuple(std::make_integer_sequence<int, N>{});
  return SumAll(t, std::make_index_sequence<N>{}) + UseTables(std::make_integer_sequence<int, N>{});
}
