#!/usr/bin/env bash
# The heap profiler end to end: heap_profile_program keeps 96 MiB from one
# function and 32 MiB from another (and churns 64 MiB from a third); its profile,
# read by google-pprof, must list the first function first, each kept site
# within 10% of its bytes in use in every run and within 3% on average over the
# runs, and the churn only in --alloc_space (64 MiB +-10%). At the default rate,
# with 5 seeds: linked with //hakmem:malloc (the at-exit profile and one written
# by hak_heap_profile_dump) and a plain build under LD_PRELOAD=libhakmem.so.
# google-pprof comes from Debian's google-perftools (tools/setup.sh installs it):
# without it this test fails, it does not skip.
set -euo pipefail

PPROF=$(command -v google-pprof || command -v pprof || true)
if [[ -z "$PPROF" ]]; then
  echo "FAIL: google-pprof not found: install Debian's google-perftools (tools/setup.sh does)" >&2
  exit 1
fi

RUNFILES="${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-hakmem}"
STATIC="$RUNFILES/hakmem/tests/heap_profile_program"
PLAIN="$RUNFILES/hakmem/tests/heap_profile_program_plain"
LIB="$RUNFILES/hakmem/libhakmem.so"
OUT="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0

# check NAME BINARY PROFILE: the in-use and alloc-space tables of one profile.
check() {
  local name=$1 binary=$2 profile=$3
  echo "=== $name: google-pprof --text --inuse_space $(basename "$binary") $(basename "$profile")"
  "$PPROF" --text --inuse_space "$binary" "$profile" >"$OUT/$name.inuse" 2>"$OUT/$name.err" || {
    cat "$OUT/$name.err" >&2
    echo "FAIL: $name: google-pprof failed" >&2
    failures=$((failures + 1))
    return
  }
  head -8 "$OUT/$name.inuse"
  "$PPROF" --text --alloc_space "$binary" "$profile" >"$OUT/$name.alloc" 2>/dev/null
  echo "--- --alloc_space"
  head -6 "$OUT/$name.alloc"
  python3 - "$name" "$OUT/$name.inuse" "$OUT/$name.alloc" <<'PY' || failures=$((failures + 1))
import re, sys

name, inuse_path, alloc_path = sys.argv[1:]

def rows(path):
    # "    96.1  74.9%  74.9%     96.1  74.9% (anonymous namespace)::KeepNinetySixMiB"
    out = []
    for line in open(path):
        m = re.match(r"\s*([\d.]+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\s+([\d.]+)%\s+(.*)$", line)
        if m:
            out.append((float(m.group(1)), m.group(6).strip()))
    return out

def mib(rows, function):
    for value, fn in rows:
        if function in fn:
            return value
    return None

inuse, alloc = rows(inuse_path), rows(alloc_path)
values_path = inuse_path.rsplit("/", 1)[0] + "/values"
ok = True
if not inuse or "KeepNinetySixMiB" not in inuse[0][1]:
    print(f"FAIL: {name}: the first in-use function is {inuse[0] if inuse else None}, not KeepNinetySixMiB")
    ok = False
a = mib(inuse, "KeepNinetySixMiB")
b = mib(inuse, "KeepThirtyTwoMiB")
c = mib(inuse, "ChurnSixtyFourMiB")
d = mib(alloc, "ChurnSixtyFourMiB")
print(f"{name}: in use KeepNinetySixMiB={a} MB KeepThirtyTwoMiB={b} MB ChurnSixtyFourMiB={c}; alloc_space ChurnSixtyFourMiB={d} MB")
if a is None or abs(a - 96) > 0.10 * 96:
    print(f"FAIL: {name}: KeepNinetySixMiB {a} MB in use, expected 96 +-10%"); ok = False
if b is None or abs(b - 32) > 0.10 * 32:
    print(f"FAIL: {name}: KeepThirtyTwoMiB {b} MB in use, expected 32 +-10%"); ok = False
if c is not None and c > 2:
    print(f"FAIL: {name}: the freed churn shows {c} MB in use"); ok = False
if d is None or abs(d - 64) > 0.10 * 64:
    print(f"FAIL: {name}: ChurnSixtyFourMiB {d} MB allocated, expected 64 +-10%"); ok = False
if a is not None and b is not None:
    with open(values_path, "a") as out:
        out.write(f"{a} {b}\n")
sys.exit(0 if ok else 1)
PY
}

