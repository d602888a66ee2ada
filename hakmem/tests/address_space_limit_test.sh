#!/usr/bin/env bash
# Under an address-space limit (ulimit -v), hakmem must reach at least 95% of the
# bytes the C library's malloc reaches on the same mix of live allocations
# (address_space_workload.c). hakmem reached 73% when superslab reservations did
# not shrink under pressure, huge mappings were rounded up to 2 MiB and large
# runs could not fall back to a mapping of their own.
set -euo pipefail
workload="$1"
libhakmem="$2"
limit_kib="${3:-600000}"

glibc=$(ulimit -v "$limit_kib"; "$workload")
hakmem=$(ulimit -v "$limit_kib"; LD_PRELOAD="$libhakmem" "$workload")
percent=$((hakmem * 100 / glibc))
echo "ulimit -v $limit_kib: glibc reached $((glibc >> 20)) MiB, hakmem $((hakmem >> 20)) MiB ($percent%)"
if ((percent < 95)); then
  echo "FAIL: hakmem reached less than 95% of glibc's bytes" >&2
  exit 1
fi
