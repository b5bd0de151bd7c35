"""The issue's targets, checked against a run's summary. A target without the figures
it needs is reported as not measured (met = None), never as met."""
from __future__ import annotations

from dataclasses import dataclass

from benchmarks.stats import SummaryRow


@dataclass(frozen=True)
class Target:
    text: str
    kind: str          # "ratio", "of_local", "at_most", "rss"
    job: str
    metric: str
    threshold: float


TARGETS: tuple[Target, ...] = (
    Target("sequential write >= 1.0x Ganesha", "ratio", "seqwrite", "bw_mib_s", 1.0),
    Target("sequential read (warm) >= 1.0x Ganesha", "ratio", "seqread-warm", "bw_mib_s", 1.0),
    Target("sequential read (cold) >= 1.0x Ganesha", "ratio", "seqread-cold", "bw_mib_s", 1.0),
    Target("sequential read (warm) >= 50 % of the local page-cache read", "of_local",
           "seqread-warm", "bw_mib_s", 0.5),
    Target("4 KiB random read, iodepth 16 >= 0.6x Ganesha", "ratio", "randread", "iops", 0.6),
    Target("4 KiB random write, iodepth 16 >= 0.6x Ganesha", "ratio", "randwrite", "iops", 0.6),
    Target("metadata (create, stat, remove) >= 1.0x Ganesha", "ratio", "metadata",
           "meta_ops_s", 1.0),
    Target("ls -l of the big directory < 1 s (ours)", "at_most", "metadata", "ls_s", 1.0),
    Target("RSS per server process <= 200 MiB (ours, psutil peak)", "rss", "", "", 200.0),
)


def _row(rows: list[SummaryRow], job: str, metric: str) -> SummaryRow | None:
    for row in rows:
        if row.job == job and row.metric.key == metric:
            return row
    return None


def evaluate(rows: list[SummaryRow], rss_peak_mib: float | None) -> list[dict]:
    """One record per target: value, threshold, met (True/False/None if not measured)."""
    results = []
    for target in TARGETS:
        value: float | None = None
        if target.kind == "rss":
            value = rss_peak_mib if rss_peak_mib else None
        else:
            row = _row(rows, target.job, target.metric)
            if row is not None:
                if target.kind == "ratio":
                    value = row.ratio
                elif target.kind == "of_local":
                    ours, local = row.median_of("ours"), row.median_of("local")
                    value = ours / local if ours and local else None
                elif target.kind == "at_most":
                    value = row.median_of("ours")
                else:
                    raise ValueError(f"unknown target kind {target.kind!r}")
        if value is None:
            met = None
        elif target.kind in ("at_most", "rss"):
            met = value <= target.threshold if target.kind == "rss" else value < target.threshold
        else:
            met = value >= target.threshold
        results.append({"target": target.text, "value": value, "threshold": target.threshold,
                        "met": met})
    return results
