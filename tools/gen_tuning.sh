#!/usr/bin/env bash
# The tables of docs/tuning.md that are generated: the runtime options (from
# hakmem/config/options.h, //hakmem/config:options_markdown) and the build flags
# (from hakmem/config/flags.bzl, //hakmem/config:flags_markdown), each between
# its BEGIN GENERATED / END GENERATED markers.
#
#   tools/gen_tuning.sh                   builds both tables and rewrites docs/tuning.md
#   tools/gen_tuning.sh --check PAGE OPTIONS_MD FLAGS_MD
#                                         exits 1, with a diff, when PAGE's tables are
#                                         not these (//hakmem/config:tuning_doc_test)
set -euo pipefail

# splice PAGE OPTIONS_MD FLAGS_MD: PAGE with both sections replaced, on stdout.
splice() {
  python3 - "$@" <<'PY'
import re, sys
page, options, flags = (open(p).read() for p in sys.argv[1:4])
for name, table in (("options", options), ("flags", flags)):
    pattern = re.compile(r"(<!-- BEGIN GENERATED: %s [^\n]*-->\n).*?(<!-- END GENERATED: %s -->)" % (name, name), re.S)
    if not pattern.search(page):
        sys.exit("gen_tuning: %s has no BEGIN/END GENERATED: %s markers" % (sys.argv[1], name))
    page = pattern.sub(lambda m: m.group(1) + table + m.group(2), page, count=1)
sys.stdout.write(page)
PY
}

if [[ ${1:-} == --check ]]; then
  page=$2
  expected=$(mktemp)
  trap 'rm -f "$expected"' EXIT
  splice "$page" "$3" "$4" >"$expected"
  if ! diff -u "$page" "$expected"; then
    echo "FAIL: $page's generated tables are out of date: run tools/gen_tuning.sh" >&2
    exit 1
  fi
  echo "PASS: $page's tables match options.h and flags.bzl"
  exit 0
fi

cd "$(dirname "$0")/.."
bazel build --noshow_progress //hakmem/config:options_markdown_md //hakmem/config:flags_markdown
bin=$(bazel info bazel-bin)
new=$(mktemp)
trap 'rm -f "$new"' EXIT
splice docs/tuning.md "$bin/hakmem/config/options_markdown.md" "$bin/hakmem/config/flags_markdown.md" >"$new"
cp "$new" docs/tuning.md
echo "gen_tuning: docs/tuning.md written"
