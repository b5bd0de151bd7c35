"""What a result depends on besides the code: the machine and every version involved.

Recorded in each result file, because a ratio measured on another kernel, another
Ganesha or another fio is a different experiment.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err.__class__.__name__})"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def package_version(name: str) -> str:
    """The installed Debian package version, or 'not installed'."""
    text = _run(["dpkg-query", "-W", "-f=${Version}", name])
    return text if text and text != "unknown" else "not installed"


def commit() -> str:
    """HEAD's short hash, with '+dirty' when the work tree has uncommitted changes."""
    head = _run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT)
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT)
    return head + ("+dirty" if status and status != "unknown" else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
            "kernel": platform.release(), "os": _os_release()}


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"


def versions(fio_version: str) -> dict:
    return {"commit": commit(),
            "python": sys.version.split()[0],
            "fio": f"{fio_version} (Debian source {_fio_src()}, built with libnfs, "
                   "patched: benchmarks/fio-nfs-getevents-min.patch)",
            "libnfs": package_version("libnfs13"),
            "nfs-ganesha": package_version("nfs-ganesha"),
            "nfs-ganesha-vfs": package_version("nfs-ganesha-vfs"),
            "rpcbind": package_version("rpcbind")}


def _fio_src() -> str:
    stamp = Path(__file__).resolve().parent / "cache" / "fio" / ".built"
    try:
        for word in stamp.read_text().split():
            if word.startswith("fio-src="):
                return word.split("=", 1)[1]
    except OSError:
        pass
    return "unknown"
