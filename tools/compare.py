#!/usr/bin/env python3
"""Compares hakmem with glibc, mimalloc, jemalloc and tcmalloc on the workloads of
//benchmarks and on real programs (python3, lua5.4, sqlite3, redis-server, perl,
ruby, ghostscript, z3, g++), and
prints a table and writes CSV, JSON and a chart.

Builds the plain workloads (and //hakmem:libhakmem.so when it exists), runs every
workload under every allocator (LD_PRELOAD) several times, interleaved so drift on
the machine hits all alike, and reports per workload and allocator the median ops/s
(programs: the median time), its speed ratio to the best peer (the median of
per-rep ratios), the spread, the peak RSS and the minor page faults.

    tools/compare.py                      # the full suite, 5 reps (about 8 minutes)
    tools/compare.py --quick              # small arguments, 2 reps (CI, about a minute)
    tools/compare.py --workloads larson,cross_thread --allocators glibc,hakmem --strace
    tools/compare.py --workloads python,lua,sqlite,redis --reps 7
    tools/compare.py --allocators hakmem --baseline /tmp/old/libhakmem.so --reps 7
                                          # A/B of this build against another
                                          # build's libhakmem.so: the ratio is
                                          # this one's to that one's

Exits non-zero when a run crashes, prints no RESULT line, runs on the wrong malloc,
or when a program's output under an allocator differs from its output under glibc.
"""

import argparse
import csv
import difflib
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import benchlib
import programs
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
WORKLOADS = benchlib.WORKLOADS + list(programs.PROGRAMS)
# One more run of each of these under every allocator, its RSS read every 10 ms
# (rss_timeline.csv and .png): the benchmark that frees most of its heap and then
# goes quiet, and the real program whose peak RSS is furthest above the lowest
# peer's.
TIMELINE_WORKLOADS = ("fragmentation", "python_ast")


def is_program(workload):
    return workload in programs.PROGRAMS


def speed_metric(workload):
    """(the result field that ranks runs, whether higher is better)."""
    return ("seconds", False) if is_program(workload) else ("ops_per_sec", True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default=",".join(WORKLOADS),
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
                        "counts of " + ", ".join(benchlib.STRACE_SYSCALLS) + " (not for programs)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per run (default %(default)s)")
    p.add_argument("--no-build", action="store_true",
                   help="use what bazel-bin holds now instead of building")
    p.add_argument("--no-warmup", action="store_true",
                   help="no untimed run of each workload before its timed runs of each rep")
    p.add_argument("--no-timeline", action="store_true",
                   help="no extra run of " + " and ".join(TIMELINE_WORKLOADS) +
                        " per allocator with its RSS over time (rss_timeline.csv, .png)")
    p.add_argument("--baseline", metavar="LIBHAKMEM_SO",
                   help="also run this libhakmem.so (say, of another commit) as the allocator "
                        "'baseline', which counts as a peer: with --allocators hakmem, every "
                        "ratio is this build's to the baseline's")
    args = p.parse_args()
    args.workloads = _pick(p, "workload", args.workloads, WORKLOADS)
    args.allocators = _pick(p, "allocator", args.allocators, ALLOCATORS)
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if args.baseline is not None and not os.path.isfile(args.baseline):
        p.error(f"--baseline {args.baseline}: no such file")
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


def available_programs(workloads):
    """WORKLOADS without the programs that cannot run here, each reported."""
    kept = []
    for w in workloads:
        why = programs.missing(programs.PROGRAMS[w]) if is_program(w) else None
        if why:
            log(f"note: {why}: no {w} rows")
        else:
            kept.append(w)
    return kept


@dataclass
class Plan:
    """What the suite runs: each benchmark's command line, each program's size, the
    allocators' LD_PRELOAD paths (None: glibc), and for programs the launcher and a
    folder to run in."""
    commands: dict
    sizes: dict
    preloads: dict
    launcher: Path = None
    workdir: Path = None


