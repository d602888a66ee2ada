#!/usr/bin/env bash
# exported_symbols_test: libhakmem.so defines exactly the dynamic symbols listed in
# hakmem/exported_symbols.txt (the allocation API, operator new/delete and hak_*).
# An internal symbol in the dynamic table (a hakmem:: thread-local, a table, a
# typeinfo) fails it, and so does a listed function that went missing. It also
# checks what the object loads into every program it is preloaded into: the C
# library and the dynamic loader only (a sanitizer build adds its runtime), never
# libm or the C++ runtime. And every exported function in the hakmem_alloc_entry
# section (malloc & co, operator new/delete, the hak_* entry points) starts 32
# bytes into a 64-byte line, as platform.h's HAKMEM_ENTRY_LAYOUT places it.
# Usage: exported_symbols_test.sh LIBHAKMEM_SO EXPECTED_LIST
set -euo pipefail

so=$1
expected_list=$2

# Every symbol the dynamic table defines, local ones included: a local entry is not
# bindable, but it names internals nobody outside should see. Versions (@@V) are
# dropped. __bss_start, _edata and _end are the linker's section markers (bfd and
# gold add them, lld does not), not ours; so are the bounds of the profiler's
# hakmem_alloc_entry section, which bfd lists although they are hidden.
symbols=$(nm -D --defined-only "$so" | awk 'NF >= 3 { sub(/@.*/, "", $3); print $2, $3 }' |
  grep -Ev ' (__bss_start|_edata|_end|__start_hakmem_alloc_entry|__stop_hakmem_alloc_entry)$')
actual=$(awk '{ print $2 }' <<<"$symbols" | LC_ALL=C sort -u)
# Bindable from outside: global or weak (nm's upper-case types, and u for unique).
bindable=$(awk '$1 ~ /^[A-Zu]$/ { print $2 }' <<<"$symbols" | LC_ALL=C sort -u)
expected=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$expected_list" | grep -v '^$' | LC_ALL=C sort -u)

unexpected=$(LC_ALL=C comm -23 <(printf '%s\n' "$actual") <(printf '%s\n' "$expected"))
missing=$(LC_ALL=C comm -13 <(printf '%s\n' "$bindable") <(printf '%s\n' "$expected"))

status=0
if [[ -n $unexpected ]]; then
  echo "FAIL: $so exports symbols that $expected_list does not list:" >&2
  while read -r sym; do
    printf '  + %-40s %s\n' "$sym" "$(c++filt "$sym" 2>/dev/null || true)" >&2
  done <<<"$unexpected"
  echo "  (an internal symbol must be hidden; a new API function gets a line in the list)" >&2
  status=1
fi
if [[ -n $missing ]]; then
  echo "FAIL: $expected_list lists symbols that $so does not export (global or weak):" >&2
  while read -r sym; do printf '  - %s\n' "$sym" >&2; done <<<"$missing"
  status=1
fi
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
extra=$(grep -Ev '^(libc\.so\.6|ld-linux-[a-z0-9_-]+\.so\.[0-9]+|lib(a|t|ub)san\.so\.[0-9]+|libclang_rt\..*|libgcc_s\.so\.1)$' <<<"$needed" || true)
if [[ -n $extra ]]; then
  echo "FAIL: $so needs libraries beyond the C library and the loader:" >&2
  while read -r lib; do printf '  + %s\n' "$lib" >&2; done <<<"$extra"
  echo "  (each is loaded into every program that preloads hakmem)" >&2
  status=1
fi
# The entry section's bounds, from the section table (bfd lists __start_/__stop_ in
# the dynamic table, lld does not). No such section: read finds nothing (|| true,
# so set -e lets the FAIL below say why).
read -r entry_start entry_size < <(readelf -SW "$so" |
  awk '{ for (i = 1; i < NF; ++i) if ($i == "hakmem_alloc_entry") { print $(i + 2), $(i + 4); exit } }') ||
  true
if [[ -z ${entry_start:-} ]]; then
  echo "FAIL: $so has no hakmem_alloc_entry section" >&2
  status=1
else
  entries=$(nm -D --defined-only -t d "$so" |
    awk -v lo=$((16#$entry_start)) -v size=$((16#$entry_size)) '
      $2 ~ /^[TW]$/ && $3 !~ /^__(start|stop)_/ && $1 + 0 >= lo && $1 + 0 < lo + size { print $1 % 64, $3 }')
  misplaced=$(awk '$1 != 32 { print "  " $2 " starts " $1 " bytes into its line" }' <<<"$entries")
  if ! grep -qw malloc <<<"$entries" || ! grep -qw free <<<"$entries"; then
    echo "FAIL: malloc and free are not in $so's hakmem_alloc_entry section" >&2
    status=1
  elif [[ -n $misplaced ]]; then
    echo "FAIL: entry points not 32 bytes into a 64-byte line (HAKMEM_ENTRY_LAYOUT):" >&2
    echo "$misplaced" >&2
    status=1
  fi
fi
if [[ $status -eq 0 ]]; then
  echo "PASS: $(wc -l <<<"$actual") dynamic symbols, as listed in $expected_list; needs only" \
    "$(tr '\n' ' ' <<<"$needed")and $(wc -l <<<"$entries") entry points start 32 bytes into a 64-byte line"
fi
exit $status
