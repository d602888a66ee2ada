#!/usr/bin/env python3
"""Where the real programs of tools/compare.py spend their instructions and cache
misses under each allocator: every program runs under valgrind's callgrind with
its cache simulation (simulated, so the counts repeat exactly on a noisy
machine), and the report gives, per program and allocator, the whole program's
instructions and D1/LL misses and the allocator's own share of each.

    tools/profile_programs.py                          # quick sizes, hakmem and mimalloc
    tools/profile_programs.py --programs lua,perl --allocators hakmem,mimalloc,tcmalloc
    tools/profile_programs.py --hakmem /tmp/old/libhakmem.so --out /tmp/old-profile

The callgrind files stay in --out (callgrind_annotate FILE shows them by
function). redis is profiled as a server: redis-server under callgrind, the
quick size's requests from redis-benchmark (not profiled). Under callgrind a
program runs 50-100 times slower: the quick sizes take a few minutes in all.

The allocator's share is what runs in its shared object, plus the C API entry
points (malloc, free, ...) and, for hakmem, its inlined hakmem:: frames, which
callgrind may attribute to the program's object.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import compare
import programs
from benchlib import BenchError, log

# compare.py's peers, glibc as the C library itself (programs.preload_for).
PEERS = {name: programs.preload_for(path) for name, path in compare.PEERS.items()}
# Functions that belong to the allocator wherever callgrind puts them.
ALLOCATOR_FUNCTION = re.compile(
    r"^(malloc|free|calloc|realloc|reallocarray|malloc_usable_size|malloc_size|posix_memalign|"
    r"memalign|aligned_alloc|valloc|pvalloc|cfree|sdallocx|nallocx|mallocx|rallocx|"
    r"operator new|operator delete|_Zn[wa]m|_Zd[la]Pv|hakmem::|hak_|_?mi_|je_|tcmalloc::|"
    r"TCMalloc|MallocExtension|arena_|tcache_)")
ALLOCATOR_OBJECT = re.compile(r"(libhakmem|libmimalloc|libjemalloc|libtcmalloc)[^/]*$")
EVENTS = ("Ir", "D1mr", "D1mw", "DLmr", "DLmw")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--programs", default=",".join(programs.PROGRAMS),
                   help="comma-separated (default: all): " + ",".join(programs.PROGRAMS))
    p.add_argument("--allocators", default="hakmem,mimalloc",
                   help="comma-separated, of hakmem," + ",".join(PEERS) + " (default: hakmem,mimalloc)")
    p.add_argument("--size", default="quick",
                   help="quick (default), full, or a number for every program")
    p.add_argument("--hakmem", help="a libhakmem.so to profile (default: build -c opt here)")
    p.add_argument("--out", help="where the callgrind files go (default: a new temporary folder)")
    args = p.parse_args()
    args.programs = [x for x in args.programs.split(",") if x]
    args.allocators = [x for x in args.allocators.split(",") if x]
    for name in args.programs:
        if name not in programs.PROGRAMS:
            p.error(f"unknown program {name!r}; known: {', '.join(programs.PROGRAMS)}")
    for name in args.allocators:
        if name != "hakmem" and name not in PEERS:
            p.error(f"unknown allocator {name!r}; known: hakmem, {', '.join(PEERS)}")
    if args.size not in ("quick", "full") and not args.size.isdigit():
        p.error(f"--size must be quick, full or a number, not {args.size!r}")
    return args


def size_of(program, size):
    if size == "quick":
        return program.quick_size
    if size == "full":
        return program.full_size
    return int(size)


def callgrind(out_prefix):
    return ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--trace-children=yes",
            f"--callgrind-out-file={out_prefix}.%p"]


def profile_program(program, preload, size, out_prefix, workdir):
    env = programs.program_env()
    env["LD_PRELOAD"] = preload
    with open(f"{out_prefix}.log", "w") as log_file:
        run = subprocess.run(callgrind(out_prefix) + program.argv(size), cwd=workdir, env=env,
                             stdout=subprocess.DEVNULL, stderr=log_file)
    if run.returncode != 0:
        raise BenchError(f"{program.name}: exit {run.returncode} under callgrind; see {out_prefix}.log")


def profile_redis(preload, size, out_prefix, workdir):
    env = programs.program_env()
    port = programs.free_loopback_port()
    server_env = dict(env, LD_PRELOAD=preload)
    server_log = Path(f"{out_prefix}.log")
    address = ["-h", "127.0.0.1", "-p", str(port)]
    with open(server_log, "w") as log_file:
        server = subprocess.Popen(
            callgrind(out_prefix) + [programs.REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", str(workdir),
                                     "--logfile", ""],
            cwd=workdir, env=server_env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        programs._wait_until_serving(port, server, "redis under callgrind", server_log, seconds=120)
        bench = subprocess.run([programs.REDIS_BENCHMARK, *address, "-n", str(size),
                                *programs.REDIS_BENCHMARK_ARGS], env=env, capture_output=True,
                               text=True, timeout=1800)
        if bench.returncode != 0:
            raise BenchError(f"redis-benchmark failed:\n{benchlib.tail(bench.stderr)}")
        subprocess.run([programs.REDIS_CLI, *address, "shutdown", "nosave"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


NUMBER = r"(?:[\d,]+|\.)"
LINE = re.compile(rf"^\s*((?:{NUMBER}(?: \(\s*[\d.]+%\))?\s+)+)(\S.*)$")


def summarise(files):
    """(whole program, allocator): Counters of EVENTS over callgrind FILES."""
    total = collections.Counter()
    allocator = collections.Counter()
    for path in files:
        text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(path)],
                              capture_output=True, text=True, check=True).stdout
        events = None
        for line in text.splitlines():
            if line.startswith("Events shown:"):
                events = line.split()[2:]
                continue
            m = LINE.match(line)
            if events is None or not m:
                continue
            values = [0 if v == "." else int(v.replace(",", ""))
                      for v in re.findall(NUMBER, re.sub(r"\(\s*[\d.]+%\)", "", m.group(1)))]
            counts = dict(zip(events, values))
            where = m.group(2)
            if where.startswith("PROGRAM TOTALS"):
                total.update(counts)
                continue
            fm = re.match(r"(.*?):(.*?)(?: \[(.*)\])?$", where)
            if not fm:
                continue
            function, obj = fm.group(2), fm.group(3) or ""
            if ALLOCATOR_OBJECT.search(obj) or ALLOCATOR_FUNCTION.match(function):
                allocator.update(counts)
    return total, allocator


def report(rows):
    print(f"{'program':11} {'allocator':9} {'Ir (M)':>9} {'in alloc':>9} {'D1 miss (k)':>12} "
          f"{'in alloc':>9} {'LL miss (k)':>12} {'in alloc':>9}")
    for name, alloc, total, mine in rows:
        d1 = lambda c: (c["D1mr"] + c["D1mw"]) / 1e3
        ll = lambda c: (c["DLmr"] + c["DLmw"]) / 1e3
        print(f"{name:11} {alloc:9} {total['Ir'] / 1e6:9.1f} {mine['Ir'] / 1e6:9.1f} "
              f"{d1(total):12.1f} {d1(mine):9.1f} {ll(total):12.1f} {ll(mine):9.1f}")


def main():
    args = parse_args()
    for tool in ("valgrind", "callgrind_annotate"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"profile_programs: {tool} is missing (tools/setup.sh installs valgrind)")
    out = Path(args.out or tempfile.mkdtemp(prefix="hakmem-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    preloads = {}
    for name in args.allocators:
        if name == "hakmem":
            if args.hakmem:
                preloads[name] = str(Path(args.hakmem).resolve())
            else:
                bin_dir = benchlib.build(["//hakmem:libhakmem.so"])
                preloads[name] = str(benchlib.copy_out(bin_dir, "hakmem/libhakmem.so", out))
        else:
            preloads[name] = PEERS[name]
        if not os.path.exists(preloads[name]):
            sys.exit(f"profile_programs: {preloads[name]} is missing (tools/setup.sh installs it)")
    log(f"profile_programs: callgrind files in {out}")
    rows = []
    try:
        for name in args.programs:
            program = programs.PROGRAMS[name]
            why = programs.missing(program)
            if why:
                log(f"note: {name} skipped: {why}")
                continue
            size = size_of(program, args.size)
            for alloc in args.allocators:
                prefix = out / f"{name}.{alloc}"
                for old in out.glob(f"{name}.{alloc}.*"):
                    old.unlink()
                start = time.monotonic()
                with tempfile.TemporaryDirectory() as workdir:
                    if name == "redis":
                        profile_redis(preloads[alloc], size, prefix, workdir)
                    else:
                        profile_program(program, preloads[alloc], size, prefix, workdir)
                files = [f for f in out.glob(f"{name}.{alloc}.*") if f.suffix[1:].isdigit()]
                if not files:
                    raise BenchError(f"{name} under {alloc}: callgrind wrote no profile")
                rows.append((name, alloc, *summarise(files)))
                log(f"  {name} under {alloc}: {time.monotonic() - start:.0f} s")
    except BenchError as e:
        report(rows)
        sys.exit(f"profile_programs: {e}")
    report(rows)


if __name__ == "__main__":
    main()