def build_and_copy(args, allocators, tmp):
    """Builds and copies the workloads, the programs' launcher and libhakmem.so into
    TMP, out of reach of later builds on the shared Bazel server."""
    benchmarks = [w for w in args.workloads if not is_program(w)]
    targets = [f"//benchmarks:{w}" for w in benchmarks]
    if len(benchmarks) < len(args.workloads):
        targets.append(programs.LAUNCHER)
    if "hakmem" in allocators:
        targets.append(HAKMEM_SO)
    bin_dir = benchlib.REPO / "bazel-bin" if args.no_build else benchlib.build(targets)
    plan = Plan(commands={}, sizes={}, preloads=dict(allocators))
    for w in args.workloads:
        if is_program(w):
            program = programs.PROGRAMS[w]
            plan.sizes[w] = program.quick_size if args.quick else program.full_size
        else:
            extra = shlex.split(benchlib.QUICK_ARGS[w]) if args.quick else []
            plan.commands[w] = [benchlib.copy_out(bin_dir, f"benchmarks/{w}", tmp), *extra]
    if plan.sizes:
        plan.launcher = benchlib.copy_out(bin_dir, "benchmarks/run_measured", tmp)
        plan.workdir = Path(tmp) / "programs"
        plan.workdir.mkdir()
    if "hakmem" in plan.preloads:
        benchlib.check_not_sanitized(Path(bin_dir) / "hakmem/libhakmem.so")
        plan.preloads["hakmem"] = benchlib.copy_out(bin_dir, "hakmem/libhakmem.so", tmp)
    if args.baseline is not None:
        # Its own folder: both objects keep the name libhakmem.so, which is what
        # the check of the malloc that served a run looks for.
        folder = Path(tmp) / "baseline"
        folder.mkdir()
        benchlib.check_not_sanitized(args.baseline)
        plan.preloads["baseline"] = folder / "libhakmem.so"
        shutil.copyfile(args.baseline, plan.preloads["baseline"])
    return plan


def run_under(alloc, preload, workload, command, timeout, strace_to=None, on_start=None):
    """One run of COMMAND with PRELOAD, checked to be served by that allocator.
    ON_START: see benchlib.run_workload."""
    label = f"{workload} under {alloc}" + (" (strace)" if strace_to else "")
    expect = Path(preload).name if preload else "libc.so.6"
    return benchlib.run_workload(command, label, preload, expect, timeout, strace_to, on_start)


def check_program_bindings(plan):
    """Checks that each program's malloc binds to each allocator. Returns
    (failures, the (program, allocator) pairs that failed)."""
    failures, broken = [], set()
    for workload in plan.sizes:
        for alloc, preload in plan.preloads.items():
            try:
                programs.check_malloc_binding(programs.PROGRAMS[workload], alloc, preload,
                                              plan.workdir)
            except BenchError as e:
                failures.append(str(e))
                broken.add((workload, alloc))
    return failures, broken


def rotated(items, rep):
    """ITEMS (a list) starting at its (rep - 1)-th element, modulo its length."""
    k = (rep - 1) % len(items)
    return items[k:] + items[:k]


def run_once(args, plan, workload, alloc, preload, on_start=None):
    """One run of WORKLOAD under ALLOC: (its result, its stdout for a program,
    else None). Raises BenchError. ON_START, if given, is called with the started
    process (a program's: its launcher, whose one child is the program)."""
    if is_program(workload):
        return programs.run(programs.PROGRAMS[workload], alloc, preload, plan.sizes[workload],
                            plan.launcher, plan.workdir, args.timeout, on_start=on_start)
    return run_under(alloc, preload, workload, plan.commands[workload], args.timeout,
                     on_start=on_start), None


def warm_up(args, plan, workload, alloc, preload):
    """One untimed run of WORKLOAD; its result and any failure are dropped (the
    timed runs report them)."""
    try:
        run_once(args, plan, workload, alloc, preload)
    except BenchError:
        pass


