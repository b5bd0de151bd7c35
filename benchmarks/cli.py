"""`python -m benchmarks`: install what is missing, run the rounds, write the results.

    python -m benchmarks                 full run: 3 rounds, every job, README updated
    python -m benchmarks --quick         smoke: small sizes, 1 round (CI)
    python -m benchmarks --profile JOB   our server under py-spy (or cProfile) for one job

Exit status: 0 when every run produced a figure, 1 when any failed (the results are
written either way), 2 for bad arguments, 130 on Ctrl-C and 143 on SIGTERM (after
stopping everything either way).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import environment
from benchmarks import fio as fiolib
from benchmarks.host import export_file_system
from benchmarks.jobs import cpu_metric, select_jobs
from benchmarks.runner import RunConfig, Runner, run_id
from benchmarks.servers import GaneshaServer, OursServer
from benchmarks.stats import summarize
from benchmarks.targets import evaluate

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
QUICK_RESULTS_DIR = RESULTS_DIR / "quick"
SETUP_SCRIPT = HERE / "setup.sh"
SETUP_TIMEOUT_S = 1800
DEFAULT_STEAL_LIMIT_PCT = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="fio benchmarks of our NFS server beside "
                                                 "NFS-Ganesha (see benchmarks/README.md)")
    add = parser.add_argument
    add("--quick", action="store_true",
        help="short smoke: 64 MiB files, 3 s random jobs, 300 files, 1 round")
    add("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    add("--jobs", help="comma list of jobs (seqwrite, seqread-warm, seqread-cold, randread, "
                       "randwrite, metadata); default all")
    add("--servers", default="ours,ganesha", help="servers to run, in round order")
    add("--no-local", action="store_true", help="skip the local psync limit")
    add("--no-setup", action="store_true",
        help="do not run setup.sh (apt, pip, fio build); use the cached fio")
    add("--results-dir", type=Path,
        help=f"where results go (default {RESULTS_DIR}, quick: {QUICK_RESULTS_DIR})")
    add("--workdir", type=Path, default=Path("/var/tmp/bench"),
        help="export directories and server files (one disk for all)")
    add("--ours-option", metavar="XL.KEY=VALUE", action="append", default=[],
        help="pass an option to our server (glusterfs --xlator-option), e.g. "
             "nfs-server.nfs.stage-threads=2; recorded as a non-default setting (repeatable)")
    add("--steal-limit", type=float, metavar="PCT", default=DEFAULT_STEAL_LIMIT_PCT,
        help="measure a job again (on a restarted server for metadata) while the host's CPU "
             f"steal during it was above PCT %% (default {DEFAULT_STEAL_LIMIT_PCT:.0f}; "
             "not with --quick); 0 turns it off")
    add("--attempts", type=int, default=3,
        help="at most this many measurements of one job in one round (default 3)")
    add("--profile", metavar="JOB",
        help="run our server under a profiler for JOB (once) and write the profile")
    add("--profiler", choices=("py-spy", "py-spy-all", "cprofile"), default="py-spy",
        help="py-spy: threads holding the GIL (CPU); py-spy-all: every busy thread (also "
             "blocking calls like fsync); cprofile: deterministic, one process, slow")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt.

    Why: the harness is often started in the background (`nohup ... &`), where
    SIGINT is ignored, and stopped with `kill`.  Its servers and rpcbind run in
    sessions of their own, so a plain SIGTERM ended the harness and left them
    holding port 2049.  Raised instead, it unwinds through the same `finally`
    blocks as Ctrl-C, which stop every process the run started by pid.  A
    KeyboardInterrupt, so no job's `except Exception` records it as a failure
    and goes on."""


def _terminated(signum, frame):
    # a second SIGTERM must not cut short the cleanup the first one started
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(signum)


def ensure_setup(skip: bool) -> str:
    """Run setup.sh (idempotent) and return the fio binary it built."""
    fio = HERE / "cache" / "fio" / "bin" / "fio"
    if skip:
        if not fio.exists():
            raise SystemExit(f"--no-setup: no fio at {fio}; run benchmarks/setup.sh once")
        return str(fio)
    started = time.monotonic()
    print("setup: installing what is missing and building fio once (benchmarks/setup.sh)",
          flush=True)
    result = subprocess.run(["bash", str(SETUP_SCRIPT)], stdout=subprocess.PIPE, text=True,
                            timeout=SETUP_TIMEOUT_S,
                            env={**os.environ, "PYTHON": sys.executable})
    if result.returncode != 0:
        raise SystemExit(f"setup.sh failed with status {result.returncode}")
    print(f"setup: done in {time.monotonic() - started:.0f} s", flush=True)
    return result.stdout.strip().splitlines()[-1]


def settings_differing(ours_options: list[str] | None = None) -> dict:
    work = Path("/var/tmp/bench")
    ours = OursServer("ours", work / "ours", work, ours_options=list(ours_options or []))
    return {
        "ours": ours.non_default_settings(),
        "ganesha": GaneshaServer("ganesha", work / "ganesha", work).non_default_settings(),
        "fio": ["fio 3.33 from Debian's source package, built with libnfs and one patch to "
                "the NFS engine (getevents waits for the completions fio asks for; see "
                "README: without it jobs under-count and sometimes hang at unmount)",
                "clients are given nfsport= and mountport= (looked up from the portmapper "
                "once per server start)"],
        "local": ["fio psync engine (iodepth 1) on a directory of the same disk, no fsync, "
                  "invalidate=0 (fio's default drops the file's pages before each job)"],
        "rpcbind": ["started as `rpcbind -f -w` when none runs (listens on all addresses)"],
    }


