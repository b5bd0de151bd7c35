"""SIGUSR1 statedump: what an operator (or a bug report) needs to see at once.

Written like GlusterFS's: `<dir>/glusterdump.<pid>.dump.<unix time>`, through a
temporary file renamed into place so a reader never sees half a dump, with
`DUMP-START-TIME`, `[section]` headers, `key=value` lines and `DUMP-END-TIME`.
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterable

import psutil

DEFAULT_DIR = "/var/run/gluster"


def _stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d} +0000"


def process_figures(pid: int | None = None) -> dict[str, Any]:
    """RSS, threads, fds and CPU of one process, from psutil."""
    proc = psutil.Process(pid)
    with proc.oneshot():
        cpu = proc.cpu_times()
        mem = proc.memory_info()
        return {
            "pid": proc.pid,
            "title": " ".join(proc.cmdline()).strip(),
            "rss_bytes": mem.rss,
            "vms_bytes": mem.vms,
            "threads": proc.num_threads(),
            "fds": proc.num_fds(),
            "cpu_user_s": round(cpu.user, 3),
            "cpu_system_s": round(cpu.system, 3),
            "uptime_s": round(time.time() - proc.create_time(), 3),
        }


def flatten(values: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Nested dicts become dotted keys, so every line stays `key=value` for grep."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, name + ".")
        else:
            yield name, value


def render(sections: Iterable[tuple[str, dict[str, Any]]]) -> str:
    lines = [f"DUMP-START-TIME: {_stamp()}", ""]
    for title, values in sections:
        lines.append(f"[{title}]")
        lines.extend(f"{key}={value}" for key, value in flatten(values))
        lines.append("")
    lines.append(f"DUMP-END-TIME: {_stamp()}")
    return "\n".join(lines) + "\n"


def write(directory: str, sections: Iterable[tuple[str, dict[str, Any]]]) -> str:
    """Write a dump into directory; returns its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"glusterdump.{os.getpid()}.dump.{int(time.time())}")
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(render(sections))
    os.replace(tmp, path)
    return path