def run_suite(args, plan):
    """Runs reps x workloads x allocators, the allocator innermost, its order
    rotated by one each rep, after one untimed run of the workload: the run right
    after another workload pays for what that one left behind (memory to compact
    into huge pages, caches to refill: large_huge and fragmentation ran 5 to 10
    times slower first than second, whichever allocator ran first), and a fixed
    order would charge what is left to the same allocator every rep. Returns
    (runs, outputs, failures): outputs maps (program, allocator) to {rep: its
    stdout}. A pair that failed once is not run again."""
    failures, broken = check_program_bindings(plan)
    runs, outputs = [], {}
    total = args.reps * len(args.workloads) * len(plan.preloads)
    n = 0
    for rep in range(1, args.reps + 1):
        for workload in args.workloads:
            order = rotated(list(plan.preloads.items()), rep)
            if not args.no_warmup:
                warm_up(args, plan, workload, *order[0])
            for alloc, preload in order:
                n += 1
                if (workload, alloc) in broken:
                    continue
                progress = f"[{n:3}/{total}] rep {rep}/{args.reps} {workload:14} {alloc:9}"
                start = time.monotonic()
                try:
                    result, output = run_once(args, plan, workload, alloc, preload)
                    if output is not None:
                        result["output_sha256"] = hashlib.sha256(output.encode()).hexdigest()[:16]
                        outputs.setdefault((workload, alloc), {})[rep] = output
                        shown = f"{result['seconds']:7.3f} s"
                    else:
                        shown = f"{human(result['ops_per_sec']):>7} ops/s"
                except BenchError as e:
                    log(f"{progress} FAILED")
                    failures.append(str(e))
                    broken.add((workload, alloc))
                    continue
                log(f"{progress} {shown}  {time.monotonic() - start:5.1f} s")
                runs.append({"workload": workload, "allocator": alloc, "rep": rep, **result})
    return runs, outputs, failures


def run_timelines(args, plan):
    """One run of each of TIMELINE_WORKLOADS that this run includes, under every
    allocator, with the workload's RSS sampled every 10 ms. Returns (timelines,
    failures): timelines maps (workload, allocator) to [(seconds, KiB)]."""
    timelines, failures = {}, []
    for workload in (w for w in TIMELINE_WORKLOADS if w in args.workloads):
        for alloc, preload in plan.preloads.items():
            samplers = []

            def on_start(process, child=is_program(workload)):
                samplers.append(benchlib.RssSampler(process.pid, child=child).start())

            try:
                run_once(args, plan, workload, alloc, preload, on_start=on_start)
            except BenchError as e:
                failures.append(str(e))
                continue
            finally:
                samples = [sample for sampler in samplers for sample in sampler.stop()]
            if not samples:
                failures.append(f"{workload} under {alloc}: no RSS sample was read for its "
                                "timeline (is /proc/PID/task/PID/children missing?)")
                continue
            timelines[(workload, alloc)] = samples
            log(f"timeline {workload:14} {alloc:9} {len(samples)} samples, "
                f"peak {mib(max(kib for _, kib in samples))}")
    return timelines, failures


