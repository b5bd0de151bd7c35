"""Processes the harness starts, and how it ends them: always by pid, always bounded.

Why this module exists: fio's job processes call setsid(), so killing fio's main
process (or its process group, as `timeout` does) leaves a job child behind, still
connected to the server. Everything here therefore collects a process's descendants
(psutil) *before* signalling, and ends each of them by its own pid. Nothing is ever
killed by name.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil

from glusterfsd.pidfile import running

pid_alive = running   # the harness's name for it (servers, tests)

TERM_GRACE_S = 5.0       # SIGTERM -> SIGKILL
POLL_S = 0.05


class RunTimeout(RuntimeError):
    """A bounded command ran past its time limit (and was killed)."""


@dataclass
class RunResult:
    """What a bounded command left: exit status, output, and its wall time."""
    returncode: int
    stdout: str
    stderr: str
    wall_s: float


def descendants(pid: int) -> list[psutil.Process]:
    """Every living descendant of pid (children first found, grandchildren after)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_tree(pid: int, grace_s: float = TERM_GRACE_S, sig: int = signal.SIGTERM) -> None:
    """End pid and everything it started: `sig` first, SIGKILL after grace_s.

    Descendants are listed before any signal is sent, because once the parent is
    gone its orphans are re-parented and can no longer be found through it.
    """
    procs = descendants(pid)
    try:
        procs.insert(0, psutil.Process(pid))
    except psutil.Error:
        pass
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass
    _gone, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)


def run_bounded(argv: list[str], timeout_s: float, env: dict | None = None,
                cwd: str | None = None) -> RunResult:
    """Run argv to completion within timeout_s; on overrun kill its whole tree.

    Raises RunTimeout (after killing) rather than returning a half result, so a
    hung client can never stall a benchmark run.
    """
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_tree(proc.pid)
        out, err = proc.communicate(timeout=TERM_GRACE_S * 2)
        raise RunTimeout(f"{argv[0]} ran past {timeout_s:.0f} s and was killed; "
                         f"stderr tail: {err[-500:]!r}") from None
    except BaseException:
        stop_tree(proc.pid)
        proc.communicate(timeout=TERM_GRACE_S * 2)
        raise
    return RunResult(proc.returncode, out, err, time.monotonic() - start)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None,
               interval_s: float = 0.1) -> None:
    """Poll predicate() until true; fail after timeout_s, or at once if proc died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with status {proc.returncode} "
                               "before it was ready")
        time.sleep(interval_s)
    raise TimeoutError(f"{what}: not ready after {timeout_s:.0f} s")


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants so far (a
    descendant that exited in between takes its seconds with it: read it before and
    after a job that keeps its processes, as a server does)."""
    total = 0.0
    for proc in [psutil.Process(pid)] + descendants(pid):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class RssSampler:
    """Samples the resident set size of a server's process tree; keeps each pid's peak.

    A background thread samples every interval_s while jobs run, because the peak
    of a worker is reached mid-job (buffers of in-flight 1 MiB WRITEs), not after.
    Use as a context manager: the thread is always stopped and joined.
    """

    def __init__(self, pid: int, interval_s: float = 0.5):
        self.pid = pid
        self.interval_s = interval_s
        self.peak_by_pid: dict[int, int] = {}
        self.name_by_pid: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            return
        for proc in procs:
            try:
                rss = proc.memory_info().rss
                # the process title (setproctitle) says master or worker N; comm is cut at 15
                name = " ".join(proc.cmdline()).strip()[:60] or proc.name()
            except psutil.Error:
                continue
            if rss > self.peak_by_pid.get(proc.pid, 0):
                self.peak_by_pid[proc.pid] = rss
                self.name_by_pid[proc.pid] = name

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> "RssSampler":
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval_s + 1)
        self.sample()

    def peak_mib(self) -> float:
        """Largest peak RSS of any single process of the tree, in MiB."""
        return max(self.peak_by_pid.values(), default=0) / (1 << 20)

    def peaks_by_title(self) -> dict[str, float]:
        """Peak RSS in MiB per process title (pid added where titles repeat)."""
        out: dict[str, float] = {}
        for pid, rss in sorted(self.peak_by_pid.items()):
            title = self.name_by_pid.get(pid, str(pid))
            key = title if title not in out else f"{title} [pid {pid}]"
            out[key] = round(rss / (1 << 20), 1)
        return out
