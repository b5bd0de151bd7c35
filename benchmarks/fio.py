"""fio command lines for the NFS and psync engines, and fio's JSON turned into figures.

fio exits 0 even when its NFS engine failed to mount (the job simply does no I/O),
so a result is only accepted when the job moved the bytes it was asked to: a sized
job exactly its size, a time-based job more than nothing. Anything else raises
FioError with fio's stderr, rather than entering a zero into the medians.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.jobs import FILE_NAME, FioJob

TIMEOUT_SLACK_S = 120          # on top of a job's expected duration
MIN_SIZED_TIMEOUT_S = 300      # a sized 1 GiB job at a slow 4 MiB/s would still finish


class FioError(RuntimeError):
    """fio ran but its output is not a valid measurement (or it could not be read)."""


@dataclass(frozen=True)
class FioFigures:
    """What one fio run measured, in the units the report uses."""
    direction: str             # "read" or "write"
    io_bytes: int
    runtime_ms: int
    bw_mib_s: float
    iops: float
    clat_mean_us: float
    clat_p50_us: float
    clat_p99_us: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def direction_of(rw: str) -> str:
    if rw in ("read", "randread"):
        return "read"
    if rw in ("write", "randwrite"):
        return "write"
    raise ValueError(f"fio rw={rw!r} is not a pure read or write job")


def fio_argv(fio: str, job: FioJob, quick: bool, *, nfs_url: str | None = None,
             directory: str | None = None) -> list[str]:
    """The fio command line for job: NFS engine with nfs_url, or psync in directory."""
    if (nfs_url is None) == (directory is None):
        raise ValueError("give exactly one of nfs_url (NFS engine) or directory (psync)")
    size, runtime = job.sized(quick)
    # An absolute path for psync: fio applies --directory only to file names parsed after
    # it, so "--filename=x --directory=d" wrote x into fio's working directory.
    target = FILE_NAME if directory is None else str(Path(directory) / FILE_NAME)
    argv = [fio, f"--name={job.name}", f"--rw={job.rw}", f"--bs={job.bs}", f"--size={size}",
            f"--filename={target}", "--output-format=json"]
    if runtime:
        argv += ["--time_based", f"--runtime={runtime}"]
    if nfs_url is not None:
        argv += ["--ioengine=nfs", f"--nfs_url={nfs_url}", f"--iodepth={job.iodepth}"]
    else:
        # psync is synchronous: iodepth is 1 whatever is asked. invalidate=0: fio's default
        # drops the file's pages before each job (posix_fadvise DONTNEED), which made the
        # "warm" local read a cold one (1.6 GB/s instead of 6.8 here); the NFS engine is
        # diskless and never invalidates, so without this the columns differ in kind.
        argv += ["--ioengine=psync", "--iodepth=1", "--invalidate=0"]
    return argv


def timeout_for(job: FioJob, quick: bool) -> float:
    """A generous bound: a time-based job's runtime plus slack, a sized job a flat limit."""
    _size, runtime = job.sized(quick)
    if runtime:
        return runtime + TIMEOUT_SLACK_S
    return MIN_SIZED_TIMEOUT_S


def extract_json(stdout: str) -> dict:
    """fio may print notes before its JSON document: take the text from the first
    line that opens an object."""
    lines = stdout.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("{"):
            try:
                return json.loads("\n".join(lines[index:]))
            except json.JSONDecodeError as err:
                raise FioError(f"fio's JSON output does not parse: {err}") from None
    raise FioError(f"fio printed no JSON document; output began {stdout[:200]!r}")


def parse_fio_output(stdout: str, job: FioJob, quick: bool, stderr: str = "") -> FioFigures:
    """Figures of the single job in fio's JSON output, after checking it did its I/O."""
    doc = extract_json(stdout)
    jobs = doc.get("jobs")
    if not isinstance(jobs, list) or len(jobs) != 1:
        raise FioError(f"expected one job in fio's output, found "
                       f"{len(jobs) if isinstance(jobs, list) else 'none'}")
    entry = jobs[0]
    if entry.get("error"):
        raise FioError(f"fio job {job.name} failed with error {entry['error']}: "
                       f"{stderr.strip()[-500:]}")
    direction = direction_of(job.rw)
    stats = entry.get(direction)
    if not isinstance(stats, dict):
        raise FioError(f"fio's output has no {direction} section for job {job.name}")
    try:
        io_bytes = int(stats["io_bytes"])
        runtime_ms = int(stats["runtime"])
        bw_bytes = float(stats["bw_bytes"])
        iops = float(stats["iops"])
        clat = stats["clat_ns"]
    except (KeyError, TypeError, ValueError) as err:
        raise FioError(f"fio's {direction} section lacks {err}") from None
    size, runtime = job.sized(quick)
    if io_bytes <= 0:
        raise FioError(f"fio job {job.name} moved no data (a failed mount exits 0): "
                       f"{stderr.strip()[-500:]}")
    if not runtime and io_bytes != size:
        raise FioError(f"fio job {job.name} moved {io_bytes} bytes of {size}: "
                       f"{stderr.strip()[-500:]}")
    percentiles = clat.get("percentile", {}) if isinstance(clat, dict) else {}
    return FioFigures(direction=direction, io_bytes=io_bytes, runtime_ms=runtime_ms,
                      bw_mib_s=bw_bytes / (1 << 20), iops=iops,
                      clat_mean_us=float(clat.get("mean", 0.0)) / 1000.0,
                      clat_p50_us=float(percentiles.get("50.000000", 0.0)) / 1000.0,
                      clat_p99_us=float(percentiles.get("99.000000", 0.0)) / 1000.0)


def fio_version(fio: str) -> str:
    import subprocess
    try:
        return subprocess.run([fio, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err})"
