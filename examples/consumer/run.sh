#!/usr/bin/env bash
# Builds and runs the example consumer (a separate Bazel workspace that depends on
# hakmem through local_repository, as an outside project would) and checks that
# hakmem served its allocations. Exits 0 on success.
set -uo pipefail
cd "$(dirname "$0")"

output=$(bazel run //:hello)
status=$?
printf '%s\n' "$output"
if [[ $status -ne 0 ]]; then
  echo "FAIL: bazel run //:hello exited with status $status" >&2
  exit 1
fi
if ! grep -Eq '^hello: hakmem served ([0-9]+) of \1 allocations \(ok\)$' <<<"$output"; then
  echo "FAIL: unexpected output from //:hello" >&2
  exit 1
fi
echo "PASS: examples/consumer"
