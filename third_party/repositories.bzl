"""Offline repositories for hakmem and for projects that depend on it.

Usage in a WORKSPACE:

    local_repository(name = "hakmem", path = "...")
    load("@hakmem//third_party:repositories.bzl", "hakmem_repositories")
    hakmem_repositories()

Nothing is downloaded. The libraries come from Debian's -dev packages
(libabsl-dev, libgtest-dev, libgmock-dev, libbenchmark-dev) under /usr, and the rule
repositories Bazel 4.2.3 would fetch (rules_cc, rules_java, remote_coverage_tools)
are small stand-ins kept in this folder. A repository already declared by the
caller is left alone.
"""

def _offline_repository_impl(ctx):
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    for marker in ctx.attr.requires:
        if not ctx.path(marker).exists:
            fail(("@%s needs %s, which is missing. Install the Debian package %s " +
                  "(tools/setup.sh does it).") % (ctx.name, marker, ctx.attr.package))
    for label, dest in ctx.attr.files.items():
        ctx.symlink(ctx.path(label), dest)

_offline_repository = repository_rule(
    implementation = _offline_repository_impl,
    attrs = {
        "files": attr.label_keyed_string_dict(allow_files = True),
        "requires": attr.string_list(),
        "package": attr.string(),
    },
    local = True,
)

def _declare(name, **kwargs):
    if not native.existing_rule(name):
        _offline_repository(name = name, **kwargs)

def hakmem_repositories():
    """Declares every external repository hakmem needs, offline."""
    _declare(
        name = "rules_cc",
        files = {
            Label("//third_party:rules_cc.defs.bzl"): "cc/defs.bzl",
            Label("//third_party:empty.BUILD"): "BUILD",
            Label("//third_party:rules_cc.cc.BUILD"): "cc/BUILD",
        },
    )
    _declare(
        name = "rules_java",
        files = {
            Label("//third_party:rules_java.defs.bzl"): "java/defs.bzl",
            Label("//third_party:empty.BUILD"): "BUILD",
            Label("//third_party:rules_cc.cc.BUILD"): "java/BUILD",
        },
    )
    _declare(
        name = "remote_coverage_tools",
        files = {Label("//third_party:remote_coverage_tools.BUILD"): "BUILD"},
    )
    _declare(
        name = "com_google_absl",
        package = "libabsl-dev",
        requires = ["/usr/include/absl/base/config.h"],
        files = {
            Label("//third_party:empty.BUILD"): "BUILD",
            Label("//third_party:absl_base.BUILD"): "absl/base/BUILD",
            Label("//third_party:absl_synchronization.BUILD"): "absl/synchronization/BUILD",
            Label("//third_party:absl_strings.BUILD"): "absl/strings/BUILD",
            Label("//third_party:absl_time.BUILD"): "absl/time/BUILD",
            Label("//third_party:absl_random.BUILD"): "absl/random/BUILD",
        },
    )
    _declare(
        name = "com_google_googletest",
        package = "libgtest-dev and libgmock-dev",
        requires = [
            "/usr/include/gtest/gtest.h",
            "/usr/include/gmock/gmock.h",
        ],
        files = {Label("//third_party:googletest.BUILD"): "BUILD"},
    )
    _declare(
        name = "com_github_google_benchmark",
        package = "libbenchmark-dev",
        requires = ["/usr/include/benchmark/benchmark.h"],
        files = {Label("//third_party:benchmark.BUILD"): "BUILD"},
    )
