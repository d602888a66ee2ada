#!/usr/bin/env bash
# Thread scaling of the multi-threaded workloads under every allocator: one CSV
# line per run (workload, allocator, threads, rep, ops/s, peak RSS KiB).
#
#   tools/scaling.sh DIR [THREADS...]
#
# DIR holds the plain workload binaries (mid_large_mt, larson, cross_thread) and
# the allocators' shared objects (libhakmem.so, libmimalloc.so.2, libjemalloc.so.2,
# libtcmalloc_minimal.so.4); it can be copied to a machine without Bazel. Runs are
# interleaved over allocators within each (workload, threads, rep).
set -uo pipefail
dir="$(cd "${1:?usage: tools/scaling.sh DIR [THREADS...]}" && pwd)"
shift
threads=("$@")
((${#threads[@]})) || threads=(1 2 4 8 16)
reps="${REPS:-3}"
declare -A lib=([glibc]="" [mimalloc]="$dir/libmimalloc.so.2" [jemalloc]="$dir/libjemalloc.so.2"
                [tcmalloc]="$dir/libtcmalloc_minimal.so.4" [hakmem]="$dir/libhakmem.so")
order=(glibc mimalloc jemalloc tcmalloc hakmem)

# The arguments of each workload for T threads (work per thread kept constant).
args() {
  case "$1" in
    mid_large_mt) echo "$2 1000000 2048 42" ;;
    larson) echo "1 8 1000 5000 10 4141 $2" ;;
    cross_thread) echo "$(( ($2 + 1) / 2 )) $(( ($2 + 1) / 2 )) 1000000 16 32768 42" ;;
  esac
}

echo "workload,allocator,threads,rep,ops_per_sec,peak_rss_kb"
for workload in mid_large_mt larson cross_thread; do
  for t in "${threads[@]}"; do
    for ((rep = 1; rep <= reps; rep++)); do
      for a in "${order[@]}"; do
        # shellcheck disable=SC2046
        line=$(LD_PRELOAD="${lib[$a]}" timeout 300 "$dir/$workload" $(args "$workload" "$t") 2>&1 | grep '^RESULT')
        ops=$(sed -n 's/.* ops_per_sec=\([0-9.]*\).*/\1/p' <<<"$line")
        rss=$(sed -n 's/.* peak_rss_kb=\([0-9]*\).*/\1/p' <<<"$line")
        echo "$workload,$a,$t,$rep,${ops:-FAILED},${rss:-}"
      done
    done
  done
done
