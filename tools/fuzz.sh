#!/usr/bin/env bash
# Runs the coverage-guided fuzzer of hakmem's API (hakmem/tests/api_fuzz.cc)
# under libFuzzer and AddressSanitizer for MINUTES minutes (default 10), starting
# from the checked-in corpus; new inputs that reach new code are added to a
# working copy of it (FUZZ_CORPUS_OUT, default /tmp/hakmem_fuzz_corpus), crashes
# are written to the current directory. Needs clang (tools/setup.sh installs it).
#   tools/fuzz.sh [MINUTES] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
shift || true
out="${FUZZ_CORPUS_OUT:-/tmp/hakmem_fuzz_corpus}"
command -v clang >/dev/null || { echo "fuzz.sh: clang is missing (run tools/setup.sh)" >&2; exit 1; }
bazel build --config=fuzz //hakmem/tests:api_fuzzer
mkdir -p "$out"
cp -n hakmem/tests/fuzz_corpus/* "$out"/ 2>/dev/null || true
fuzzer=bazel-bin/hakmem/tests/api_fuzzer
echo "fuzz.sh: $fuzzer for $minutes minute(s), corpus $out" >&2
"$fuzzer" -max_total_time=$((minutes * 60)) -rss_limit_mb=4096 -timeout=60 -print_final_stats=1 "$@" "$out"
