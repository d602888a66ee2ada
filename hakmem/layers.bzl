"""The layer order of hakmem's boxes (see ARCHITECTURE.md), lowest first.

A box is visible only to the boxes above it, to the public targets in //hakmem, and
to tests and benchmarks, so a dependency that points upwards fails at analysis time.
"""

HAKMEM_LAYERS = [
    "platform",
    "config",
    "stats",
    "profiler",
    "size_class",
    "registry",
    "huge",
    "superslab",
    "remote_queue",
    "ace",
    "heap",
    "tiny_tls",
    "pool_tls",
    "thread_cache",
    "free_dispatch",
    "core",
    "wrappers",
]

def visible_above(box):
    """Visibility of `box`: every box above it, plus tests and benchmarks."""
    index = HAKMEM_LAYERS.index(box)
    return ["//hakmem/%s:__pkg__" % above for above in HAKMEM_LAYERS[index + 1:]] + [
        "//hakmem:__pkg__",
        "//hakmem/tests:__pkg__",
        "//benchmarks:__subpackages__",
    ]