def build_document(config: RunConfig, runner: Runner, started: datetime,
                   elapsed_s: float, fio_version: str, rid: str) -> dict:
    names = [job.name for job in config.jobs]
    rows = summarize(runner.runs, names)
    summary = [row.as_dict() for row in rows]
    server_cpu = [row.as_dict() for row in summarize(runner.runs, names, cpu_metric)]
    targets = evaluate(rows, runner.rss_peak_mib.get("ours"))
    return {
        "schema": 1, "run_id": rid, "mode": "quick" if config.quick else "full",
        "started": started.isoformat(timespec="seconds"), "elapsed_s": round(elapsed_s, 1),
        "rounds": config.rounds, "servers": list(config.servers), "local": config.local,
        "steal_limit_pct": config.steal_limit_pct, "attempts": config.attempts,
        "jobs": [job.name for job in config.jobs],
        "machine": {**environment.machine_info(),
                    "export_fs": export_file_system(str(config.workdir))},
        "versions": environment.versions(fio_version),
        "settings": settings_differing(config.ours_options), "summary": summary, "targets": targets,
        "server_cpu": server_cpu,
        "rss_peak_mib": runner.rss_peak_mib, "rss_by_process": runner.rss_by_process,
        "populate": runner.populate, "server_logs": runner.server_logs, "runs": runner.runs,
    }


def main(argv: list[str] | None = None) -> int:
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _main(argv)
    except KeyboardInterrupt as stop:     # every process started was stopped on the way out
        how, status = ("SIGTERM", 143) if isinstance(stop, Terminated) else ("Ctrl-C", 130)
        print(f"stopped by {how}: servers stopped, no results written", file=sys.stderr)
        return status
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        jobs = select_jobs(args.jobs)
    except ValueError as err:
        parser.error(str(err))
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if not 1 <= rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    if not servers or any(s not in ("ours", "ganesha") for s in servers):
        parser.error("--servers takes ours and/or ganesha")
    if not 1 <= args.attempts <= 10:
        parser.error("--attempts must be between 1 and 10")
    if not 0 <= args.steal_limit < 100:
        parser.error("--steal-limit takes a percentage from 0 (off) to below 100")
    bad = [o for o in args.ours_option if not re.fullmatch(r"[^.=\s]+\.[^=\s]+=\S+", o)]
    if bad:
        parser.error(f"--ours-option takes XL.KEY=VALUE, not {bad[0]!r}")
    fio = ensure_setup(args.no_setup)
    if args.profile:
        from benchmarks.profiling import run_profile
        out_dir = args.results_dir or (QUICK_RESULTS_DIR if args.quick else RESULTS_DIR)
        return run_profile(args.profile, args.profiler, fio, args.quick, args.workdir,
                           out_dir, args.ours_option)
    config = RunConfig(fio=fio, quick=args.quick, rounds=rounds, jobs=jobs,
                       workdir=args.workdir, servers=servers, local=not args.no_local,
                       ours_options=list(args.ours_option),
                       log=lambda text: print(text, flush=True),
                       steal_limit_pct=None if args.quick or not args.steal_limit
                       else args.steal_limit,
                       attempts=args.attempts)
    started = datetime.now(timezone.utc)
    rid = run_id(args.quick, started)
    t0 = time.monotonic()
    runner = Runner(config)
    runner.run()
    doc = build_document(config, runner, started, time.monotonic() - t0,
                         fiolib.fio_version(fio), rid)
    return write_all(doc, args, config)


def write_all(doc: dict, args, config: RunConfig) -> int:
    from benchmarks.chart import render_chart
    from benchmarks.report import render_markdown, update_readme, write_results
    out_dir = args.results_dir or (QUICK_RESULTS_DIR if config.quick else RESULTS_DIR)
    chart_path = out_dir / f"{doc['run_id']}.png"
    try:
        render_chart(doc["summary"], chart_path, f"{doc['run_id']}: medians of "
                                                 f"{doc['rounds']} round(s)")
    except (ValueError, ImportError) as err:
        print(f"no chart: {err}", file=sys.stderr)
        chart_path = None
    json_path, md_path = write_results(doc, out_dir, chart_path)
    # only a complete, default-settings run speaks for the project in the README
    full_default = (not config.quick and args.results_dir is None and args.jobs is None
                    and not config.ours_options and config.local
                    and config.servers == ("ours", "ganesha"))
    if full_default:
        update_readme(HERE / "README.md", doc, f"results/{md_path.name}",
                      f"results/{chart_path.name}" if chart_path else None)
    print()
    print(render_markdown(doc, chart_path.name if chart_path else None))
    print(f"results: {json_path}, {md_path}" + (f", {chart_path}" if chart_path else ""))
    failed = [r for r in doc["runs"] if "error" in r]
    return 1 if failed else 0
