"""Medians over rounds and the ours/Ganesha ratios.

Why medians: on a shared 2-core machine one round can be disturbed by anything else
running; the median of three ignores one outlier either way. Why ratios: both servers
meet the same disturbances in alternating rounds, so their ratio means more than
either absolute figure.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.jobs import ALL_JOBS, Metric, job_metrics

SERVERS = ("ours", "ganesha", "local")


def median(values: list[float]) -> float:
    """The median; an empty list is an error (a figure with no measurement)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def performance_ratio(ours: float | None, ganesha: float | None,
                      higher_is_better: bool = True) -> float | None:
    """How many times better ours is (> 1.0 = ours faster); None when undefined."""
    if ours is None or ganesha is None or ours <= 0 or ganesha <= 0:
        return None
    return ours / ganesha if higher_is_better else ganesha / ours


@dataclass
class SummaryRow:
    """One metric of one job: the medians per server and the ratio."""
    job: str
    metric: Metric
    values: dict[str, list[float]]
    errors: dict[str, int]

    def median_of(self, server: str) -> float | None:
        vals = self.values.get(server) or []
        return median(vals) if vals else None

    @property
    def ratio(self) -> float | None:
        return performance_ratio(self.median_of("ours"), self.median_of("ganesha"),
                                 self.metric.higher_is_better)

    def as_dict(self) -> dict:
        return {"job": self.job, "metric": self.metric.key, "unit": self.metric.unit,
                "higher_is_better": self.metric.higher_is_better,
                "values": self.values, "errors": self.errors,
                "median": {s: self.median_of(s) for s in SERVERS if self.values.get(s)},
                "ratio_ours_vs_ganesha": self.ratio}


def summarize(runs: list[dict], job_names: list[str] | None = None,
              metrics_of=job_metrics) -> list[SummaryRow]:
    """Rows for every (job, metric) in canonical job order, from the per-run records
    (`metrics_of(job)`: which figures; the measured ones by default).

    A run record is {"server", "round", "job", "figures": {...}} or, when the run
    failed, {"server", "round", "job", "error": "..."}; failures are counted, not
    averaged in.
    """
    names = job_names or [job.name for job in ALL_JOBS]
    rows = []
    for job in ALL_JOBS:
        if job.name not in names:
            continue
        for metric in metrics_of(job):
            values: dict[str, list[float]] = {}
            errors: dict[str, int] = {}
            for run in runs:
                if run.get("job") != job.name:
                    continue
                server = run.get("server")
                if server not in SERVERS:
                    raise ValueError(f"run record names an unknown server {server!r}")
                if "error" in run:
                    errors[server] = errors.get(server, 0) + 1
                    continue
                figures = run.get("figures") or {}
                if metric.key in figures:
                    values.setdefault(server, []).append(float(figures[metric.key]))
            rows.append(SummaryRow(job.name, metric, values, errors))
    return rows
