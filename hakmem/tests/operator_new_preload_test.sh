#!/usr/bin/env bash
# libhakmem.so links no C++ runtime (a C program that preloads it maps no
# libstdc++), and a C++ program that preloads it still gets operator new's
# failure semantics: std::bad_alloc, the new-handler, nullptr from the nothrow
# forms (operator_new_program.cc).
#   operator_new_preload_test.sh LIBHAKMEM_SO OPERATOR_NEW_PROGRAM
set -euo pipefail
so=$1
program=$2

needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "libhakmem.so needs: $(echo $needed)"
if grep -Eq 'libstdc\+\+|libc\+\+|libgcc_s' <<<"$needed"; then
  echo "FAIL: libhakmem.so links a C++ runtime; C programs that preload it would map it" >&2
  exit 1
fi

# The program runs under hakmem: its at-exit report says so.
out=$(HAKMEM_STATS=1 LD_PRELOAD="$so" "$program" 2>"$TEST_TMPDIR/stderr") || {
  echo "$out"
  cat "$TEST_TMPDIR/stderr" >&2
  echo "FAIL: operator_new_program under LD_PRELOAD" >&2
  exit 1
}
echo "$out"
grep -q '^hakmem stats' "$TEST_TMPDIR/stderr" || {
  echo "FAIL: the program did not run under hakmem" >&2
  exit 1
}
[[ "$out" == ok ]]
