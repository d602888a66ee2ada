#!/usr/bin/env bash
# Runs a command with CC=clang in a copy of this tree at a fixed path, with its own
# Bazel server and output base. Bazel detects its toolchain again whenever CC
# changes and then rebuilds everything, so clang builds (CI's clang runs,
# tools/fuzz.sh) work in the copy and neither compiler's runs throw away the
# other's cache. (A second --output_base for this tree would not do: `//...` would
# walk into the bazel-<dir> link to the first one's execroot.)
#   tools/in_clang_tree.sh bazel test //...
# Prints the copy's path on stderr; HAKMEM_CLANG_TREE names it for the command.
set -euo pipefail
cd "$(dirname "$0")/.."
clang_tree="${XDG_CACHE_HOME:-$HOME/.cache}/hakmem-ci/clang-$(pwd | md5sum | cut -c1-12)"
mkdir -p "$clang_tree"
find "$clang_tree" -mindepth 1 -maxdepth 1 ! -name 'bazel-*' -exec rm -rf {} +
git ls-files -z --cached --others --exclude-standard |
  tar --null --files-from=- --ignore-failed-read -cf - | tar -xf - -C "$clang_tree"
echo "in_clang_tree: $clang_tree" >&2
cd "$clang_tree"
export CC=clang HAKMEM_CLANG_TREE="$clang_tree"
if [[ "${1:-}" == bazel ]]; then
  shift
  exec bazel --max_idle_secs=300 "$@"
fi
exec "$@"
