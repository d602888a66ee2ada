#!/usr/bin/env bash
# Runs real programs with and without hakmem (LD_PRELOAD) and compares them.
#
#   tools/real_programs.sh [path/to/libhakmem.so]
#
# Default library: bazel-bin/hakmem/libhakmem.so (build it first with
# `bazel build //hakmem:libhakmem.so`). Each program runs twice, once plain and
# once with LD_PRELOAD=libhakmem.so, in its own scratch folder; its transcript
# (stdout, stderr and exit status) must be identical and its exit status 0.
# Prints PASS/FAIL per program and a final "N passed, M failed"; exits non-zero
# on any failure.
#
# Programs: python3 (dicts, json, sorting, hashing), g++ (compile a C++ program
# to assembly and to a binary, then run it), sort (200,000 generated lines, three
# ways), git (init a repository, commit files over several commits, log, diff,
# show, gc).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LIB="${1:-$ROOT/bazel-bin/hakmem/libhakmem.so}"
if [[ ! -f "$LIB" ]]; then
  echo "real_programs: $LIB not found (bazel build //hakmem:libhakmem.so, or pass its path)" >&2
  exit 2
fi
LIB="$(readlink -f "$LIB")"  # the path the loader maps (bazel-bin is a symlink)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hakmem-real-programs.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Everything that could make two runs differ, pinned.
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME="$WORK/home"
export GIT_AUTHOR_NAME="hakmem test" GIT_AUTHOR_EMAIL="test@hakmem.invalid"
export GIT_COMMITTER_NAME="hakmem test" GIT_COMMITTER_EMAIL="test@hakmem.invalid"
mkdir -p "$HOME"
unset LD_PRELOAD MALLOC_CONF HAKMEM_STATS HAKMEM_SIZE_HIST

passed=0
failed=0

# Preflight: the library loads into a process (and the loader finds it mapped).
# The maps go to a file first: `cat | grep -q` under pipefail fails at random,
# because grep -q exits at the first match and cat then dies of SIGPIPE.
LD_PRELOAD="$LIB" cat /proc/self/maps >"$WORK/preload.maps" 2>"$WORK/preload.err"
if ! grep -qF "$LIB" "$WORK/preload.maps"; then
  echo "FAIL preload: $LIB is not mapped into a preloaded process" >&2
  cat "$WORK/preload.err" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# --- the programs: each runs in the current folder and writes to stdout -------

program_python() {
  cat >work.py <<'EOF'
import hashlib, json, random

random.seed(12345)
records = []
for i in range(60000):
    records.append({
        "id": i,
        "name": "item-%06d" % random.randrange(10**6),
        "tags": [random.choice("abcdefghij") * random.randrange(1, 20) for _ in range(random.randrange(0, 6))],
        "score": random.random(),
        "nested": {"k%d" % j: list(range(j)) for j in range(random.randrange(0, 5))},
    })
text = json.dumps(records, sort_keys=True)
back = json.loads(text)
assert back == records
by_tag = {}
for r in back:
    for t in r["tags"]:
        by_tag.setdefault(t, []).append(r["id"])
words = {}
for r in back:
    words[r["name"]] = words.get(r["name"], 0) + 1
top = sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
strings = sorted(("%x" % (i * 2654435761 % 2**32)) * (i % 7 + 1) for i in range(100000))
print("records", len(back), "json bytes", len(text))
print("tags", len(by_tag), "largest", max(len(v) for v in by_tag.values()))
print("top names", top)
print("sha256", hashlib.sha256(text.encode()).hexdigest())
print("strings", len(strings), hashlib.sha256("".join(strings).encode()).hexdigest())
EOF
  python3 work.py
}

program_gxx() {
  cat >prog.cc <<'EOF'
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

template <typename T>
struct Node {
  T value;
  std::unique_ptr<Node> left, right;
  explicit Node(T v) : value(v) {}
};

template <typename T>
void Insert(std::unique_ptr<Node<T>>& n, T v) {
  if (!n) { n = std::make_unique<Node<T>>(v); return; }
  Insert(v < n->value ? n->left : n->right, v);
}

template <typename T>
long Sum(const std::unique_ptr<Node<T>>& n) {
  return n ? n->value + Sum(n->left) + Sum(n->right) : 0;
}

int main() {
  std::unique_ptr<Node<int>> tree;
  unsigned x = 1;
  for (int i = 0; i < 100000; ++i) { x = x * 1103515245u + 12345u; Insert(tree, static_cast<int>(x % 1000000)); }
  std::map<std::string, std::vector<int>> index;
  for (int i = 0; i < 50000; ++i) index[std::to_string(i % 977)].push_back(i);
  std::vector<std::string> keys;
  for (const auto& kv : index) keys.push_back(kv.first + ":" + std::to_string(kv.second.size()));
  std::sort(keys.begin(), keys.end());
  std::cout << "tree sum " << Sum(tree) << "\n";
  std::cout << "keys " << keys.size() << " first " << keys.front() << " last " << keys.back() << "\n";
  std::cout << "total " << std::accumulate(keys.begin(), keys.end(), std::string()).size() << "\n";
}
EOF
  g++ -std=c++17 -O2 -S -o prog.s prog.cc || return
  g++ -std=c++17 -O2 -o prog prog.cc || return
  # The generated assembly is deterministic: a stray allocator bug in the compiler
  # shows up as a difference here.
  sha256sum prog.s
  ./prog
}

