"""hakmem_shared_library: the LD_PRELOAD shared object.

Bazel 4.2.3 has no cc_shared_library; cc_binary(linkshared = True) builds a shared
object that works with LD_PRELOAD. Where a newer Bazel provides
native.cc_shared_library the same macro could use it; the cc_binary form is kept
for both because it needs no exports list to carry every malloc symbol.
"""

def hakmem_shared_library(name, deps, visibility = None):
    native.cc_binary(
        name = name,
        linkshared = True,
        linkstatic = True,
        # Every allocation function must be exported and bound to our own
        # definitions, also for calls from inside the object.
        # GNU ld (bfd), not the gold Bazel's auto-configured toolchain picks: gold
        # puts every initial-exec thread-local the object refers to into the
        # dynamic symbol table (as a local entry its TPOFF relocations name), so
        # hakmem::tls_heap & co showed up in `nm -D`; bfd resolves them at link
        # time. bfd has no --start-lib, hence the feature off. The last -fuse-ld
        # given wins, with gcc and clang alike.
        linkopts = [
            "-fuse-ld=bfd",
            "-Wl,-Bsymbolic-functions",
            "-Wl,-z,nodelete",
            # No C++ runtime unless something needs one (hakmem/wrappers/wrappers.cc).
            "-Wl,--as-needed",
        ],
        features = ["-supports_start_end_lib"],
        deps = deps,
        visibility = visibility,
    )
