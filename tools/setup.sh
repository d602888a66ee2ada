#!/usr/bin/env bash
# Installs what hakmem needs on a Debian machine, offline from anything but
# Debian's archive. Idempotent: packages already present are not touched, and
# `apt-get update` runs only when something is missing.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap g++ git python3 python3-matplotlib strace
  # callgrind pins the fast paths' instruction counts (hakmem/tests:fast_path_test).
  valgrind
  clang libclang-rt-14-dev
  # CI checks every C++ file against .clang-format.
  clang-format
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4
  # google-pprof reads HAKMEM_HEAP_PROFILE's profiles (heap_profile_test needs
  # it); graphviz draws its --svg/--png call graphs.
  google-perftools graphviz
  # tools/compare.py's real-program workloads. (Installing redis-server may also
  # start Debian's own service on port 6379; compare.py starts its own servers on
  # free loopback ports and does not use it.)
  lua5.4 sqlite3 redis-server redis-tools ghostscript ruby z3 perl
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v bazel >/dev/null || { echo "setup: bazel is still missing" >&2; exit 1; }