# The default rate; a seed per run (each run draws other sample points).
unset HAKMEM_HEAP_PROFILE_RATE
runs=0
for seed in 1 2 3 4 5; do
  export HAKMEM_HEAP_PROFILE_SEED=$seed
  # Linked with //hakmem:malloc: the at-exit profile and an on-demand one.
  rm -f "$OUT"/static.*.heap "$OUT"/preload.*.heap
  HAKMEM_HEAP_PROFILE="$OUT/static" "$STATIC" "$OUT/ondemand.heap"
  profile=$(ls "$OUT"/static.*.heap)
  head -1 "$profile"
  grep -q "^heap profile: .* heapprofile\$" "$profile" || {
    echo "FAIL: bad header: $(head -1 "$profile")" >&2
    failures=$((failures + 1))
  }
  grep -q "^MAPPED_LIBRARIES:" "$profile" || { echo "FAIL: no MAPPED_LIBRARIES" >&2; failures=$((failures + 1)); }
  check "static-$seed" "$STATIC" "$profile"
  check "ondemand-$seed" "$STATIC" "$OUT/ondemand.heap"
  # A plain build under LD_PRELOAD.
  HAKMEM_HEAP_PROFILE="$OUT/preload" LD_PRELOAD="$LIB" "$PLAIN"
  check "preload-$seed" "$PLAIN" "$(ls "$OUT"/preload.*.heap)"
  runs=$((runs + 3))
done
unset HAKMEM_HEAP_PROFILE_SEED

# The mean over the runs: the estimate is unbiased, so within a few percent.
python3 - "$OUT/values" "$runs" <<'PY' || failures=$((failures + 1))
import sys
values = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
if len(values) != int(sys.argv[2]):
    sys.exit(f"FAIL: {len(values)} of {sys.argv[2]} runs gave both sites")
for i, (site, expected) in enumerate((("KeepNinetySixMiB", 96), ("KeepThirtyTwoMiB", 32))):
    mean = sum(v[i] for v in values) / len(values)
    print(f"mean over {len(values)} runs: {site} {mean:.2f} MB (expected {expected}, "
          f"min {min(v[i] for v in values)}, max {max(v[i] for v in values)})")
    if abs(mean - expected) > 0.03 * expected:
        sys.exit(f"FAIL: {site}: mean {mean:.2f} MB, expected {expected} +-3%")
PY

# Off (unset or empty): no profile, and hak_heap_profile_dump says EINVAL.
before=$(ls "$OUT" | wc -l)
if (unset HAKMEM_HEAP_PROFILE; "$STATIC" "$OUT/off.heap") >/dev/null 2>"$OUT/off.err"; then
  echo "FAIL: hak_heap_profile_dump succeeded with the profiler off" >&2
  failures=$((failures + 1))
fi
grep -q "Invalid argument" "$OUT/off.err" || { echo "FAIL: off: $(cat "$OUT/off.err")" >&2; failures=$((failures + 1)); }
HAKMEM_HEAP_PROFILE= "$STATIC" >/dev/null
after=$(ls "$OUT" | wc -l)
if ((after != before + 1)); then  # off.err only
  echo "FAIL: files written with the profiler off: $(ls "$OUT")" >&2
  failures=$((failures + 1))
fi

if ((failures > 0)); then
  echo "FAIL: $failures check(s) failed" >&2
  exit 1
fi
echo PASS
