#!/usr/bin/env bash
# How much of a workload's time list operations alone can win back: runs it under
# the peers (glibc, mimalloc, jemalloc, tcmalloc), hakmem and
# //benchmarks:libfloor_malloc.so (an allocator that does nothing but pop and
# push thread-local lists: see benchmarks/floor_malloc.cc), interleaved, and
# prints each one's median ops/s and its ratio to the best peer's median. The
# floor's ratio bounds what an allocator gains there from its list operations;
# the rest is the workload's own work (its loop, its branches, touching its
# blocks). Single-thread workloads of small blocks only (tiny_hot, random_mixed):
# the floor has no cross-thread frees, and for blocks of a KiB and more its
# layout, not its instructions, decides.
#
#   tools/ceiling.sh [--no-build] [REPS] ["WORKLOAD ARGS" ...]
#   tools/ceiling.sh 7 "tiny_hot 64 100 200000" "random_mixed 20000000 256"
# --no-build measures what bazel-bin holds now (build it with -c opt first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == --no-build ]]; then
  shift
else
  bazel build -c opt //benchmarks:all //hakmem:libhakmem.so >&2
fi
reps=7
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  reps=$1
  shift
fi
if (($# == 0)); then
  set -- "tiny_hot 64 100 200000" "random_mixed 20000000 256" "random_mixed 20000000 8192"
fi
for workload in "$@"; do
  case "${workload%% *}" in
    tiny_hot | random_mixed) ;;
    *)
      echo "ceiling: $workload: only tiny_hot and random_mixed (see the comment at the top)" >&2
      exit 2
      ;;
  esac
done
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
      if ! line=$(LD_PRELOAD="${preloads[$i]}" "bazel-bin/benchmarks/${cmd[0]}" "${cmd[@]:1}"); then
        echo "ceiling: $workload failed under ${names[$i]}" >&2
        exit 1
      fi
      ops=$(sed -n 's/.* ops_per_sec=\([0-9.e+]*\).*/\1/p' <<<"$line")
      served=$(sed -n 's/.* malloc=\([^ ]*\).*/\1/p' <<<"$line")
      expected=$(basename "${preloads[$i]:-libc.so.6}")
      if [[ -z "$ops" || "$served" != "$expected" ]]; then
        echo "ceiling: $workload under ${names[$i]}: expected a RESULT served by $expected: $line" >&2
        exit 1
      fi
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
