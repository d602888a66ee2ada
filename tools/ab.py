#!/usr/bin/env python3
"""A/B of two builds of one workload that differ by Bazel flags.

Builds //benchmarks:<workload>_hakmem (linked with //hakmem:malloc) once with the A
flags and once with the B flags (`bazel build -c opt FLAGS`), copies each binary
out of bazel-bin before the next build overwrites it, runs them interleaved
(A B A B ...) and prints the median ops/s of each, B's difference in percent and
the spread.

    tools/ab.py --b "--define hakmem_remote_queue=mutex"
    tools/ab.py --a "" --b "--define hakmem_pool_tls=off" --workload mid_large_mt -- 2 200000 2048 42
    tools/ab.py --plain --b "--copt=-O2"      # the plain binary (C library malloc)
    tools/ab.py --plain                       # A against A: the noise floor

Arguments after `--` go to the workload (default: its own defaults).
"""

import argparse
import filecmp
import shlex
import sys
import tempfile
from pathlib import Path

import benchlib
from benchlib import BenchError, human, log, mib


def parse_args(argv):
    workload_args = []
    if "--" in argv:
        cut = argv.index("--")
        argv, workload_args = argv[:cut], argv[cut + 1:]
    # "--b --copt=-O2" would read as two options; glue a flag to its value.
    glued = []
    for arg in argv:
        if glued and glued[-1] in ("--a", "--b"):
            glued[-1] += "=" + arg
        else:
            glued.append(arg)
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", default="", help="Bazel flags of build A (default: none)")
    p.add_argument("--b", default="", help="Bazel flags of build B (default: none)")
    p.add_argument("--workload", default="mid_large_mt", choices=benchlib.WORKLOADS,
                   help="default %(default)s")
    p.add_argument("--reps", type=int, default=7, help="runs of each build (default %(default)s)")
    p.add_argument("--plain", action="store_true",
                   help="build //benchmarks:<workload> (C library malloc) instead of <workload>_hakmem")
    p.add_argument("--timeout", type=float, default=300, help="seconds per run (default %(default)s)")
    args = p.parse_args(glued)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    args.workload_args = workload_args
    return args


def build_variants(args, tmp):
    """Builds A then B; returns the copied binaries, A's first."""
    target = f"//benchmarks:{args.workload}" + ("" if args.plain else "_hakmem")
    if not args.plain and not benchlib.target_exists("//hakmem:malloc"):
        raise BenchError(f"{target} links //hakmem:malloc, which does not exist yet; "
                         "use --plain to A/B the plain workload")
    binaries = []
    for name, flags in (("A", args.a), ("B", args.b)):
        bin_dir = benchlib.build([target], flags)
        dest = Path(tmp) / name
        dest.mkdir()
        binaries.append(benchlib.copy_out(bin_dir, "benchmarks/" + target.split(":")[1], dest))
    if args.a != args.b and filecmp.cmp(*binaries, shallow=False):
        log("note: A and B built byte-identical binaries: the flags change nothing here")
    if args.b:
        log(f"note: bazel-bin now holds the B build ({args.b})")
    return binaries


def main():
    args = parse_args(sys.argv[1:])
    variants = {"A": args.a, "B": args.b}
    expect = None if args.plain else "exe"
    results = {"A": [], "B": []}
    failures = []
    with tempfile.TemporaryDirectory(prefix="hakmem-ab-") as tmp:
        try:
            binaries = dict(zip(variants, build_variants(args, tmp)))
        except (BenchError, OSError) as e:
            log(f"error: {e}")
            return 2
        for rep in range(1, args.reps + 1):
            for name, binary in binaries.items():
                label = f"{args.workload} build {name} ({variants[name] or 'no flags'})"
                try:
                    r = benchlib.run_workload([binary, *args.workload_args], label,
                                              expect_malloc=expect, timeout=args.timeout)
                except BenchError as e:
                    failures.append(str(e))
                    continue
                results[name].append(r)
                log(f"rep {rep}/{args.reps} {name}: {human(r['ops_per_sec'])} ops/s")
    if failures:
        log(f"{len(failures)} run(s) failed:")
        for f in failures:
            log(f"- {f}")
        return 1

    print(f"workload: {args.workload} {shlex.join(args.workload_args) or '(defaults)'} "
          f"[args={results['A'][0]['args']}], {args.reps} reps each, interleaved")
    medians = {}
    for name, runs in results.items():
        med, lo, hi = benchlib.spread([r["ops_per_sec"] for r in runs])
        rss = benchlib.spread([r["peak_rss_kb"] for r in runs])[0]
        medians[name] = (med, (hi - lo) / med)
        print(f"{name}: {human(med):>7} ops/s  min-max {human(lo)}-{human(hi)} "
              f"(spread {100 * (hi - lo) / med:.1f}%)  peak RSS {mib(rss)}  "
              f"flags: {variants[name] or '(none)'}")
    (a, a_spread), (b, b_spread) = medians["A"], medians["B"]
    diff = (b - a) / a
    verdict = "within the spread: noise" if abs(diff) <= max(a_spread, b_spread) else "beyond the spread"
    print(f"B vs A: {100 * diff:+.1f}% ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
