#!/usr/bin/env bash
# Pins the instructions of the malloc, calloc, realloc(nullptr, n) and free fast
# paths of libhakmem.so (a cached block: a thread-cache pop, then a push; calloc's
# count includes the C library's memset of the block) to hakmem/tests/fast_path.golden,
# as tcmalloc pins its fast path: any change fails, so a regression shows in CI
# and an improvement is recorded. Counted by callgrind (exact, noise-free) inside
# malloc and inside free only, as the difference of two runs (N and 2N pairs), so
# the warm-up and the process's own start cancel out.
#
#   fast_path_test.sh DRIVER LIBHAKMEM GOLDEN
set -euo pipefail
driver="$1"
libhakmem="$2"
golden="$3"
n=2000

if ! command -v valgrind >/dev/null; then
  echo "FAIL: valgrind is not installed (tools/setup.sh installs it)" >&2
  exit 1
fi

compiler=$("$driver" compiler)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Instructions counted inside function $1 for $3 pairs of size $2 ($4: the
# driver's calloc or realloc mode).
count() {
  LD_PRELOAD="$libhakmem" valgrind --tool=callgrind --toggle-collect="$1" \
    --callgrind-out-file="$tmp/out" "$driver" "$2" "$3" ${4:-} >/dev/null 2>"$tmp/err"
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/err"
}

measured=()
# calloc at 64 bytes only: a larger memset is counted by the byte (rep stosb);
# realloc at 64 bytes only: it takes malloc's path.
for size in 64 4096; do
  fns="malloc free"
  [[ "$size" == 64 ]] && fns="malloc calloc realloc free"
  for fn in $fns; do
    mode=""
    [[ "$fn" == calloc || "$fn" == realloc ]] && mode=$fn
    once=$(count "$fn" "$size" "$n" $mode)
    twice=$(count "$fn" "$size" $((2 * n)) $mode)
    diff=$((twice - once))
    if ((diff % n != 0)); then
      echo "FAIL: $fn($size) took $diff instructions for $n more calls: not a whole number per call" >&2
      exit 1
    fi
    measured+=("$compiler $size $fn $((diff / n))")
  done
done

expected=$(grep -v '^#' "$golden" | grep "^$compiler " || true)
actual=$(printf '%s\n' "${measured[@]}")
echo "instructions per call (compiler, size, function):"
echo "$actual"
if [[ "$actual" != "$expected" ]]; then
  echo "FAIL: the fast paths changed; expected (from $golden):" >&2
  echo "${expected:-(no lines for $compiler)}" >&2
  echo "If the change is intended, put the lines above into $golden." >&2
  exit 1
fi
