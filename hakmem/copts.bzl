"""Compiler flags for hakmem, in one place.

HAKMEM_COPTS      our library code: warnings are errors.
HAKMEM_TEST_COPTS tests and benchmarks: the same warnings, minus the ones gtest and
                  benchmark macros trip.
"""

_WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
]

HAKMEM_COPTS = _WARNINGS + [
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
]

HAKMEM_TEST_COPTS = _WARNINGS + [
    "-Wno-sign-compare",
    "-Wno-dangling-else",  # gtest ASSERT_* inside an unbraced if
    # Tests call malloc/free with sizes and pointers the compiler can see through;
    # they must reach the allocator, not be folded away.
    "-fno-builtin",
]

# wrappers defines operator new, which must be able to throw std::bad_alloc.
HAKMEM_WRAPPER_COPTS = [flag for flag in HAKMEM_COPTS if flag != "-fno-exceptions"]