def draw_timeline(timelines, path, meta):
    """One panel per workload: RSS over time, a line per allocator."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(w for w, _ in timelines))
    fig, axes = plt.subplots(1, len(workloads), figsize=(8 * len(workloads), 5), squeeze=False)
    for ax, workload in zip(axes[0], workloads):
        for (w, alloc), samples in timelines.items():
            if w == workload:
                ax.plot([t for t, _ in samples], [kib / 1024 for _, kib in samples], label=alloc,
                        linewidth=1.8 if alloc == "hakmem" else 1.0)
        ax.set_title(f"{workload}: RSS over one run, MiB (lower is better)", fontsize="medium")
        ax.set_xlabel("seconds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"hakmem and peers: RSS read every 10 ms{' (quick)' if meta['quick'] else ''}, "
                 f"{meta['cpus']} CPUs, {meta['date']}, git {meta['git']}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check_outputs(outputs):
    """Compares every program run's output with the program's first output under
    glibc (under the first allocator when glibc did not run). Returns (failures,
    the (program, allocator) pairs whose output differed)."""
    failures, differing = [], set()
    for workload in dict.fromkeys(w for w, _ in outputs):
        mine = {alloc: reps for (w, alloc), reps in outputs.items() if w == workload}
        reference_alloc = "glibc" if "glibc" in mine else next(iter(mine))
        reference_rep = min(mine[reference_alloc])
        reference = mine[reference_alloc][reference_rep]
        for alloc, reps in mine.items():
            for rep, output in sorted(reps.items()):
                if output == reference:
                    continue
                diff = difflib.unified_diff(reference.splitlines(), output.splitlines(),
                                            f"{reference_alloc} rep {reference_rep}",
                                            f"{alloc} rep {rep}", lineterm="", n=1)
                failures.append(f"{workload} under {alloc}: its output (rep {rep}) differs from "
                                f"its output under {reference_alloc}:\n"
                                + "\n".join("    " + l for l in list(diff)[:20]))
                differing.add((workload, alloc))
                break
    return failures, differing


def run_strace(args, plan, tmp):
    """One run per benchmark and allocator under strace. Returns ({(workload,
    allocator): syscall counts}, failures)."""
    counts, failures = {}, []
    if plan.sizes:
        log("note: --strace counts the //benchmarks workloads only, not the programs")
    for workload, command in plan.commands.items():
        for alloc, preload in plan.preloads.items():
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
    """One row per (workload, allocator) that has runs: the median of its speed
    metric (ops/s, or seconds for programs) and its spread, the median peak RSS and
    faults, the speed relative to the best peer (every allocator but hakmem; the
    best of all when no peer ran) and the peak RSS relative to the lowest peer's."""
    rows = []
    for workload in workloads:
        key, higher_is_better = speed_metric(workload)
        group = []
        for alloc in allocators:
            mine = [r for r in runs if r["workload"] == workload and r["allocator"] == alloc]
            if not mine:
                continue
            med, lo, hi = benchlib.spread([r[key] for r in mine])
            row = {"workload": workload, "allocator": alloc, "reps": len(mine),
                   key: med, "min": lo, "max": hi, "args": mine[0]["args"]}
            for field in ("peak_rss_kb", "minflt", "majflt", "final_rss_kb", "live_bytes",
                          "freed_rss_kb", "quiet_rss_kb", "requests_per_sec"):
                if field in mine[0]:
                    row[field] = benchlib.spread([r[field] for r in mine])[0]
            if "user_seconds" in mine[0]:
                # Steadier than the wall time on a busy machine: waiting for a core is not in it.
                row["cpu_seconds"] = benchlib.spread([r["user_seconds"] + r["sys_seconds"]
                                                      for r in mine])[0]
            group.append((row, {r["rep"]: r[key] for r in mine}))
        peers = [g for g in group if g[0]["allocator"] != "hakmem"]
        candidates = peers or group
        pick = max if higher_is_better else min
        best_row, best_reps = pick(candidates, key=lambda g: g[0][key], default=(None, {}))
        lowest_rss = min((g[0]["peak_rss_kb"] for g in candidates), default=None)
        for row, reps in group:
            # Ratios are paired within a rep: drift between reps hits both alike.
            # Each is a speed ratio: > 1 means faster than the best peer.
            ratios = [(value / best_reps[rep]) if higher_is_better else (best_reps[rep] / value)
                      for rep, value in reps.items() if rep in best_reps]
            row["relative"] = benchlib.spread(ratios) if ratios else None
            row["vs_best_peer"] = row["relative"][0] if peers and ratios else None
            row["rss_vs_lowest_peer"] = row["peak_rss_kb"] / lowest_rss if peers and lowest_rss else None
            rows.append(row)
    return rows


