#!/usr/bin/env python3
"""Compares hakmem with glibc, mimalloc, jemalloc and tcmalloc on the workloads of
//benchmarks, and prints a table and writes CSV, JSON and a chart.

Builds the plain workloads (and //hakmem:libhakmem.so when it exists), runs every
workload under every allocator (LD_PRELOAD) several times, interleaved so drift on
the machine hits all alike, and reports per workload and allocator the median ops/s,
its ratio to the best peer (the median of per-rep ratios), the spread and the peak
RSS.

    tools/compare.py                      # the full suite, 5 reps (about 4 minutes)
    tools/compare.py --quick              # small arguments, 2 reps (CI, under 1 minute)
    tools/compare.py --workloads larson,cross_thread --allocators glibc,hakmem --strace

Exits non-zero when a run crashes, prints no RESULT line or runs on the wrong malloc.
"""

import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from benchlib import BenchError, human, log, mib

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = {
    "glibc": None,
    "mimalloc": f"{LIBDIR}/libmimalloc.so.2",
    "jemalloc": f"{LIBDIR}/libjemalloc.so.2",
    "tcmalloc": f"{LIBDIR}/libtcmalloc_minimal.so.4",
}
ALLOCATORS = [*PEERS, "hakmem"]
HAKMEM_SO = "//hakmem:libhakmem.so"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default=",".join(benchlib.WORKLOADS),
                   help="comma-separated (default: all): %(default)s")
    p.add_argument("--allocators", default=",".join(ALLOCATORS),
                   help="comma-separated (default: all): %(default)s")
    p.add_argument("--reps", type=int, help="runs per workload and allocator (default 5; 2 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="small arguments and 2 reps: a smoke run for CI")
    p.add_argument("--out", default=str(benchlib.REPO / "results"),
                   help="directory for results.csv/.json, table.txt, chart.png (default %(default)s)")
    p.add_argument("--strace", action="store_true",
                   help="one more run per workload and allocator under strace -f -c: "
                        "counts of " + ", ".join(benchlib.STRACE_SYSCALLS))
    p.add_argument("--timeout", type=float, default=300, help="seconds per run (default %(default)s)")
    p.add_argument("--no-build", action="store_true",
                   help="use what bazel-bin holds now instead of building")
    args = p.parse_args()
    args.workloads = _pick(p, "workload", args.workloads, benchlib.WORKLOADS)
    args.allocators = _pick(p, "allocator", args.allocators, ALLOCATORS)
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def _pick(parser, what, text, known):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        parser.error(f"unknown {what} {', '.join(unknown) or '(none given)'}; "
                     f"known: {', '.join(known)}")
    return names


def have_matplotlib():
    """True if matplotlib imports. A python3 first on PATH without it (pyenv, a venv)
    hands over to the system one, which tools/setup.sh gives matplotlib."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    system = "/usr/bin/python3"
    if (os.path.realpath(system) != os.path.realpath(sys.executable) and os.access(system, os.X_OK)
            and subprocess.run([system, "-c", "import matplotlib"], stderr=subprocess.DEVNULL).returncode == 0):
        log(f"note: {sys.executable} has no matplotlib; running under {system}")
        os.execv(system, [system, *sys.argv])
    log("note: matplotlib is missing (tools/setup.sh installs python3-matplotlib): no chart")
    return False


def available_allocators(wanted):
    """{name: LD_PRELOAD path or None}; missing ones are reported and dropped."""
    chosen = {}
    for name in wanted:
        if name == "hakmem":
            if benchlib.target_exists(HAKMEM_SO):
                chosen[name] = HAKMEM_SO
            else:
                log(f"note: {HAKMEM_SO} does not exist yet: no hakmem rows")
        elif PEERS[name] is None or os.path.exists(PEERS[name]):
            chosen[name] = PEERS[name]
        else:
            log(f"note: {name} is missing ({PEERS[name]}); tools/setup.sh installs it")
    return chosen


def build_and_copy(args, allocators, tmp):
    """Builds and copies the workloads (and libhakmem.so) into TMP, out of reach of
    later builds on the shared Bazel server. Returns ({workload: command line},
    {allocator: LD_PRELOAD path or None})."""
    targets = [f"//benchmarks:{w}" for w in args.workloads]
    if "hakmem" in allocators:
        targets.append(HAKMEM_SO)
    bin_dir = benchlib.REPO / "bazel-bin" if args.no_build else benchlib.build(targets)
    commands = {}
    for w in args.workloads:
        extra = shlex.split(benchlib.QUICK_ARGS[w]) if args.quick else []
        commands[w] = [benchlib.copy_out(bin_dir, f"benchmarks/{w}", tmp), *extra]
    preloads = dict(allocators)
    if "hakmem" in preloads:
        preloads["hakmem"] = benchlib.copy_out(bin_dir, "hakmem/libhakmem.so", tmp)
    return commands, preloads


def run_under(alloc, preload, workload, command, timeout, strace_to=None):
    """One run of COMMAND with PRELOAD, checked to be served by that allocator."""
    label = f"{workload} under {alloc}" + (" (strace)" if strace_to else "")
    expect = Path(preload).name if preload else "libc.so.6"
    return benchlib.run_workload(command, label, preload, expect, timeout, strace_to)


def run_suite(args, commands, preloads):
    """Runs reps x workloads x allocators, the allocator innermost. Returns (runs,
    failures); a pair that failed once is not run again."""
    runs, failures, broken = [], [], set()
    total = args.reps * len(commands) * len(preloads)
    n = 0
    for rep in range(1, args.reps + 1):
        for workload, command in commands.items():
            for alloc, preload in preloads.items():
                n += 1
                if (workload, alloc) in broken:
                    continue
                progress = f"[{n:3}/{total}] rep {rep}/{args.reps} {workload:14} {alloc:9}"
                start = time.monotonic()
                try:
                    result = run_under(alloc, preload, workload, command, args.timeout)
                except BenchError as e:
                    log(f"{progress} FAILED")
                    failures.append(str(e))
                    broken.add((workload, alloc))
                    continue
                log(f"{progress} {human(result['ops_per_sec']):>7} ops/s  "
                    f"{time.monotonic() - start:5.1f} s")
                runs.append({"workload": workload, "allocator": alloc, "rep": rep, **result})
    return runs, failures


def run_strace(args, commands, preloads, tmp):
    """One run per workload and allocator under strace. Returns ({(workload,
    allocator): syscall counts}, failures)."""
    counts, failures = {}, []
    for workload, command in commands.items():
        for alloc, preload in preloads.items():
            out = Path(tmp) / f"strace-{workload}-{alloc}.txt"
            log(f"strace: {workload} under {alloc}")
            try:
                # strace -f slows threaded workloads many times over.
                run_under(alloc, preload, workload, command, args.timeout * 4, out)
                counts[(workload, alloc)] = benchlib.parse_strace_summary(out)
            except BenchError as e:
                failures.append(str(e))
    return counts, failures


def summarize(runs, workloads, allocators):
    """One row per (workload, allocator) that has runs: median ops/s and its spread,
    median RSS, and the throughput relative to the best peer (every allocator but
    hakmem; the best of all when no peer ran)."""
    rows = []
    for workload in workloads:
        group = []
        for alloc in allocators:
            mine = [r for r in runs if r["workload"] == workload and r["allocator"] == alloc]
            if not mine:
                continue
            med, lo, hi = benchlib.spread([r["ops_per_sec"] for r in mine])
            row = {"workload": workload, "allocator": alloc, "reps": len(mine),
                   "ops_per_sec": med, "min": lo, "max": hi,
                   "peak_rss_kb": benchlib.spread([r["peak_rss_kb"] for r in mine])[0],
                   "args": mine[0]["args"]}
            for key in ("final_rss_kb", "live_bytes"):
                if key in mine[0]:
                    row[key] = benchlib.spread([r[key] for r in mine])[0]
            group.append((row, {r["rep"]: r["ops_per_sec"] for r in mine}))
        peers = [g for g in group if g[0]["allocator"] != "hakmem"]
        best_row, best_reps = max(peers or group, key=lambda g: g[0]["ops_per_sec"], default=(None, {}))
        for row, reps in group:
            # Ratios are paired within a rep: drift between reps hits both alike.
            ratios = [ops / best_reps[rep] for rep, ops in reps.items() if rep in best_reps]
            row["relative"] = benchlib.spread(ratios) if ratios else None
            row["vs_best_peer"] = row["relative"][0] if peers and ratios else None
            rows.append(row)
    return rows


def format_table(rows, strace):
    head = ["workload", "allocator", "ops/s", "min-max", "spread", "vs best peer", "peak RSS"]
    if strace:
        head += benchlib.STRACE_SYSCALLS
    head.append("note")
    lines = [head]
    previous = None
    for r in rows:
        line = [r["workload"] if r["workload"] != previous else "", r["allocator"],
                human(r["ops_per_sec"]), f"{human(r['min'])}-{human(r['max'])}",
                f"{100 * (r['max'] - r['min']) / r['ops_per_sec']:.0f}%",
                f"{r['vs_best_peer']:.2f}x" if r["vs_best_peer"] else "-",
                mib(r["peak_rss_kb"])]
        if strace:
            counts = strace.get((r["workload"], r["allocator"]))
            line += [str(counts[s]) if counts else "-" for s in benchlib.STRACE_SYSCALLS]
        line.append(f"final {mib(r['final_rss_kb'])} for {mib(r['live_bytes'] / 1024)} live"
                    if "final_rss_kb" in r else "")
        lines.append(line)
        previous = r["workload"]
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    numeric = set(range(2, len(head) - 1))
    text = ["  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                      for i, (c, w) in enumerate(zip(l, widths))).rstrip() for l in lines]
    text.insert(1, "-" * len(text[0]))
    ratios = [r["vs_best_peer"] for r in rows if r["allocator"] == "hakmem" and r["vs_best_peer"]]
    if ratios:
        text.append(f"\nhakmem vs the best peer, geometric mean over {len(ratios)} workloads: "
                    f"{statistics.geometric_mean(ratios):.2f}x")
    return "\n".join(text) + "\n"


def write_files(out, args, runs, rows, strace, failures, table, chart):
    out.mkdir(parents=True, exist_ok=True)
    keys = []
    for r in runs:
        keys += [k for k in r if k not in keys]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(runs)
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
            "kernel": platform.release(), "cpus": os.cpu_count(), "quick": args.quick,
            "reps": args.reps, "git": _git_revision()}
    report = {"meta": meta, "runs": runs, "summary": rows, "failures": failures,
              "strace": [{"workload": w, "allocator": a, **c} for (w, a), c in strace.items()]}
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "table.txt").write_text(table)
    if strace:
        with open(out / "strace.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["workload", "allocator", *benchlib.STRACE_SYSCALLS])
            writer.writeheader()
            writer.writerows(report["strace"])
    if chart:
        draw_chart(rows, out / "chart.png", meta)
    log(f"wrote {out}/results.csv, results.json, table.txt" + (", strace.csv" if strace else "")
        + (", chart.png" if chart else ""))


def _git_revision():
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=benchlib.REPO,
                          capture_output=True, text=True)
    return proc.stdout.strip() or None


def draw_chart(rows, path, meta):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    allocators = list(dict.fromkeys(r["allocator"] for r in rows))
    by_key = {(r["workload"], r["allocator"]): r for r in rows}
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.5))
    width = 0.8 / len(allocators)
    for i, alloc in enumerate(allocators):
        xs, rel, err, rss = [], [], [[], []], []
        for x, workload in enumerate(workloads):
            r = by_key.get((workload, alloc))
            if r is None or r["relative"] is None:
                continue
            # Relative, as ops/s differ by 10^5 between workloads.
            med, lo, hi = r["relative"]
            xs.append(x + (i - (len(allocators) - 1) / 2) * width)
            rel.append(med)
            err[0].append(med - lo)
            err[1].append(hi - med)
            rss.append(r["peak_rss_kb"] / 1024)
        left.bar(xs, rel, width, yerr=err, capsize=2, label=alloc)
        right.bar(xs, rss, width, label=alloc)
    left.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    left.set_title("Throughput / best peer, per rep (median, min-max; higher is better)")
    right.set_title("Peak RSS, MiB (median; lower is better)")
    right.set_yscale("log")
    for ax in (left, right):
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    left.legend(fontsize="small")
    fig.suptitle(f"hakmem and peers: {meta['reps']} reps{' (quick)' if meta['quick'] else ''}, "
                 f"{meta['cpus']} CPUs, {meta['date']}, git {meta['git']}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    args = parse_args()
    chart = have_matplotlib()
    try:
        allocators = available_allocators(args.allocators)
    except BenchError as e:
        log(f"error: {e}")
        return 2
    if not allocators:
        log("error: none of the allocators asked for is available")
        return 2
    with tempfile.TemporaryDirectory(prefix="hakmem-compare-") as tmp:
        try:
            commands, preloads = build_and_copy(args, allocators, tmp)
        except (BenchError, OSError) as e:
            log(f"error: {e}")
            return 2
        runs, failures = run_suite(args, commands, preloads)
        strace = {}
        if args.strace:
            if shutil.which("strace") is None:
                log("note: strace is missing (tools/setup.sh installs it): no syscall columns")
            else:
                strace, strace_failures = run_strace(args, commands, preloads, tmp)
                failures += strace_failures
    rows = summarize(runs, args.workloads, list(preloads))
    table = format_table(rows, strace)
    print(table, end="", flush=True)
    write_files(Path(args.out), args, runs, rows, strace, failures, table, chart)
    if failures:
        log(f"\n{len(failures)} run(s) failed:")
        for f in failures:
            log(f"- {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
