#!/usr/bin/env bash
# Runs the flag variants of hakmem's tests: every test not tagged `slow`, rebuilt
# once per non-default build flag value (hakmem/config/variants.bzl). They are
# tagged `manual`, so `bazel test //...` (the quick command of the README) leaves
# them out; .ci/run runs this. Extra arguments go to `bazel test`
# (e.g. --test_tag_filters=..., -k).
# Usage: tools/test_variants.sh [BAZEL_TEST_FLAGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t variants < <(bazel query --noshow_progress 'attr(tags, "\bflag_variant\b", tests(//...))')
if ((${#variants[@]} == 0)); then
  echo "test_variants: no flag-variant test found" >&2
  exit 1
fi
echo "test_variants: ${#variants[@]} tests" >&2
bazel test "$@" -- "${variants[@]}"