def _columns(lines, numeric):
    """Lays out LINES (the first is the header) in columns, the NUMERIC ones
    right-aligned, with a rule under the header."""
    widths = [max(len(l[i]) for l in lines) for i in range(len(lines[0]))]
    text = ["  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                      for i, (c, w) in enumerate(zip(l, widths))).rstrip() for l in lines]
    text.insert(1, "-" * len(text[0]))
    return text


def _geomean_line(rows, what):
    ratios = [r["vs_best_peer"] for r in rows if r["allocator"] == "hakmem" and r["vs_best_peer"]]
    if not ratios:
        return []
    return [f"hakmem vs the best peer, geometric mean over {len(ratios)} {what}"
            f"{'s' if len(ratios) != 1 else ''}: "
            f"{statistics.geometric_mean(ratios):.2f}x"]


def _ratio(x):
    return f"{x:.2f}x" if x else "-"


def format_benchmarks(rows, strace):
    head = ["workload", "allocator", "ops/s", "min-max", "spread", "vs best peer", "peak RSS",
            "minor faults"]
    if strace:
        head += benchlib.STRACE_SYSCALLS
    head.append("note")
    lines = [head]
    previous = None
    for r in rows:
        line = [r["workload"] if r["workload"] != previous else "", r["allocator"],
                human(r["ops_per_sec"]), f"{human(r['min'])}-{human(r['max'])}",
                f"{100 * (r['max'] - r['min']) / r['ops_per_sec']:.0f}%",
                _ratio(r["vs_best_peer"]), mib(r["peak_rss_kb"]), human(r["minflt"])]
        if strace:
            counts = strace.get((r["workload"], r["allocator"]))
            line += [str(counts[s]) if counts else "-" for s in benchlib.STRACE_SYSCALLS]
        note = ""
        if "final_rss_kb" in r:
            note = f"final {mib(r['final_rss_kb'])} for {mib(r['live_bytes'] / 1024)} live"
        if "quiet_rss_kb" in r:
            note += f"; all freed {mib(r['freed_rss_kb'])}, quiet {mib(r['quiet_rss_kb'])}"
        line.append(note)
        lines.append(line)
        previous = r["workload"]
    return _columns(lines, set(range(2, len(head) - 1))) + _geomean_line(rows, "workload")


def format_programs(rows):
    head = ["program", "allocator", "time", "min-max", "spread", "vs best peer", "CPU time",
            "peak RSS", "RSS / lowest peer", "minor faults", "note"]
    lines = [head]
    previous = None
    for r in rows:
        lines.append([r["workload"] if r["workload"] != previous else "", r["allocator"],
                      f"{r['seconds']:.3f} s", f"{r['min']:.3f}-{r['max']:.3f}",
                      f"{100 * (r['max'] - r['min']) / r['seconds']:.0f}%",
                      _ratio(r["vs_best_peer"]), f"{r['cpu_seconds']:.3f} s", mib(r["peak_rss_kb"]),
                      _ratio(r["rss_vs_lowest_peer"]), human(r["minflt"]),
                      f"{human(r['requests_per_sec'])} requests/s" if "requests_per_sec" in r else ""])
        previous = r["workload"]
    legend = [f"  {w}: {programs.PROGRAMS[w].what.replace('SIZE', str(r['args']))}"
              for w, r in {r["workload"]: r for r in rows}.items()]
    return (_columns(lines, set(range(2, len(head) - 1))) + _geomean_line(rows, "program")
            + ["", "What each program does (outputs compared with glibc's, every run):", *legend])


def format_table(rows, strace):
    """The benchmarks' table and the programs' table, each with its own units."""
    sections = []
    benchmark_rows = [r for r in rows if not is_program(r["workload"])]
    program_rows = [r for r in rows if is_program(r["workload"])]
    if benchmark_rows:
        sections.append(["Benchmarks: ops/s (median; higher is better); vs best peer is the speed "
                         "ratio to the best of the other allocators (median of per-rep ratios)",
                         "", *format_benchmarks(benchmark_rows, strace)])
    if program_rows:
        sections.append(["Real programs: wall time (median; lower is better); vs best peer is the "
                         "best peer's time / this time (> 1: faster); CPU time (user + sys), peak "
                         "RSS and minor faults are the program's own (redis: the server's)",
                         "", *format_programs(program_rows)])
    return "\n\n".join("\n".join(s) for s in sections) + "\n"


def write_files(out, args, runs, rows, strace, failures, table, chart, timelines):
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
    if chart and rows:
        draw_chart(rows, out / "chart.png", meta)
    if timelines:
        with open(out / "rss_timeline.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["workload", "allocator", "seconds", "rss_kb"])
            for (workload, alloc), samples in timelines.items():
                writer.writerows([workload, alloc, f"{t:.3f}", kib] for t, kib in samples)
        if chart:
            draw_timeline(timelines, out / "rss_timeline.png", meta)
    log(f"wrote {out}/results.csv, results.json, table.txt" + (", strace.csv" if strace else "")
        + (", chart.png" if chart and rows else "")
        + (", rss_timeline.csv" + (", rss_timeline.png" if chart else "") if timelines else ""))


def _git_revision():
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=benchlib.REPO,
                          capture_output=True, text=True)
    return proc.stdout.strip() or None


def draw_chart(rows, path, meta):
    """One line of three panels per kind of workload (benchmarks, programs): speed
    relative to the best peer, peak RSS and minor faults."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [(title, [r for r in rows if is_program(r["workload"]) == programs_kind])
             for title, programs_kind in (("Benchmarks", False), ("Real programs", True))]
    kinds = [(title, kind_rows) for title, kind_rows in kinds if kind_rows]
    allocators = list(dict.fromkeys(r["allocator"] for r in rows))
    fig, axes = plt.subplots(len(kinds), 3, figsize=(18, 5.5 * len(kinds)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.3, 1, 1]})
    width = 0.8 / len(allocators)
    for (title, kind_rows), (speed, rss, faults) in zip(kinds, axes):
        workloads = list(dict.fromkeys(r["workload"] for r in kind_rows))
        by_key = {(r["workload"], r["allocator"]): r for r in kind_rows}
        for i, alloc in enumerate(allocators):
            xs, rel, err, rss_mib, minflt = [], [], [[], []], [], []
            for x, workload in enumerate(workloads):
                r = by_key.get((workload, alloc))
                if r is None or r["relative"] is None:
                    continue
                # Relative, as rates differ by 10^5 between workloads.
                med, lo, hi = r["relative"]
                xs.append(x + (i - (len(allocators) - 1) / 2) * width)
                rel.append(med)
                err[0].append(med - lo)
                err[1].append(hi - med)
                rss_mib.append(r["peak_rss_kb"] / 1024)
                minflt.append(max(r["minflt"], 1))
            speed.bar(xs, rel, width, yerr=err, capsize=2, label=alloc)
            rss.bar(xs, rss_mib, width, label=alloc)
            faults.bar(xs, minflt, width, label=alloc)
        speed.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        unit = "time" if title == "Real programs" else "throughput"
        speed.set_title(f"{title}: speed / best peer ({unit}, per rep: median, min-max; "
                        "higher is better)", fontsize="medium")
        rss.set_title(f"{title}: peak RSS, MiB (median; lower is better)", fontsize="medium")
        faults.set_title(f"{title}: minor page faults (median; lower is better)", fontsize="medium")
        if title == "Benchmarks":  # from 3 to 300 MiB: a log scale; programs are alike
            for ax in (rss, faults):
                ax.set_yscale("log")
        for ax in (speed, rss, faults):
            ax.set_xticks(range(len(workloads)))
            ax.set_xticklabels(workloads, rotation=30, ha="right")
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize="small")  # one legend: the colours are the same throughout
    fig.suptitle(f"hakmem and peers: {meta['reps']} reps{' (quick)' if meta['quick'] else ''}, "
                 f"{meta['cpus']} CPUs, {meta['date']}, git {meta['git']}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
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
    args.workloads = available_programs(args.workloads)
    if not args.workloads:
        log("error: none of the workloads asked for can run here")
        return 2
    with tempfile.TemporaryDirectory(prefix="hakmem-compare-") as tmp:
        try:
            plan = build_and_copy(args, allocators, tmp)
        except (BenchError, OSError) as e:
            log(f"error: {e}")
            return 2
        runs, outputs, failures = run_suite(args, plan)
        timelines = {}
        if not args.no_timeline:
            timelines, timeline_failures = run_timelines(args, plan)
            failures += timeline_failures
        strace = {}
        if args.strace:
            if shutil.which("strace") is None:
                log("note: strace is missing (tools/setup.sh installs it): no syscall columns")
            else:
                strace, strace_failures = run_strace(args, plan, tmp)
                failures += strace_failures
    output_failures, differing = check_outputs(outputs)
    failures += output_failures
    # A program that computed something else is not measured: its rows go.
    runs = [r for r in runs if (r["workload"], r["allocator"]) not in differing]
    rows = summarize(runs, args.workloads, list(plan.preloads))
    table = format_table(rows, strace)
    print(table, end="", flush=True)
    write_files(Path(args.out), args, runs, rows, strace, failures, table, chart, timelines)
    if failures:
        log(f"\n{len(failures)} run(s) failed:")
        for f in failures:
            log(f"- {f}")
        return 1
    return 0


def _exit_on_sigterm(signum, frame):
    # As for Ctrl-C: unwind, so that servers are stopped and temporary files go.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
