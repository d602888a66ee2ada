#!/usr/bin/env bash
# Runs the coverage-guided fuzzer of hakmem's API (hakmem/tests/api_fuzz.cc) under
# libFuzzer and AddressSanitizer (clang, --config=fuzz, built in the clang copy of
# the tree: tools/in_clang_tree.sh) for MINUTES minutes (default 10; FUZZ_SECONDS
# overrides), starting from the checked-in corpus. Inputs that reach new code are
# added to a working corpus (FUZZ_CORPUS_OUT, default /tmp/hakmem_fuzz_corpus); a
# crash is written to the current directory and fails the run.
#   tools/fuzz.sh [MINUTES] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
shift || true
seconds="${FUZZ_SECONDS:-$((minutes * 60))}"
out="${FUZZ_CORPUS_OUT:-/tmp/hakmem_fuzz_corpus}"
command -v clang >/dev/null || { echo "fuzz.sh: clang is missing (run tools/setup.sh)" >&2; exit 1; }
mkdir -p "$out"
cp -n hakmem/tests/fuzz_corpus/* "$out"/ 2>/dev/null || true
here="$PWD"
tools/in_clang_tree.sh bash -c '
  set -euo pipefail
  bazel --max_idle_secs=300 build --config=fuzz //hakmem/tests:api_fuzzer
  cp -f bazel-bin/hakmem/tests/api_fuzzer "$1/.api_fuzzer"' _ "$here"
echo "fuzz.sh: libFuzzer for $seconds s, corpus $out" >&2
"$here/.api_fuzzer" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=60 -print_final_stats=1 "$@" "$out"
