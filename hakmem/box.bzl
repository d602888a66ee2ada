"""The targets a hakmem box declares: its library, its tests, its benchmarks.

One component is foo.h, foo.cc, foo_test.cc and foo_benchmark.cc, declared as

  hakmem_box(name = "foo", ...)             the cc_library
  hakmem_test(name = "foo_test", ...)       the cc_test and its flag variants
  hakmem_benchmark(name = "foo_benchmark", ...)  the Google Benchmark binary

so what every box repeats (compiler flags, static linking, the flag variants) is
written here once. Visibility stays with each package's `default_visibility`
(hakmem/layers.bzl's `visible_above`), which enforces the layer order.
"""

load("//hakmem:copts.bzl", "HAKMEM_COPTS", "HAKMEM_TEST_COPTS")
load("//hakmem/config:variants.bzl", "flag_variant_tests")

def hakmem_box(name, copts = [], **kwargs):
    """A box's cc_library: hakmem's library flags, linked statically.

    Args:
      name: the library (the box's name, or a part of it).
      copts: flags beyond HAKMEM_COPTS.
      **kwargs: passed to cc_library (srcs, hdrs, deps, linkopts, ...).
    """
    native.cc_library(
        name = name,
        copts = HAKMEM_COPTS + copts,
        # Hidden visibility (-fvisibility=hidden): a box is never a shared object
        # of its own, only part of //hakmem:malloc and libhakmem.so.
        linkstatic = 1,
        **kwargs
    )

def hakmem_test(name, copts = [], tags = [], **kwargs):
    """A cc_test with the test flags, and its flag variants (config/variants.bzl).

    Args:
      name: the test.
      copts: flags beyond HAKMEM_TEST_COPTS.
      tags: the test's tags (`slow`: no flag variants).
      **kwargs: passed to cc_test (srcs, deps, env, args, size, ...).
    """
    native.cc_test(
        name = name,
        copts = HAKMEM_TEST_COPTS + copts,
        tags = tags,
        **kwargs
    )
    flag_variant_tests(name = name, tags = tags, **kwargs)

def hakmem_benchmark(name, deps = [], copts = [], **kwargs):
    """A Google Benchmark binary with the test flags.

    Args:
      name: the binary.
      deps: its dependencies; Google Benchmark is added.
      copts: flags beyond HAKMEM_TEST_COPTS.
      **kwargs: passed to cc_binary.
    """
    native.cc_binary(
        name = name,
        copts = HAKMEM_TEST_COPTS + copts,
        deps = deps + ["@com_github_google_benchmark//:benchmark"],
        **kwargs
    )
