"""What tools/compare.py and tools/ab.py share: the workload suite, building with
Bazel, running one workload and parsing its RESULT line, and small statistics."""

import os
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The suite, in table order. A full run passes no arguments (each binary's defaults,
# ~1 s each; see benchmarks/README.md); --quick passes these (~0.1-0.3 s each).
QUICK_ARGS = {
    "random_mixed": "5000000 256 42",
    "mid_large_mt": "2 500000 2048 42",
    "tiny_hot": "64 100 60000",
    "larson": "0.2 8 1000 5000 10 4141 2",
    "cross_thread": "1 1 200000 16 32768 42",
    "realloc_grow": "4 8 4M 42",
    "large_huge": "100 4 64K 16M 42",
    "fragmentation": "20000 12 10 16 4096 42",
}
WORKLOADS = list(QUICK_ARGS)

# What --strace counts: the memory syscalls, and futex for lock contention.
STRACE_SYSCALLS = ["mmap", "munmap", "mremap", "madvise", "mprotect", "brk", "mincore", "futex"]


class BenchError(Exception):
    """A build or run that failed; the message says what and where."""


def log(message):
    print(message, file=sys.stderr, flush=True)


def bazel(args, quiet=False):
    """Runs `bazel ARGS` in the repository; its stdout is returned as text."""
    proc = subprocess.run(["bazel", *args], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL if quiet else None, text=True)
    if proc.returncode != 0:
        raise BenchError(f"bazel {' '.join(args)} failed (exit {proc.returncode})")
    return proc.stdout


def target_exists(label):
    """False if LABEL is not declared; raises BenchError if its package is broken."""
    proc = subprocess.run(["bazel", "query", label], cwd=REPO, capture_output=True, text=True)
    if proc.returncode == 0:
        return True
    if "no such target" in proc.stderr or "no such package" in proc.stderr:
        return False
    raise BenchError(f"bazel query {label} failed:\n{tail(proc.stderr)}")


def build(targets, flags=""):
    """Builds `targets` with `bazel build -c opt FLAGS`; returns the bazel-bin of
    those flags. Copy what you need out of it at once: a later build with other
    flags (yours or a colleague's on the shared server) overwrites it."""
    options = ["-c", "opt", *shlex.split(flags)]
    log(f"building: bazel build {' '.join(options + targets)}")
    bazel(["build", *options, *targets])
    return Path(bazel(["info", *options, "bazel-bin"], quiet=True).strip())


def copy_out(bin_dir, relative_path, dest_dir):
    """Copies bazel-bin/RELATIVE_PATH into DEST_DIR (keeping the file name)."""
    dest = Path(dest_dir) / Path(relative_path).name
    shutil.copy2(Path(bin_dir) / relative_path, dest)
    return dest


def check_not_sanitized(library):
    """Raises BenchError when LIBRARY needs a sanitizer's runtime: the sanitizer
    configs of .bazelrc build into the same bazel-bin as -c opt, so after
    `bazel test --config=asan` (or tsan, ubsan) bazel-bin holds an instrumented
    libhakmem.so, which crashes or crawls in an uninstrumented program."""
    dynamic = subprocess.run(["readelf", "-d", str(library)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    if dynamic.returncode != 0:
        raise BenchError(f"readelf -d {library} failed: {dynamic.stderr.strip()}")
    for line in dynamic.stdout.splitlines():
        if "(NEEDED)" in line and any(f"lib{s}san." in line for s in ("a", "t", "ub")):
            needed = line.split("[", 1)[-1].rstrip("]")
            raise BenchError(f"{library} is a sanitizer build (it needs {needed}); "
                             "use a build without one (bazel build //hakmem:libhakmem.so)")


def parse_result(stdout, tag="RESULT"):
    """The fields of the last `TAG key=value ...` line, numbers converted; None if
    there is none."""
    lines = [l for l in stdout.splitlines() if l.startswith(tag + " ")]
    if not lines:
        return None
    fields = {}
    for token in lines[-1].split()[1:]:
        key, _, value = token.partition("=")
        try:
            fields[key] = int(value)
        except ValueError:
            try:
                fields[key] = float(value)
            except ValueError:
                fields[key] = value
    return fields


def describe_exit(code):
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def tail(text, lines=15):
    return "\n".join("    " + l for l in text.strip().splitlines()[-lines:])


class RssSampler:
    """Reads the resident set (VmRSS of /proc/PID/status) of process PID, or with
    CHILD of its one child (the program a launcher started), every INTERVAL seconds
    on a thread of its own, from start() until the process is gone or stop().
    stop() returns the samples: [(seconds since start(), KiB)]."""

    def __init__(self, pid, child=False, interval=0.01):
        self.pid, self.child, self.interval = pid, child, interval
        self.samples = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._start = time.monotonic()
        self._thread.start()
        return self

    def stop(self):
        self._done.set()
        self._thread.join()
        return self.samples

    def _target(self):
        if not self.child:
            return self.pid
        try:  # (Linux 3.5+: the children of a task)
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def _run(self):
        while not self._done.is_set():
            pid = self._target()
            if pid is not None:
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.samples.append((time.monotonic() - self._start,
                                                 int(line.split()[1])))
                            break
                except (OSError, ValueError):
                    pass  # between exec and exit, or gone
            self._done.wait(self.interval)


def run_workload(command, label, preload=None, expect_malloc=None, timeout=300, strace_to=None,
                 on_start=None):
    """Runs COMMAND (binary and arguments) with PRELOAD as LD_PRELOAD. With
    STRACE_TO, runs it under `strace -f -c` counting STRACE_SYSCALLS into that file.
    Returns the RESULT fields; raises BenchError, naming LABEL and quoting stderr,
    when it crashes, times out, prints no RESULT line, or malloc was not served by
    EXPECT_MALLOC (a file name, or "exe"). Adds the run's page faults (minflt,
    majflt; of strace too when under it). ON_START, if given, is called with the
    process (a subprocess.Popen) once it has started."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    wrapper = []
    if strace_to:
        # -E: the allocator goes under the workload only, not under strace itself.
        wrapper = ["strace", "-f", "-c", "-o", str(strace_to),
                   "-e", "trace=" + ",".join(STRACE_SYSCALLS)]
        if preload:
            wrapper += ["-E", f"LD_PRELOAD={preload}"]
    elif preload:
        env["LD_PRELOAD"] = str(preload)
    # The faults of the one child this waits for: runs are sequential, so the
    # growth of the children's total is this run's.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([*wrapper, *map(str, command)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if on_start is not None:
        on_start(proc)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise BenchError(f"{label}: timed out after {timeout} s\n{tail(stderr or '')}")
    result = parse_result(stdout)
    if proc.returncode != 0 or result is None:
        why = describe_exit(proc.returncode) if proc.returncode != 0 else "no RESULT line"
        raise BenchError(f"{label}: {why}\n  command: {shlex.join(map(str, command))}"
                         f"\n  stderr (last lines):\n{tail(stderr)}")
    if expect_malloc and result.get("malloc") != expect_malloc:
        raise BenchError(f"{label}: malloc was served by {result.get('malloc')}, not "
                         f"{expect_malloc} (LD_PRELOAD did not take?)")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["minflt"] = after.ru_minflt - before.ru_minflt
    result["majflt"] = after.ru_majflt - before.ru_majflt
    return result


def parse_strace_summary(path):
    """Calls per syscall from the table `strace -c` writes; absent ones count 0."""
    counts = dict.fromkeys(STRACE_SYSCALLS, 0)
    for line in Path(path).read_text().splitlines():
        cols = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(cols) >= 5 and cols[-1] in counts and cols[3].isdigit():
            counts[cols[-1]] = int(cols[3])
    return counts


def spread(values):
    """(median, min, max) of a non-empty list."""
    return statistics.median(values), min(values), max(values)


def human(x, unit=""):
    """12345678 -> '12.3M'."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def mib(kb):
    return f"{kb / 1024:.1f} MiB"
