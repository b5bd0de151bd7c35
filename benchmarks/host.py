"""What the host did besides our job: CPU stolen by the hypervisor, and the disk's file system.

Why: these machines are virtual and shared.  Within minutes the hypervisor has
given 0 % and 70 % of our CPUs' time to other guests ("steal"), and a round
run under heavy steal measured the neighbours, not the server: one server's
IOPS moved 3x between rounds with nothing else changed.  The steal during
each job is recorded beside its figures, so a reader can tell a disturbed
round from a slow server (medians already discount one outlier of three).

The export file system is recorded because it decides what metadata
operations cost: without a journal, ext4 skips every inode freed in the last
minute when it allocates one (a scan that grows with recent removals, paid by
both servers' creates), and each fsync is a flush of its own; with a journal,
an fsync is a journal commit.
"""
from __future__ import annotations

import os

import psutil

from xlators.storage import fs_journal


class CpuWindow:
    """System-wide CPU times at the start of a window; `steal_pct` at its end."""

    __slots__ = ("start",)

    def __init__(self):
        self.start = psutil.cpu_times()

    def steal_pct(self) -> float | None:
        """Percent of all CPU time in the window that the hypervisor gave to
        others; None where the kernel does not report steal (not a guest)."""
        end = psutil.cpu_times()
        if not hasattr(end, "steal"):
            return None
        total = sum(end) - sum(self.start)
        if total <= 0:
            return 0.0
        return 100.0 * max(end.steal - self.start.steal, 0.0) / total


def export_file_system(path: str) -> str:
    """The file system holding `path`, in words: type, and for metadata whether
    one fsync commits all earlier changes (a journal) or not."""
    try:
        st_dev = os.stat(path).st_dev
        mount = fs_journal.mount_of(st_dev)
        _verified, why = fs_journal.check(path)
    except OSError as err:
        return f"unknown ({err.strerror or err})"
    if mount is None:
        return f"unknown ({why})"
    return f"{why}; device {mount[1]}"
