// run_measured: runs one program and reports its wall time, peak RSS and page
// faults, for tools/compare.py's real-program workloads.
//
//   run_measured [--preload=LIB] [--report=FILE] -- PROGRAM [ARG...]
//
// Why a separate small process: exec records the high-water RSS of the process
// image it replaces into ru_maxrss, so a program started straight from a Python
// harness reports at least that harness's RSS as its own peak. Started from here,
// the floor is this launcher's, about 1 MiB.
//
// The figures are the program's and its own children's (wait4's rusage). LIB goes into the
// program's LD_PRELOAD only (this launcher runs on the C library's malloc); without --preload,
// LD_PRELOAD is removed. When the program ends, one line goes to FILE (default: stderr):
//
//   MEASURED status=0 seconds=1.234567 maxrss_kb=52340 minflt=12800 majflt=0 user_seconds=1.10
//   sys_seconds=0.10
//
// status is the exit code, or minus the signal that killed it (as Python's
// returncode). This launcher exits with the program's exit code, or 128 + signal.
//
// Nothing outlives the harness: SIGINT, SIGTERM and SIGHUP are passed on to the
// program; the launcher gets SIGTERM when its parent dies, and the program SIGKILL
// when the launcher dies (PR_SET_PDEATHSIG), so a server started through here stops
// even when the harness is killed outright.
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace {

volatile sig_atomic_t g_child = 0;

void ForwardSignal(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

double Seconds(const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

[[noreturn]] void Usage() {
  fprintf(stderr, "usage: run_measured [--preload=LIB] [--report=FILE] -- PROGRAM [ARG...]\n");
  exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const char* preload = nullptr;
  const char* report_path = nullptr;
  int i = 1;
  for (; i < argc; ++i) {
    if (strncmp(argv[i], "--preload=", 10) == 0) {
      preload = argv[i] + 10;
    } else if (strncmp(argv[i], "--report=", 9) == 0) {
      report_path = argv[i] + 9;
    } else if (strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    } else {
      Usage();
    }
  }
  if (i >= argc) Usage();
  char** program = argv + i;

  // The harness's death ends this launcher (and, through the handler, the program).
  const pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) return 1;  // the parent died before prctl took effect

  FILE* report = stderr;
  if (report_path != nullptr && (report = fopen(report_path, "w")) == nullptr) {
    fprintf(stderr, "run_measured: cannot write %s: %s\n", report_path, strerror(errno));
    return 2;
  }

  const pid_t launcher = getpid();
  const double start = Now();
  const pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "run_measured: fork: %s\n", strerror(errno));
    return 2;
  }
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != launcher) _exit(127);  // the launcher died before prctl took effect
    if (preload != nullptr) {
      setenv("LD_PRELOAD", preload, 1);
    } else {
      unsetenv("LD_PRELOAD");
    }
    execvp(program[0], program);
    fprintf(stderr, "run_measured: cannot run %s: %s\n", program[0], strerror(errno));
    _exit(127);
  }

  g_child = child;
  struct sigaction forward = {};
  forward.sa_handler = ForwardSignal;
  sigemptyset(&forward.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &forward, nullptr);

  int status = 0;
  rusage usage = {};
  while (wait4(child, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "run_measured: wait4: %s\n", strerror(errno));
      return 2;
    }
  }
  const double seconds = Now() - start;

  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  fprintf(report,
          "MEASURED status=%d seconds=%.6f maxrss_kb=%ld minflt=%ld majflt=%ld "
          "user_seconds=%.3f sys_seconds=%.3f\n",
          code, seconds, usage.ru_maxrss, usage.ru_minflt, usage.ru_majflt, Seconds(usage.ru_utime),
          Seconds(usage.ru_stime));
  if (report != stderr) fclose(report);
  return code >= 0 ? code : 128 - code;
}
