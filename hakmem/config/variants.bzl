"""Flag variants of a test: the test under every build flag value.

`flag_variant_tests(name = "x_test")` declares, for each non-default flag value of
hakmem/config/flags.bzl ("pool_tls=off", "stats=off", ...), a test
`x_test_<name>_<value>` (`x_test_pool_tls_off`): the same test binary built again
with that one value (the `//hakmem/config:variant` build setting, set by a
transition, so each variant has its own output directory and stays cached) and run
with the same runfiles, arguments and environment, plus HAKMEM_TEST_FLAG_VALUES
(every flag's expected value, checked by config:build_config_test). This is how tcmalloc's
variants.bzl covers its build options, without a second list of targets to keep.

Variants are tagged `flag_variant` and `manual`, plus the tags of the test: each
rebuilds the allocator in a configuration of its own (330 tests, an hour of a
2-core machine from a cold cache), so `bazel test //...` runs the default build's
tests only and `tools/test_variants.sh` (and .ci/run) runs the variants; the
sanitizer configs of .bazelrc leave them out too (one sanitizer run of the
default build is what they are for). Tests tagged `slow` get none: they pin the default build (golden
instruction counts, the profiler end to end, fault injection and soak runs).
"""

load("//hakmem/config:flags.bzl", "HAKMEM_FLAG_VARIANTS", "hakmem_flag_values")

def _variant_transition_impl(settings, attr):
    return {"//hakmem/config:variant": attr.variant}

_variant_transition = transition(
    implementation = _variant_transition_impl,
    inputs = [],
    outputs = ["//hakmem/config:variant"],
)

def _flag_variant_test_impl(ctx):
    test = ctx.attr.test
    if type(test) == "list":  # an attribute with a transition is a list of one
        test = test[0]
    binary = test[DefaultInfo].files_to_run.executable
    executable = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.symlink(output = executable, target_file = binary, is_executable = True)
    runfiles = ctx.runfiles(files = [executable]).merge(test[DefaultInfo].default_runfiles)
    env = dict(ctx.attr.test_env)
    # What the binary must have been compiled with (config/build_config_test.cc).
    env["HAKMEM_TEST_FLAG_VALUES"] = hakmem_flag_values(ctx.attr.variant)
    return [
        DefaultInfo(executable = executable, runfiles = runfiles),
        testing.TestEnvironment(env),
    ]

_flag_variant_test = rule(
    implementation = _flag_variant_test_impl,
    test = True,
    attrs = {
        "test": attr.label(
            cfg = _variant_transition,
            executable = True,
            mandatory = True,
            doc = "The test whose binary is built again under the variant.",
        ),
        "variant": attr.string(mandatory = True, doc = "\"<flag>=<value>\"."),
        "test_env": attr.string_dict(doc = "The test's environment (its `env`)."),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
    doc = "Runs a test's binary rebuilt with one build flag changed.",
)

def flag_variant_tests(name, tags = [], env = {}, args = [], size = None, timeout = None, shard_count = None, **_build_attrs):
    """Declares `<name>_<flag>_<value>` for every non-default flag value.

    Takes the test's own attributes, so a macro passes on what it gave the cc_test.

    Args:
      name: the test (a cc_test in the same package).
      tags: the test's tags; a `slow` test gets no variants.
      env: the test's environment.
      args: the test's arguments.
      size: the test's size.
      timeout: the test's timeout.
      shard_count: the test's shard count.
      **_build_attrs: the test's other attributes (srcs, deps, ...): the
        variants rebuild the test itself, so these are not needed.
    """
    if "slow" in tags or "manual" in tags:
        return
    for variant in HAKMEM_FLAG_VARIANTS:
        _flag_variant_test(
            name = "%s_%s" % (name, variant.replace("=", "_")),
            test = ":" + name,
            variant = variant,
            test_env = env,
            args = args,
            size = size,
            timeout = timeout,
            shard_count = shard_count,
            tags = tags + ["flag_variant", "manual"],
        )
