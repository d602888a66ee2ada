"""The real-program workloads of tools/compare.py: Debian's python3, lua5.4 and
sqlite3 running the scripts in benchmarks/programs/, and redis-server serving a
bounded redis-benchmark run on a loopback port.

Every program runs through //benchmarks:run_measured, which puts the allocator
under the program alone (not under this harness, nor under redis-benchmark) and
reports its wall time, peak RSS (ru_maxrss) and page faults. A program must print
the same output under every allocator: the scripts print digests of what they
computed, and redis is checked by benchmarks/programs/redis_check.txt, run through
redis-cli after the benchmark. compare.py compares those outputs.
"""

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import REPO, BenchError, describe_exit, parse_result, tail

SCRIPTS = REPO / "benchmarks" / "programs"
LAUNCHER = "//benchmarks:run_measured"

# The glibc rows preload the C library itself: a program linked with another
# allocator (Debian's redis-server links jemalloc) then still gets glibc's malloc.
C_LIBRARY = "/lib/x86_64-linux-gnu/libc.so.6"

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"
REDIS_CLI = "/usr/bin/redis-cli"
# The request mix: strings, counters, lists, sets, hashes, sorted sets, 100-element
# replies and 10-key MSETs, over 100k random keys with 64-byte values; 16 requests
# per round trip so the server's own work (and its allocator) shows, not syscalls.
REDIS_TESTS = "set,get,incr,lpush,lpop,sadd,hset,zadd,lrange_100,mset"
REDIS_BENCHMARK_ARGS = ["-r", "100000", "-d", "64", "-P", "16", "-t", REDIS_TESTS, "--csv"]


@dataclass(frozen=True)
class Program:
    name: str  # the workload's name in compare.py
    package: str  # the Debian package that installs `binary`
    binary: str
    what: str  # what one run does, SIZE standing for its size
    full_size: int
    quick_size: int
    script_argv: tuple = ()  # the arguments of a run; {scripts} is SCRIPTS, {size} its size
    probe_argv: tuple = ()  # a trivial run, for the malloc binding check

    def argv(self, size):
        """The command line of one run of SIZE (not for redis: run_redis)."""
        return [self.binary, *(a.format(scripts=SCRIPTS, size=size) for a in self.script_argv)]


PROGRAMS = {p.name: p for p in [
    Program("python", "python3", "/usr/bin/python3",
            "builds SIZE dicts, sorts them two ways, JSON round trip, groups (dicts.py)",
            full_size=40000, quick_size=4000,
            script_argv=("-s", "{scripts}/dicts.py", "{size}"), probe_argv=("-c", "pass")),
    Program("lua", "lua5.4", "/usr/bin/lua5.4",
            "a growing heap: SIZE tables kept live, string concat, gmatch (tables.lua)",
            full_size=200000, quick_size=20000,
            script_argv=("{scripts}/tables.lua", "{size}"), probe_argv=("-e", "")),
    Program("sqlite", "sqlite3", "/usr/bin/sqlite3",
            "in-memory: SIZE orders, a tenth as many customers, 3 indexes, joins, update, delete (rows.sql)",
            full_size=200000, quick_size=20000,
            script_argv=("-batch", "-bail", "-init", "/dev/null", "-cmd", ".parameter set @rows {size}",
                         ":memory:", ".read '{scripts}/rows.sql'"),
            probe_argv=("-batch", "-init", "/dev/null", ":memory:", "SELECT 1")),
    Program("python_ast", "python3", "/usr/bin/python3",
            "parses the first SIZE standard-library modules with ast, walks and unparses them (ast_parse.py)",
            full_size=600, quick_size=60,
            script_argv=("-s", "{scripts}/ast_parse.py", "{size}"), probe_argv=("-c", "pass")),
    Program("perl", "perl", "/usr/bin/perl",
            "an inverted index of SIZE generated lines, sorted queries, serialised (hash_index.pl)",
            full_size=50000, quick_size=5000,
            script_argv=("{scripts}/hash_index.pl", "{size}"), probe_argv=("-e", "1")),
    Program("ruby", "ruby", "/usr/bin/ruby",
            "string churn: SIZE records built, split, gsub'd, grouped, a tenth kept (strings.rb)",
            full_size=100000, quick_size=10000,
            script_argv=("--disable-gems", "{scripts}/strings.rb", "{size}"),
            probe_argv=("--disable-gems", "-e", "1")),
    Program("gs", "ghostscript", "/usr/bin/gs",
            "renders SIZE generated PostScript pages at 150 dpi to the null file (pages.ps)",
            full_size=20, quick_size=2,
            script_argv=("-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pgmraw", "-r150",
                         "-sOutputFile=/dev/null", "-dPAGES={size}", "{scripts}/pages.ps"),
            probe_argv=("-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=nullpage", "-c", "quit")),
    Program("z3", "z3", "/usr/bin/z3",
            "factors 4 products of two SIZE-bit primes by bit-blasting (factorSIZE.smt2)",
            full_size=14, quick_size=10,
            script_argv=("-smt2", "{scripts}/factor{size}.smt2"), probe_argv=("-version",)),
    Program("gxx", "g++", "/usr/bin/g++",
            "g++ -O2 compiles a template-heavy unit with N=SIZE instantiations (templates.cc)",
            full_size=16, quick_size=2,
            script_argv=("-std=c++17", "-O2", "-DN={size}", "-c", "{scripts}/templates.cc",
                         "-o", "/dev/null"),
            probe_argv=("--version",)),
    Program("redis", "redis-server", REDIS_SERVER,
            "redis-benchmark -n SIZE -t " + REDIS_TESTS + " -P 16 -r 100000 -d 64, then redis_check.txt",
            full_size=40000, quick_size=2000, probe_argv=("--version",)),
]}


