"""`python -m benchmarks --profile JOB`: our server under a profiler while JOB runs once.

py-spy (default) attaches to the running server once the job's prerequisites are done,
samples from outside at a low cost the thread that holds the GIL in each process (`--gil`:
in a GIL-bound server that is where the CPU goes; threads waiting on queues and sockets are
left out, which py-spy's own idle detection did not fully manage here); `py-spy-all` samples
every thread py-spy does not see as idle, which also shows calls that block without the GIL
(fsync, pread). It writes collapsed stacks ("raw" format: one line per distinct stack with its
sample count; flamegraph.pl and speedscope read it). From those this module writes a
top list of functions by own samples and by inclusive samples: the evidence for where
a job's time goes. `--profiler cprofile` uses benchmarks/cprofile_server.py instead
(deterministic, per-call counts, but a heavy slowdown).
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import procs
from benchmarks.jobs import MetadataJob, select_jobs
from benchmarks.runner import RunConfig, Runner
from benchmarks.servers import OursServer, Rpcbind

SAMPLE_RATE = 100
TOP_N = 30
PROFILER_EXIT_TIMEOUT_S = 120
RECORDER_START_S = 1.0         # py-spy attaches before the job starts


def parse_collapsed(text: str) -> Counter:
    """Collapsed stacks ("a;b;c 12" per line) as a Counter of stack tuples."""
    stacks: Counter = Counter()
    for line_no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        stack, sep, count = line.rpartition(" ")
        if not sep or not count.isdigit():
            raise ValueError(f"line {line_no} is not 'frame;frame;... COUNT': {line[:80]!r}")
        stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def top_functions(stacks: Counter, n: int = TOP_N) -> tuple[list, list, int]:
    """(by own samples, by inclusive samples, total samples); frames counted once a stack."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for stack, count in stacks.items():
        total += count
        frames = [f for f in stack if not f.startswith("process ")]
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return own.most_common(n), inclusive.most_common(n), total


def render_top(own: list, inclusive: list, total: int, title: str) -> str:
    lines = [title, f"{total} samples", "", "By own samples (where the CPU is):"]
    lines += [f"{100 * c / total:6.1f} %  {frame}" for frame, c in own] if total else []
    lines += ["", "By inclusive samples (what a call costs with its callees):"]
    lines += [f"{100 * c / total:6.1f} %  {frame}" for frame, c in inclusive] if total else []
    return "\n".join(lines) + "\n"


def run_profile(job_name: str, profiler: str, fio: str, quick: bool, workdir: Path,
                out_dir: Path, ours_options: list[str] | None = None) -> int:
    """Profile our server while the named job(s) run; prerequisites (the write that
    creates the data file) run first, outside the py-spy recording."""
    wanted = [name.strip() for name in job_name.split(",") if name.strip()]
    jobs = select_jobs(job_name)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"profile-{'+'.join(wanted)}-{profiler}-{stamp}"
    server = OursServer("ours", workdir / "ours", workdir / "run-ours",
                        ours_options=list(ours_options or []))
    sampling = profiler in ("py-spy", "py-spy-all")
    if sampling:
        beside = Path(sys.executable).parent / "py-spy"      # pip put it in the venv
        py_spy = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
        if not py_spy:
            raise SystemExit("py-spy is not installed (benchmarks/setup.sh installs it)")
        out_path = base.with_suffix(".collapsed.txt")
    else:
        out_path = base.with_suffix(".prof")
        server.launcher = [sys.executable, "-m", "benchmarks.cprofile_server", str(out_path), "--"]
        # cProfile stays in the process it started in: forked workers would take their
        # profilers to an exit that never writes them, so serve from one process.
        server.extra_args = ["--workers", "0"]
    config = RunConfig(fio=fio, quick=quick, rounds=1, jobs=jobs, workdir=workdir,
                       servers=(), local=False, log=lambda text: print(text, flush=True))
    runner = Runner(config)
    runner.fresh_dirs()
    rpcbind = Rpcbind()
    recorder = None
    try:
        rpcbind.ensure()
        server.start()
        for job in jobs:
            if job.name not in wanted:
                runner.run_job("[profile: setup] ours", "ours", 1, job, server)
            elif isinstance(job, MetadataJob):
                runner.populate_big_dir(job, server)
        if sampling:
            gil = ["--gil"] if profiler == "py-spy" else []
            recorder = subprocess.Popen(
                [py_spy, "record", "--pid", str(server.pid), "--subprocesses", "--function",
                 *gil, "--rate", str(SAMPLE_RATE), "--format", "raw", "--output",
                 str(out_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                start_new_session=True)
            time.sleep(RECORDER_START_S)
        for job in jobs:
            if job.name in wanted:
                runner.run_job(f"[profile {profiler}] ours", "ours", 1, job, server)
    finally:
        if recorder is not None:
            stop_recorder(recorder)
        server.stop()
        rpcbind.stop()
    if not out_path.exists():
        print(f"the profiler wrote no output at {out_path}", file=sys.stderr)
        return 1
    if sampling:
        own, inclusive, total = top_functions(parse_collapsed(out_path.read_text()))
        top_path = base.with_suffix(".top.txt")
        view = ("threads holding the GIL (CPU)" if profiler == "py-spy"
                else "all threads not idle (CPU and blocking calls such as fsync)")
        top_path.write_text(render_top(own, inclusive, total,
                                       f"py-spy profile of our server during {job_name}: "
                                       f"{view}"))
        print(top_path.read_text())
        print(f"profile: {out_path} (collapsed stacks), {top_path}")
    else:
        print(f"profile: {out_path} (pstats), {out_path}.txt")
    failed = [r for r in runner.runs if "error" in r]
    return 1 if failed else 0


def stop_recorder(recorder: subprocess.Popen) -> None:
    """py-spy writes its file when interrupted: SIGINT by pid, then wait (bounded)."""
    if recorder.poll() is None:
        recorder.send_signal(signal.SIGINT)
    try:
        recorder.wait(timeout=PROFILER_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        procs.stop_tree(recorder.pid)
        recorder.wait(timeout=10)
