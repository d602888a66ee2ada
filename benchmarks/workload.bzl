"""hakmem_workload: one benchmark workload, built twice.

`<name>` uses whatever malloc the process finds (the C library's, or one put under it
with LD_PRELOAD; tools/compare.py runs it so). `<name>_hakmem` is linked with
//hakmem:malloc (tools/ab.py builds it with different --define flags).
"""

load("//hakmem:copts.bzl", "HAKMEM_TEST_COPTS")

def hakmem_workload(name, srcs, deps = [], **kwargs):
    """Declares cc_binary `name` and `name`_hakmem from the same sources.

    Args:
      name: the plain binary's name; the other is name + "_hakmem".
      srcs: its sources.
      deps: libraries beyond //benchmarks:bench_util, which both get.
      **kwargs: passed on to both cc_binary rules.
    """
    for suffix, malloc in [("", None), ("_hakmem", "//hakmem:malloc")]:
        native.cc_binary(
            name = name + suffix,
            srcs = srcs,
            copts = HAKMEM_TEST_COPTS,
            linkopts = ["-pthread"],
            malloc = malloc,
            deps = deps + ["//benchmarks:bench_util"],
            **kwargs
        )
