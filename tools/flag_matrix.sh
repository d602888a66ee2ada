#!/usr/bin/env bash
# Builds and tests hakmem once per non-default value of every build flag
# (hakmem/config/flags.bzl): each --define must build and pass the tests (all but
# those tagged "slow", which run in the default build).
# Usage: tools/flag_matrix.sh [bazel test target patterns...]  (default //hakmem/...)
set -uo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
((${#targets[@]})) || targets=(//hakmem/...)

# The non-default values, from the table that defines them.
mapfile -t defines < <(python3 - <<'PY'
import ast, re
text = open("hakmem/config/flags.bzl").read()
table = ast.literal_eval(re.search(r"HAKMEM_FLAGS = (\{.*?\n\})", text, re.S).group(1))
for name, (values, _ints, _doc) in table.items():
    if name == "sanitizer":
        continue  # set by --config=asan/tsan/ubsan, not a user flag
    for value in values[1:]:
        print(f"hakmem_{name}={value}")
PY
)

passed=0
failed=0
for define in "${defines[@]}"; do
  echo "=== --define $define" >&2
  # Tests tagged "slow" run in the default build only (hakmem/tests/BUILD.bazel).
  if bazel test --define "$define" --test_tag_filters=-slow "${targets[@]}" >"/tmp/flag_matrix_${define}.log" 2>&1; then
    echo "PASS --define $define"
    passed=$((passed + 1))
  else
    echo "FAIL --define $define (log: /tmp/flag_matrix_${define}.log)"
    grep -E "FAILED|ERROR" "/tmp/flag_matrix_${define}.log" | head -5
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
((failed == 0))
