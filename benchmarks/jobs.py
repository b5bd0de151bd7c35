"""The benchmark jobs, as data: what each measures, in full and in --quick size.

Every job is run against our server and NFS-Ganesha (fio's NFS engine, or the libnfs
metadata client), and the fio jobs also on the export's disk with fio's psync engine
(the "local" column: what the machine can do without NFS in the way).

A figure's direction matters for the ratio: for "higher is better" metrics the ratio
is ours / Ganesha; for times it is Ganesha / ours, so that a ratio above 1.0 always
means ours is faster.
"""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
GIB = 1 << 30
FILE_NAME = "bench.dat"        # the data file, at the export's root


@dataclass(frozen=True)
class Metric:
    key: str                   # key in a run's figures
    label: str                 # column text
    unit: str
    higher_is_better: bool = True


BW = Metric("bw_mib_s", "bandwidth", "MiB/s")
IOPS = Metric("iops", "IOPS", "IOPS")
META_OPS = Metric("meta_ops_s", "create+stat+remove", "ops/s")
LS_TIME = Metric("ls_s", "ls -l", "s", higher_is_better=False)
# What the server's process tree spent (user + system) on the job itself: CPU time is far
# less moved by other load on a shared machine than wall time, and for the same work a
# lower figure means a more efficient server (see `cpu_metric`).
CPU_PER_IO = Metric("server_cpu_us_per_io", "server CPU per I/O", "µs", higher_is_better=False)
CPU_PER_JOB = Metric("server_cpu_s", "server CPU for the job", "s", higher_is_better=False)


@dataclass(frozen=True)
class FioJob:
    """One fio job. Sizes are bytes; runtime_s set means time-based."""
    name: str
    title: str
    rw: str
    bs: str
    size: int
    quick_size: int
    iodepth: int = 16
    runtime_s: int | None = None
    quick_runtime_s: int | None = None
    drop_caches: bool = False  # drop the page cache before (a cold read)
    fresh_file: bool = False   # remove the data file first (pure writes create it)
    metric: Metric = BW

    def sized(self, quick: bool) -> tuple[int, int | None]:
        """(size, runtime) for the mode."""
        if quick:
            return self.quick_size, self.quick_runtime_s
        return self.size, self.runtime_s

    @property
    def kind(self) -> str:
        return "fio"


@dataclass(frozen=True)
class MetadataJob:
    """Create, stat and remove N small files, then `ls -l` (READDIRPLUS) of a big dir."""
    name: str
    title: str
    files: int
    quick_files: int
    big_dir_entries: int
    quick_big_dir_entries: int
    metrics: tuple[Metric, ...] = (META_OPS, LS_TIME)

    @property
    def kind(self) -> str:
        return "metadata"

    def counts(self, quick: bool) -> tuple[int, int]:
        return ((self.quick_files, self.quick_big_dir_entries) if quick
                else (self.files, self.big_dir_entries))


SEQ_WRITE = FioJob("seqwrite", "sequential write 1 GiB, bs=1M, iodepth 16", "write", "1M",
                   GIB, 64 * MIB, fresh_file=True)
SEQ_READ_WARM = FioJob("seqread-warm", "sequential read 1 GiB, bs=1M, iodepth 16, page cache warm",
                       "read", "1M", GIB, 64 * MIB)
SEQ_READ_COLD = FioJob("seqread-cold", "sequential read 1 GiB, bs=1M, iodepth 16, page cache dropped",
                       "read", "1M", GIB, 64 * MIB, drop_caches=True)
RAND_READ = FioJob("randread", "random read 4 KiB, iodepth 16, 30 s", "randread", "4k",
                   GIB, 64 * MIB, runtime_s=30, quick_runtime_s=3, metric=IOPS)
RAND_WRITE = FioJob("randwrite", "random write 4 KiB, iodepth 16, 30 s", "randwrite", "4k",
                    GIB, 64 * MIB, runtime_s=30, quick_runtime_s=3, metric=IOPS)
METADATA = MetadataJob("metadata", "create, stat, remove 10 000 files; ls -l of 50 000 entries",
                       files=10_000, quick_files=300, big_dir_entries=50_000,
                       quick_big_dir_entries=1_000)

# Order matters: the write creates the file the reads and the random jobs use.
ALL_JOBS: tuple[FioJob | MetadataJob, ...] = (SEQ_WRITE, SEQ_READ_WARM, SEQ_READ_COLD,
                                              RAND_READ, RAND_WRITE, METADATA)
JOBS_BY_NAME = {job.name: job for job in ALL_JOBS}


def select_jobs(names: str | None) -> list[FioJob | MetadataJob]:
    """Jobs named in a comma list (in the canonical order), or all; unknown names fail.

    A read or random job needs the data file, so asking for one without seqwrite adds
    seqwrite in front.
    """
    if not names:
        return list(ALL_JOBS)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in JOBS_BY_NAME]
    if unknown:
        raise ValueError(f"unknown job(s) {', '.join(unknown)}; known: "
                         f"{', '.join(JOBS_BY_NAME)}")
    if not wanted:
        raise ValueError("no job named")
    needs_file = any(isinstance(JOBS_BY_NAME[n], FioJob) and n != SEQ_WRITE.name for n in wanted)
    if needs_file and SEQ_WRITE.name not in wanted:
        wanted.append(SEQ_WRITE.name)
    return [job for job in ALL_JOBS if job.name in wanted]


def job_metrics(job: FioJob | MetadataJob) -> tuple[Metric, ...]:
    return job.metrics if isinstance(job, MetadataJob) else (job.metric,)


def cpu_metric(job: FioJob | MetadataJob) -> tuple[Metric, ...]:
    """The server-CPU figure of a job: per I/O for fio (a timed job does more I/O on a
    faster server), for the whole job where both servers do the same work (metadata)."""
    return (CPU_PER_JOB,) if isinstance(job, MetadataJob) else (CPU_PER_IO,)
