"""hakmem's build flags: `--define hakmem_<name>=<value>`.

Each flag is a `config_setting` per value, turned into `-DHAKMEM_BUILD_<NAME>=<int>`
and read through hakmem/config/build_config.h as `constexpr` values. An unknown
value fails the build with the list of valid ones. The first value of each flag is
its default, which is always the fast, safe build.

A value is set in one of two ways, never both in one configuration:
  --define hakmem_<name>=<value>   what users (and CI's all-flags run) write;
                                   any number of flags at once. Matches
                                   `//hakmem/config:<name>_<value>`.
  the `variant` build setting      "<name>=<value>", set only by the transition of
                                   a flag-variant test (hakmem/config/variants.bzl):
                                   the default build with that one flag changed,
                                   whatever --define says, so `bazel test //...`
                                   covers every value. Matches
                                   `//hakmem/config:<name>_<value>_variant`.
The --define settings match only where `variant` is empty, so the two never both
match (select() would call that ambiguous).
"""

# name: (values in order, default first; the int each value becomes; what it changes)
HAKMEM_FLAGS = {
    "pool_tls": (["on", "off"], [1, 0], "Thread caching of the pool classes (1 KiB..128 KiB). off: their cache limit is 0, served straight from the slabs (A/B only)."),
    "remote_queue": (["lockfree", "mutex"], [0, 1], "Cross-thread free: lock-free MPSC push, or a per-heap mutex (A/B only)."),
    "prewarm": (["off", "on"], [0, 1], "on: a new thread fills its pool caches with one batch of each common class."),
    "prefault": (["off", "on"], [0, 1], "on: new superslab memory is populated (MADV_WILLNEED + touch) when it is carved."),
    "stats": (["on", "off"], [1, 0], "Per-thread counters behind HAKMEM_STATS=1 and hak_get_stats(); off compiles them out."),
    "hardened": (["off", "on"], [0, 1], "on: links encoded and checked, and every block a thread cache hands out checked against its slab."),
    "encoded_lists": (["off", "on"], [0, 1], "on: free-list links encoded with a per-process key and checked when loaded (safe-linking), as in hardened builds."),
    "thp": (["on", "off"], [1, 0], "Transparent huge pages: on, superslabs and huge mappings are advised MADV_HUGEPAGE when the kernel's mode allows and HAKMEM_THP=auto; off, never (A/B)."),
    "debug_log": (["off", "on"], [0, 1], "on: slow-path events (new superslab, adopt, purge) are written to stderr."),
    "ace": (["on", "off"], [1, 0], "Adaptive thread caches (hakmem/ace): per-class limits and batches learned per thread within HAKMEM_ACE_BUDGET_KB. off: the size-class table's fixed limits (A/B only)."),
    "checks": (["off", "on"], [0, 1], "on: the invariants written as HAKMEM_DCHECK (slab states, used counts, heap ownership) are checked, and a failure aborts naming it. --config=debug sets it."),
}

# Every non-default value, as "<name>=<value>": the flag variants of a test.
HAKMEM_FLAG_VARIANTS = [
    "%s=%s" % (name, value)
    for name, (values, _ints, _doc) in HAKMEM_FLAGS.items()
    for value in values[1:]
]

def hakmem_flag_values(variant):
    """The int of every flag under a variant ("<name>=<value>"), as "POOL_TLS=1,...".

    What a variant's binary must have been compiled with (build_config_test)."""
    changed, _, changed_value = variant.partition("=")
    values = []
    for name, (names, ints, _doc) in HAKMEM_FLAGS.items():
        number = ints[names.index(changed_value)] if name == changed else ints[0]
        values.append("%s=%d" % (name.upper(), number))
    return ",".join(values)

def _setting_name(name, value):
    return "%s_%s" % (name, value)

def _variant_setting_impl(ctx):
    value = ctx.build_setting_value
    if value and value not in HAKMEM_FLAG_VARIANTS:
        fail("hakmem flag variant %r is not one of: %s" % (value, ", ".join(HAKMEM_FLAG_VARIANTS)))
    return []

_variant_setting = rule(
    implementation = _variant_setting_impl,
    build_setting = config.string(flag = False),
    doc = "The one flag a flag-variant test changes (\"<name>=<value>\"), or empty.",
)

def hakmem_flag_settings():
    """Declares the config_settings of every flag, the variant setting and the check of their values."""
    _variant_setting(
        name = "variant",
        build_setting_default = "",
        visibility = ["//visibility:public"],
    )
    for name, (values, _ints, _doc) in HAKMEM_FLAGS.items():
        for value in values:
            native.config_setting(
                name = _setting_name(name, value),
                define_values = {"hakmem_" + name: value},
                flag_values = {":variant": ""},
                visibility = ["//visibility:public"],
            )
            native.config_setting(
                name = _setting_name(name, value) + "_variant",
                flag_values = {":variant": "%s=%s" % (name, value)},
                visibility = ["//visibility:public"],
            )
    hakmem_flag_check(name = "flag_check")

def hakmem_flag_defines():
    """The -D defines of the current flag values, as a select() per flag."""
    defines = []
    for name, (values, ints, _doc) in HAKMEM_FLAGS.items():
        macro = "HAKMEM_BUILD_%s=" % name.upper()
        branches = {"//conditions:default": [macro + str(ints[0])]}
        for value, number in zip(values[1:], ints[1:]):
            setting = "//hakmem/config:" + _setting_name(name, value)
            branches[setting] = [macro + str(number)]
            branches[setting + "_variant"] = [macro + str(number)]
        defines += select(branches)
    return defines

def _flag_check_impl(ctx):
    for name, (values, _ints, _doc) in HAKMEM_FLAGS.items():
        value = ctx.var.get("hakmem_" + name)
        if value != None and value not in values:
            fail("--define hakmem_%s=%s is not a valid value; use one of: %s" %
                 (name, value, ", ".join(values)))
    return [CcInfo()]

hakmem_flag_check = rule(
    implementation = _flag_check_impl,
    doc = "Fails the build when a --define hakmem_<name> has an unknown value.",
)

def _flags_markdown_impl(ctx):
    lines = [
        "| Flag | Values (default first) | What it changes |",
        "|---|---|---|",
    ]
    for name, (values, _ints, doc) in HAKMEM_FLAGS.items():
        shown = ["`%s` (default)" % values[0]] + ["`%s`" % value for value in values[1:]]
        lines.append("| `--define hakmem_%s=` | %s | %s |" % (name, ", ".join(shown), doc))
    out = ctx.actions.declare_file(ctx.label.name + ".md")
    ctx.actions.write(out, "\n".join(lines) + "\n")
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

hakmem_flags_markdown = rule(
    implementation = _flags_markdown_impl,
    doc = "Writes <name>.md: the build-flag table of docs/tuning.md, from HAKMEM_FLAGS.",
)
