"""Bounded runs and stopping by pid: a client that escapes its process group
(as fio's setsid() job processes do) must still be ended."""
import subprocess
import sys
import time

import psutil
import pytest

from benchmarks.procs import (RssSampler, RunTimeout, pid_alive, run_bounded, stop_tree,
                              tree_cpu_s, wait_until)

# A parent that starts a child in a new session (like fio's job processes), prints the
# child's pid, then both sleep.
ESCAPING = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_run_bounded_returns_output_and_status():
    result = run_bounded([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"], 30)
    assert result.returncode == 3 and result.stdout == "hi\n" and result.wall_s > 0


def test_timeout_kills_the_whole_tree_including_a_new_session(tmp_path):
    script = tmp_path / "escaping.py"
    script.write_text(ESCAPING)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    started = time.monotonic()
    with pytest.raises(RunTimeout, match="ran past"):
        run_bounded([sys.executable, str(script)], 2)
    assert time.monotonic() - started < 20
    # the grandchild (own session) must be gone too
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if p.info["cmdline"] and "time.sleep(60)" in " ".join(p.info["cmdline"])
                 and p.pid not in before]
    assert [p for p in leftovers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


def test_stop_tree_escalates_to_sigkill():
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                             "print('ready', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    started = time.monotonic()
    stop_tree(proc.pid, grace_s=0.5)          # reaps it too (psutil waits on our child)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 10                # SIGTERM was ignored: SIGKILL after the grace
    assert not pid_alive(proc.pid)
    proc.wait(timeout=10)
    proc.stdout.close()


def test_wait_until_fails_when_the_process_dies_or_time_runs_out():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    proc.wait(timeout=10)
    with pytest.raises(RuntimeError, match="status 4"):
        wait_until(lambda: False, 5, "thing", proc)
    with pytest.raises(TimeoutError, match="not ready"):
        wait_until(lambda: False, 0.2, "thing")


def test_rss_sampler_sees_a_child_and_stops_its_thread():
    proc = subprocess.Popen([sys.executable, "-c",
                             "b = bytearray(40 << 20); print('ready', flush=True); "
                             "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        with RssSampler(proc.pid, interval_s=0.05) as sampler:
            time.sleep(0.2)
        assert sampler.peak_mib() >= 40
        assert not sampler._thread.is_alive()
        [(title, mib)] = sampler.peaks_by_title().items()
        assert "bytearray" in title and mib >= 40
    finally:
        stop_tree(proc.pid, grace_s=2)
        proc.wait(timeout=10)
        proc.stdout.close()


def test_tree_cpu_counts_a_busy_grandchild_and_not_an_idle_tree():
    """The server's CPU is its whole tree's (our master forks workers)."""
    code = ("import subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', "
            "'import time\\nend = time.process_time() + 0.6\\nwhile time.process_time() < end: pass\\n"
            "print(1, flush=True)\\ntime.sleep(60)'], stdout=subprocess.PIPE, text=True); "
            "child.stdout.readline(); print('busy done', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        before = tree_cpu_s(proc.pid)
        assert proc.stdout.readline() == "busy done\n"
        spent = tree_cpu_s(proc.pid) - before
        assert spent >= 0.5, spent
        time.sleep(0.3)
        assert tree_cpu_s(proc.pid) - tree_cpu_s(proc.pid) < 0.05    # idle now
    finally:
        stop_tree(proc.pid, grace_s=2)
        proc.wait(timeout=10)
        proc.stdout.close()
