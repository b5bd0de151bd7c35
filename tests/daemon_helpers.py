"""Run the real `glusterfs` daemon in tests, as an operator would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from glusterfsd.pidfile import running

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def glusterfs_cmd() -> list[str]:
    return [sys.executable, "-m", "glusterfsd"]


def env() -> dict:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = ROOT + os.pathsep + environment.get("PYTHONPATH", "")
    return environment


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(glusterfs_cmd() + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env(), cwd=ROOT)


def write_wrapper(path: str) -> str:
    """An executable `glusterfs` for init scripts (which need a single program path)."""
    with open(path, "w") as handle:
        handle.write(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m glusterfsd \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def read_pid(pidfile: str) -> int:
    with open(pidfile) as handle:
        return int(handle.read().strip())


alive = running   # the daemon's own test of a pid (a zombie is not alive)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def stop(pid: int, sig: int = signal.SIGTERM, timeout: float = 15.0) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    if wait_for(lambda: not alive(pid), timeout):
        return True
    os.kill(pid, signal.SIGKILL)
    return False
