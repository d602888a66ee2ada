#!/usr/bin/env bash
# Builds and runs the example consumer (a separate Bazel workspace that depends on
# hakmem through the README's three WORKSPACE lines, as an outside project would)
# with each compiler, both ways a project makes hakmem its malloc:
# cc_binary(malloc = ...) (//:hello) and --custom_malloc (//:hello_custom_malloc),
# and checks that hakmem served the allocations. This workspace has no .bazelrc,
# and --nohome_rc keeps a user's ~/.bazelrc out too, so nothing beyond the WORKSPACE
# lines is needed. (The system rc stays: Debian's /etc/bazel/bazelrc sets the
# install base its bazel cannot start without.) Exits 0 on success.
# Usage: run.sh [COMPILER...]   (default: gcc clang; CC for Bazel's auto-configured
# toolchain, which it re-detects when CC changes)
set -uo pipefail
cd "$(dirname "$0")"

compilers=("$@")
if [[ ${#compilers[@]} -eq 0 ]]; then compilers=(gcc clang); fi

# This workspace has its own Bazel server (beside hakmem's); let it go when idle.
BAZEL=(bazel --nohome_rc --noworkspace_rc --max_idle_secs=300)

failures=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# run_hello COMPILER EXPECT(ok|libc) TARGET [BAZEL_FLAGS...]
# Without -c (Bazel's fastbuild, this workspace's default) hakmem must be the
# optimised build; with -c dbg the unoptimised one.
run_hello() {
  local cc=$1 expect=$2 target=$3
  shift 3
  local what="CC=$cc bazel run $* $target"
  if [[ $expect == ok ]]; then
    echo "=== $what" >&2
  else
    echo "=== $what (control: the C library's malloc, so hakmem serves nothing)" >&2
  fi
  # Bazel's own stderr (Debian's rc turns on --sandbox_debug) goes to a log shown
  # only on failure.
  local output status
  output=$(CC=$cc "${BAZEL[@]}" run "$@" "$target" 2>"$log")
  status=$?
  printf '%s\n' "$output"
  if ! grep -q "^hello: compiled by" <<<"$output"; then
    grep -v "linux-sandbox" "$log" | tail -40 >&2
  fi
  # The compiler that built it is the one asked for.
  if ! grep -Eq "^hello: compiled by $cc " <<<"$output"; then
    fail "$what: not compiled by $cc"
    return
  fi
  local build=optimized
  if [[ " $* " == *" -c dbg "* ]]; then build=unoptimized; fi
  if ! grep -Eq "^hello: linked hakmem [0-9]+\.[0-9]+\.[0-9]+ \($build, $cc " <<<"$output"; then
    fail "$what: hakmem is not the $build build"
  fi
  if [[ $expect == ok ]]; then
    if [[ $status -ne 0 ]]; then
      fail "$what exited with status $status"
    elif ! grep -Eq '^hello: hakmem served ([0-9]+) of \1 allocations \(ok\)$' <<<"$output"; then
      fail "$what: unexpected output"
    fi
  else
    # The control: without hakmem as its malloc, no block is hakmem's.
    if [[ $status -eq 0 ]] || ! grep -Eq '^hello: hakmem served 0 of [0-9]+ allocations \(FAILED\)$' <<<"$output"; then
      fail "$what: expected the C library's malloc (served 0, exit 1)"
    fi
  fi
}

for cc in "${compilers[@]}"; do
  run_hello "$cc" ok //:hello
  run_hello "$cc" ok //:hello_custom_malloc --custom_malloc=@hakmem//hakmem:malloc
  run_hello "$cc" libc //:hello_custom_malloc
done
# -c dbg still means a debug build of hakmem (once: a third build of it).
run_hello "${compilers[0]}" ok //:hello -c dbg

if [[ $failures -ne 0 ]]; then
  echo "FAIL: examples/consumer ($failures failures)" >&2
  exit 1
fi
echo "PASS: examples/consumer (${compilers[*]}; malloc = and --custom_malloc)"