program_sort() {
  # 200,000 lines, generated by a fixed LCG (the generator runs without hakmem).
  LD_PRELOAD= awk 'BEGIN { x = 42; for (i = 0; i < 200000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      printf "%d %s-%x line %d\n", x % 100000, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, x % 9 + 1), x, i } }' >lines.txt
  sort lines.txt | sha256sum
  sort -n -k1,1 -k4,4n lines.txt | sha256sum
  sort -u -k2,2 lines.txt | sha256sum
  sort -S 1M --parallel=2 -r lines.txt | head -3
  wc -l <lines.txt
}

program_git() {
  local day=0
  commit() {
    day=$((day + 1))
    GIT_AUTHOR_DATE="2024-01-0${day}T12:00:00Z" GIT_COMMITTER_DATE="2024-01-0${day}T12:00:00Z" \
      git commit -q -m "$1"
  }
  git init -q -b main repo || return
  cd repo || return
  git config user.name "hakmem test"
  git config user.email "test@hakmem.invalid"
  for i in $(seq 1 200); do printf 'file %d\nline two of %d\n' "$i" "$i" >"f$i.txt"; done
  mkdir -p src/a src/b
  seq 1 5000 >src/a/numbers.txt
  printf 'hello\n' >src/b/hello.txt
  git add -A && commit "first: 202 files"
  seq 1 2 5000 >src/a/numbers.txt
  for i in $(seq 1 50); do printf 'changed %d\n' "$i" >>"f$i.txt"; done
  git rm -q f199.txt f200.txt
  git add -A && commit "second: edits and removals"
  git mv src/b/hello.txt src/b/greeting.txt
  printf 'hello again\n' >>src/b/greeting.txt
  git add -A && commit "third: a rename"
  git log --stat --format='%H %an %ad %s' --date=iso
  git diff HEAD~2 HEAD --stat
  git diff HEAD~2 HEAD -- src/a/numbers.txt | sha256sum
  git show HEAD --format=%H -- src/b
  git gc -q
  git fsck --no-progress 2>&1
  git count-objects -v | grep -v -e size -e prune
  git rev-parse HEAD^{tree}
}

# --- running and comparing -------------------------------------------------------

# run_one <name> <plain|hakmem>: runs program_<name> in a fresh folder, writes the
# transcript to $WORK/<name>.<mode>.out.
run_one() {
  local name=$1 mode=$2
  local dir="$WORK/$name.$mode"
  mkdir -p "$dir"
  (
    cd "$dir" || exit 99
    if [[ $mode == hakmem ]]; then export LD_PRELOAD="$LIB"; fi
    "program_$name" >"$WORK/$name.$mode.stdout" 2>"$WORK/$name.$mode.stderr"
  )
  local status=$?
  {
    echo "exit status: $status"
    echo "--- stdout"
    cat "$WORK/$name.$mode.stdout"
    echo "--- stderr"
    cat "$WORK/$name.$mode.stderr"
  } >"$WORK/$name.$mode.out"
  return $status
}

for name in python gxx sort git; do
  run_one "$name" plain
  plain_status=$?
  run_one "$name" hakmem
  hakmem_status=$?
  if [[ $plain_status -ne 0 ]]; then
    echo "FAIL $name: fails without hakmem too (exit $plain_status): the check itself is broken"
    sed 's/^/    /' "$WORK/$name.plain.out" | head -20
    failed=$((failed + 1))
  elif [[ $hakmem_status -ne 0 ]]; then
    echo "FAIL $name: exit status $hakmem_status with hakmem"
    sed 's/^/    /' "$WORK/$name.hakmem.out" | head -20
    failed=$((failed + 1))
  elif ! diff -u "$WORK/$name.plain.out" "$WORK/$name.hakmem.out" >"$WORK/$name.diff"; then
    echo "FAIL $name: output differs with hakmem"
    sed 's/^/    /' "$WORK/$name.diff" | head -40
    failed=$((failed + 1))
  else
    echo "PASS $name"
    passed=$((passed + 1))
  fi
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