def missing(program):
    """Why PROGRAM cannot run here (a sentence), or None."""
    needed = [program.binary]
    if program.name == "redis":
        needed += [REDIS_BENCHMARK, REDIS_CLI]
    for path in needed:
        if not os.access(path, os.X_OK):
            package = "redis-tools" if path != program.binary else program.package
            return f"{path} is missing (tools/setup.sh installs Debian's {package})"
    with open(os.path.realpath(program.binary), "rb") as f:
        # A wrapper script would put the allocator under a shell, not the program.
        if f.read(4) != b"\x7fELF":
            return f"{program.binary} is not an ELF executable (a wrapper script?)"
    return None


def program_env():
    """The environment programs (and redis's clients) run in: this one without
    LD_PRELOAD, the scripting languages' start-up hooks, and with locale, time
    zone and Python's hash seed pinned so that every run computes the same."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith(("PYTHON", "LUA_INIT"))}
    env.update(LC_ALL="C", TZ="UTC", PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    return env


def preload_for(preload):
    """What a program's LD_PRELOAD holds under an allocator (None: glibc)."""
    return str(preload) if preload else C_LIBRARY


def check_malloc_binding(program, alloc, preload, workdir):
    """Raises BenchError unless every reference to malloc and free in a trivial run
    of PROGRAM binds to the preloaded allocator (the dynamic linker's own account,
    LD_DEBUG=bindings): the programs cannot print which malloc they run on."""
    library = preload_for(preload)
    expect = Path(library).name
    log_prefix = Path(workdir) / f"ld-bindings-{program.name}"
    env = program_env()
    env.update(LD_PRELOAD=library, LD_DEBUG="bindings", LD_DEBUG_OUTPUT=str(log_prefix))
    label = f"{program.name} under {alloc}"
    try:
        proc = subprocess.run([program.binary, *program.probe_argv], cwd=workdir, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{label}: the malloc binding check timed out")
    edges = {}  # (symbol, the object that refers to it) -> the objects it binds to
    for log in Path(workdir).glob(log_prefix.name + ".*"):
        for match in re.finditer(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `(malloc|free)'",
                                 log.read_text(errors="replace")):
            user, target = Path(match[1]).name, Path(match[2]).name
            if user != target:
                edges.setdefault((match[3], user), set()).add(target)
        log.unlink()
    main = Path(program.binary).name
    targets = {}
    for (symbol, user), bound in edges.items():
        for target in bound:
            # A non-PIE program's PLT entry is the canonical address of a function it
            # calls (Debian's python3): libraries bind to the program, which binds on.
            finals = edges.get((symbol, main), {main}) if target == main else {target}
            for final in finals:
                targets.setdefault(final, set()).add(user)
    if proc.returncode != 0:
        raise BenchError(f"{label}: `{program.binary} {' '.join(program.probe_argv)}` failed "
                         f"({describe_exit(proc.returncode)})\n{tail(proc.stderr)}")
    wrong = {t: users for t, users in targets.items() if t != expect}
    if not targets or wrong:
        found = "; ".join(f"{', '.join(sorted(u))} -> {t}" for t, u in sorted(wrong.items()))
        raise BenchError(f"{label}: malloc/free do not all bind to {expect} "
                         f"(LD_PRELOAD did not take?): {found or 'no bindings seen'}")


def _launch(launcher, preload, report, argv):
    return [str(launcher), f"--preload={preload_for(preload)}", f"--report={report}", "--",
            *map(str, argv)]


def _measured(report, label, stderr_text):
    """The launcher's MEASURED fields; BenchError if the program failed."""
    fields = parse_result(report.read_text(), "MEASURED") if report.exists() else None
    if fields is None:
        raise BenchError(f"{label}: run_measured wrote no report\n{tail(stderr_text)}")
    if fields["status"] != 0:
        raise BenchError(f"{label}: {describe_exit(fields['status'])}\n"
                         f"  stderr (last lines):\n{tail(stderr_text)}")
    return fields


def _result(fields, size):
    return {"seconds": fields["seconds"], "peak_rss_kb": fields["maxrss_kb"],
            "minflt": fields["minflt"], "majflt": fields["majflt"],
            "user_seconds": fields["user_seconds"], "sys_seconds": fields["sys_seconds"],
            "args": size}


def _stop(process):
    """Ends PROCESS (a launcher) if it still runs: SIGTERM, which it passes on to
    its program, then SIGKILL, which kills the program too (PR_SET_PDEATHSIG)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(program, alloc, preload, size, launcher, workdir, timeout, on_start=None):
    """One run of PROGRAM at SIZE under allocator ALLOC, whose library is PRELOAD
    (None: glibc). Returns (result fields, output text); raises BenchError, naming
    program and allocator, when it fails or times out. ON_START, if given, is
    called with the launcher's process (its one child is the program) once it has
    started (not for redis)."""
    if program.name == "redis":
        return run_redis(alloc, preload, size, launcher, workdir, timeout)
    label = f"{program.name} under {alloc}"
    report = Path(workdir) / "measured.txt"
    report.unlink(missing_ok=True)
    process = subprocess.Popen(_launch(launcher, preload, report, program.argv(size)), cwd=workdir,
                               env=program_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    if on_start is not None:
        on_start(process)
    try:
        output, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{label}: timed out after {timeout} s")
    finally:
        _stop(process)
    return _result(_measured(report, label, errors), size), output


def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(port, server, label, server_log, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"{label}: redis-server ended before serving "
                             f"({describe_exit(server.returncode)})\n{tail(server_log.read_text())}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise BenchError(f"{label}: redis-server did not answer on port {port} in {seconds} s\n"
                     f"{tail(server_log.read_text())}")


def run_redis(alloc, preload, size, launcher, workdir, timeout):
    """Starts redis-server under PRELOAD on a free loopback port, runs
    redis-benchmark (SIZE requests per test, on the C library's malloc) and then
    redis_check.txt through redis-cli, and shuts the server down, always. The time
    is redis-benchmark's wall time; RSS and faults are the server's."""
    label = f"redis under {alloc}"
    workdir = Path(workdir)
    report = workdir / "redis-measured.txt"
    report.unlink(missing_ok=True)
    server_log = workdir / "redis-server.log"
    port = free_loopback_port()
    address = ["-h", "127.0.0.1", "-p", str(port)]
    server_argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(workdir), "--logfile", ""]
    env = program_env()
    with open(server_log, "w") as log_file:
        server = subprocess.Popen(_launch(launcher, preload, report, server_argv), cwd=workdir,
                                  env=env, stdout=log_file, stderr=subprocess.STDOUT)
    client_error = None
    try:
        _wait_until_serving(port, server, label, server_log)
        start = time.monotonic()
        bench = subprocess.run([REDIS_BENCHMARK, *address, "-n", str(size), *REDIS_BENCHMARK_ARGS],
                               env=env, capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - start
        tests = [l for l in bench.stdout.splitlines()[1:] if l.startswith('"')]
        if bench.returncode != 0 or not tests:
            client_error = (f"redis-benchmark failed ({describe_exit(bench.returncode)})\n"
                            f"{tail(bench.stderr or bench.stdout)}")
        else:
            with open(SCRIPTS / "redis_check.txt") as script:
                check = subprocess.run([REDIS_CLI, *address], stdin=script, env=env,
                                       capture_output=True, text=True, timeout=timeout)
            if check.returncode != 0:
                client_error = f"redis-cli failed ({describe_exit(check.returncode)})\n{tail(check.stderr)}"
        # The reply may be lost as the server closes the connection: the wait decides.
        subprocess.run([REDIS_CLI, *address, "shutdown", "nosave"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        server.wait(timeout=30)
    except subprocess.TimeoutExpired as e:
        client_error = f"timed out after {e.timeout} s: {' '.join(map(str, e.cmd))}"
    finally:
        _stop(server)
    # A server that crashed explains a failed client better than the client does.
    fields = _measured(report, label, server_log.read_text())
    if client_error:
        raise BenchError(f"{label}: {client_error}")
    requests = size * len(tests)
    result = _result(fields, size)
    result.update(seconds=seconds, requests=requests, requests_per_sec=requests / seconds)
    return result, check.stdout
