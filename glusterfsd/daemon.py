"""Daemonize so that the parent's exit status says whether the server came up.

glusterfsd forks, and the parent blocks reading the child's init status from
a pipe before it exits with it.  Init scripts then see `0` only once the
server is really serving, and a non-zero status with a one-line reason when
the volfile is bad or a port is taken, instead of a daemon that dies
silently a moment after `start` reported success.
"""
from __future__ import annotations

import os
import sys


class StatusPipe:
    """The child's side of the pipe: report success or failure exactly once."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def report(self, status: int, reason: str = "") -> None:
        if self.fd is None:
            return
        line = f"{status} {reason}".strip().replace("\n", " ") + "\n"
        try:
            os.write(self.fd, line.encode())
        except OSError:
            pass  # the parent is gone; nothing to tell
        os.close(self.fd)
        self.fd = None

    def ok(self) -> None:
        self.report(0)

    def fail(self, reason: str, status: int = 1) -> None:
        self.report(status, reason)


def daemonize() -> StatusPipe:
    """Fork into the background; returns in the child only.

    The parent waits for the child's report and exits with its status,
    printing the reason (if any) to stderr.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        _parent_wait(read_fd, pid)
    os.close(read_fd)
    os.setsid()
    if os.fork():  # the session leader exits so the daemon never gets a tty
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.set_inheritable(write_fd, False)
    return StatusPipe(write_fd)


def _parent_wait(read_fd: int, pid: int) -> None:
    chunks = []
    while True:
        data = os.read(read_fd, 4096)
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)  # reap the intermediate child
    text = b"".join(chunks).decode(errors="replace").strip()
    if not text:
        sys.stderr.write("glusterfs: the daemon exited before reporting its status; see the log file\n")
        os._exit(1)
    status_text, _, reason = text.partition(" ")
    status = int(status_text) if status_text.isdigit() else 1
    if reason:
        sys.stderr.write(f"glusterfs: {reason}\n")
    os._exit(status)
