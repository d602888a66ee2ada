#!/usr/bin/env bash
# How much faster than the best peer any allocator could make a workload: runs
# each workload under the peers (glibc, mimalloc, jemalloc, tcmalloc), hakmem and
# //benchmarks:libfloor_malloc.so (a measuring stick that does the least an
# allocator can: see benchmarks/floor_malloc.cc), interleaved, and prints each
# one's median ops/s and its ratio to the best peer's median. The floor's ratio
# bounds what a faster allocator can gain there; the rest is the workload's own
# work (its loop, its branches, touching its blocks).
#
#   tools/ceiling.sh [--no-build] [REPS] ["WORKLOAD ARGS" ...]
#   tools/ceiling.sh 7 "tiny_hot 64 100 200000" "random_mixed 20000000 256"
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == --no-build ]]; then
  shift
else
  bazel build -c opt //benchmarks:all //hakmem:libhakmem.so >&2
fi
reps=${1:-7}
shift || true
if (($# == 0)); then
  set -- "tiny_hot 64 100 200000" "random_mixed 20000000 256" "random_mixed 20000000 8192"
fi
lib=/usr/lib/x86_64-linux-gnu
names=(glibc mimalloc jemalloc tcmalloc hakmem floor)
preloads=("" "$lib/libmimalloc.so.2" "$lib/libjemalloc.so.2" "$lib/libtcmalloc_minimal.so.4"
  "$PWD/bazel-bin/hakmem/libhakmem.so" "$PWD/bazel-bin/benchmarks/libfloor_malloc.so")
for i in "${!preloads[@]}"; do
  if [[ -n "${preloads[$i]}" && ! -e "${preloads[$i]}" ]]; then
    echo "ceiling: ${preloads[$i]} is missing (tools/setup.sh installs the peers)" >&2
    exit 1
  fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for workload in "$@"; do
  read -r -a cmd <<<"$workload"
  for ((r = 0; r < reps; ++r)); do
    for i in "${!names[@]}"; do
      line=$(LD_PRELOAD="${preloads[$i]}" "bazel-bin/benchmarks/${cmd[0]}" "${cmd[@]:1}")
      ops=$(sed -n 's/.* ops_per_sec=\([0-9.e+]*\).*/\1/p' <<<"$line")
      [[ -n "$ops" ]] || { echo "ceiling: no RESULT from $workload under ${names[$i]}" >&2; exit 1; }
      echo "$ops" >>"$tmp/${names[$i]}"
    done
  done
  echo "$workload ($reps interleaved runs each; median ops/s, ratio to the best peer's median)"
  declare -A median=()
  for name in "${names[@]}"; do
    median[$name]=$(sort -g "$tmp/$name" | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  done
  best=$(printf '%s\n' "${median[glibc]}" "${median[mimalloc]}" "${median[jemalloc]}" \
    "${median[tcmalloc]}" | sort -g | tail -1)
  for name in "${names[@]}"; do
    awk -v n="$name" -v m="${median[$name]}" -v b="$best" \
      'BEGIN {printf "  %-9s %10.4g  %.2fx\n", n, m, m / b}'
  done
  rm -f "$tmp"/*
done
