"""Compiler flags for hakmem, in one place.

Every hakmem target carries the flags it needs to compile in its own `copts`, so a
project that depends on hakmem (README: three WORKSPACE lines) sets no flag of its
own: a `.bazelrc` does not travel with an external repository, and Bazel 4.2.3
compiles C++ as `-std=c++0x` unless told otherwise.

Strictness is hakmem's own business: `-Werror` is in hakmem's `.bazelrc` (and so in
its CI), never here, so a newer compiler's new warning cannot break a consumer.

HAKMEM_COPTS         library code.
HAKMEM_WRAPPER_COPTS the wrappers (operator new must be able to throw).
HAKMEM_TEST_COPTS    tests and benchmarks: the same warnings, minus the ones gtest
                     and benchmark macros trip.
"""

# What the code needs, with gcc 12 and clang 14 alike.
_LANGUAGE = [
    # Inline variables, if constexpr, nested namespaces; abseil and GoogleTest from
    # /usr need C++14 at least.
    "-std=c++17",
    # A sized delete reaches operator delete(void*, size_t), as with gcc: clang 14
    # leaves sized deallocation off by default (and the tests call it by name).
    "-fsized-deallocation",
]

# Warnings are shown to everyone; hakmem's .bazelrc turns them into errors.
_WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
]

# Sanitizer flags that depend on the compiler. The sanitizer configs themselves
# are in hakmem's .bazelrc (--config=asan/tsan/ubsan); a select() here because a
# .bazelrc cannot tell gcc from clang, and gcc rejects these flags.
_SANITIZER = select({
    # clang 14's -fsanitize=undefined adds the function and vptr checks (gcc has
    # no function check, and no vptr check where RTTI is off, as in hakmem's own
    # code), whose handlers are in the C++ part of the ubsan runtime, which
    # clang's C driver (Bazel links with `clang`, not clang++) does not link.
    "//hakmem/config:clang_ubsan": ["-fno-sanitize=function,vptr"],
    "//conditions:default": [],
})

_LIBRARY = [
    # The allocator runs inside other programs: no exceptions, no RTTI, no
    # calls the compiler might turn back into malloc (e.g. a memset+malloc
    # pattern recognised as calloc inside calloc itself).
    "-fno-exceptions",
    "-fno-rtti",
    "-fno-builtin-malloc",
    "-fno-builtin-calloc",
    "-fno-builtin-free",
    "-fno-builtin-realloc",
    # Thread-locals of the fast path are addressed %fs-relative, also in the .so.
    "-ftls-model=initial-exec",
    "-fno-plt",
    "-fno-semantic-interposition",
    # Only malloc & co and the hak_* API are exported (HAKMEM_EXPORT, HAK_API):
    # internal tables and globals are reached PC-relative, not through the GOT.
    "-fvisibility=hidden",
    # Inline member functions too, the library's own (std::bad_alloc's
    # constructor, say) included: emitted out of line (-O0, sanitizers), they
    # would otherwise be exported as weak symbols.
    "-fvisibility-inlines-hidden",
]

# Code generation of the fast paths. gcc 12's -O2 merges a free's two stores into a
# block (its link and its freed-block tag) into one vector store built from two
# scalars: four instructions for two, and a trip through the vector unit.
# With clang, the thread-safety analysis. clang 14 writes DWARF 5 where it writes debug information, which Debian's
# valgrind 3.19 cannot read (it gives up on the whole library): DWARF 4 keeps
# callgrind and memcheck usable on a program linked with hakmem, without turning
# debug information on where it is off. (Bazel's auto-configured gcc toolchain
# names its compiler "compiler", so gcc is the default branch.)
_CODEGEN = select({
    "//hakmem/config:clang": [
        "-fdebug-default-version=4",
        # The locked globals are ABSL_GUARDED_BY their lock (platform/spin_lock.h):
        # every clang build checks that they are touched only with it held.
        "-Wthread-safety",
    ],
    "//conditions:default": ["-fno-tree-slp-vectorize"],
})

# An allocator compiled at -O0 is several times slower on every malloc: Bazel's
# default mode (fastbuild, what a consumer that sets no -c builds in) gets -O2 for
# hakmem's own code; -c opt keeps the toolchain's flags, and -c dbg stays a debug
# build (-O0 -g) for whoever asks for one. hak_build_info() says which one linked.
_OPTIMIZE = select({
    "//hakmem/config:fastbuild": ["-O2"],
    "//conditions:default": [],
})

HAKMEM_COPTS = _LANGUAGE + _WARNINGS + _LIBRARY + _CODEGEN + _SANITIZER + _OPTIMIZE

HAKMEM_TEST_COPTS = _LANGUAGE + _WARNINGS + [
    "-Wno-sign-compare",
    "-Wno-dangling-else",  # gtest ASSERT_* inside an unbraced if
    # Tests call malloc/free with sizes and pointers the compiler can see through;
    # they must reach the allocator, not be folded away.
    "-fno-builtin",
] + _SANITIZER

# wrappers defines operator new, which throws std::bad_alloc through the C++
# runtime's own thrower (wrappers.cc): it needs no exceptions or RTTI of its own,
# so libhakmem.so references no typeinfo and links no C++ runtime.
HAKMEM_WRAPPER_COPTS = HAKMEM_COPTS
