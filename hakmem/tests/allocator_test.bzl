"""allocator_test: one test source, run against hakmem and (optionally) glibc.

`allocator_test(name = "x_test", ...)` declares

  x_test        linked with `malloc = "//hakmem:malloc"`: malloc, free, new, delete
                and the rest are hakmem's. Tagged `no_sanitizer` (a sanitizer
                brings its own allocator). Compiled with HAKMEM_TEST_LINKS_HAKMEM=1,
                which turns on the few checks that only hold for hakmem (its
                statistics, its invalid-free reports).
  x_test_<flag>_<value>  x_test under each non-default build flag value
                (hakmem/config/variants.bzl), unless x_test is tagged `slow`.
  x_glibc_test  (with `glibc_reference = True`) the same source against the C
                library's allocator. It shows that the test itself is right: every
                check that is not hakmem-specific must pass with glibc too. Tagged
                `no_sanitizer` too unless `glibc_under_sanitizers = True` (a
                sanitizer's allocator aborts on impossible sizes and its quarantine
                grows RSS; the thread-handoff stress test is the one meant to run
                under --config=tsan and asan).
  x_profiled_test  (with `profiled = True`) the hakmem variant with the heap
                profiler on, sampling every 4 KiB on average (thread caches
                uncached, every free and many allocations through the profiler's
                paths). Tagged `slow` (no flag variants).
"""

load("//hakmem:box.bzl", "hakmem_test")
load("//hakmem:copts.bzl", "HAKMEM_TEST_COPTS")

def allocator_test(
        name,
        srcs,
        deps = [],
        hakmem_deps = [],
        glibc_reference = False,
        glibc_under_sanitizers = False,
        profiled = False,
        tags = [],
        **kwargs):
    """Declares `name` (hakmem) and optionally `<stem>_glibc_test` (the C library).

    Args:
      name: the test's name; must end in "_test".
      srcs: the test's sources.
      deps: dependencies of both variants (GoogleTest included).
      hakmem_deps: extra dependencies of the hakmem variant only (e.g. the
        //hakmem:hakmem API for hak_get_stats).
      glibc_reference: also declare the variant that uses the C library's malloc.
      glibc_under_sanitizers: the glibc variant may run under --config=asan/tsan.
      profiled: also declare `<stem>_profiled_test`, the hakmem variant with the
        heap profiler on.
      tags: tags of both variants.
      **kwargs: passed to both cc_test rules (size, timeout, shard_count, ...).
    """
    if not name.endswith("_test"):
        fail("allocator_test name must end in _test: " + name)
    # The cc_test and its flag variants (hakmem/box.bzl).
    hakmem_test(
        name = name,
        srcs = srcs,
        local_defines = ["HAKMEM_TEST_LINKS_HAKMEM=1"],
        # The allocator under test replaces malloc/free/new/delete of the whole
        # binary, GoogleTest included.
        malloc = "//hakmem:malloc",
        deps = deps + hakmem_deps,
        tags = tags + ["no_sanitizer"],
        **kwargs
    )
    stem = name[:-len("_test")]
    if profiled:
        env = dict(kwargs.get("env", {}))
        env["HAKMEM_HEAP_PROFILE"] = stem + "_profiled"
        env["HAKMEM_HEAP_PROFILE_RATE"] = "4096"
        native.cc_test(
            name = stem + "_profiled_test",
            srcs = srcs,
            copts = HAKMEM_TEST_COPTS,
            local_defines = ["HAKMEM_TEST_LINKS_HAKMEM=1"],
            malloc = "//hakmem:malloc",
            deps = deps + hakmem_deps,
            env = env,
            tags = tags + ["no_sanitizer", "slow"],
            **{k: v for k, v in kwargs.items() if k != "env"}
        )
    if glibc_reference:
        native.cc_test(
            name = stem + "_glibc_test",
            srcs = srcs,
            copts = HAKMEM_TEST_COPTS,
            deps = deps,
            tags = tags + ([] if glibc_under_sanitizers else ["no_sanitizer"]),
            **kwargs
        )
