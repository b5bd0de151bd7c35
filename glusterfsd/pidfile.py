"""The pidfile: created and locked before init, so two daemons never share it.

As glusterfsd does, the file is opened without truncating, locked with a
non-blocking `lockf`, and only then truncated and written.  A lock held by a
live process means another daemon runs: we say which pid.  A file left by a
dead process holds no lock, so it is simply taken over.
"""
from __future__ import annotations

import errno
import fcntl
import os


class PidfileError(Exception):
    """The pidfile cannot be taken; the message tells the operator why."""


class Pidfile:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.fd: int | None = None

    def acquire(self) -> None:
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise PidfileError(f"cannot open pidfile {self.path}: {err.strerror}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_pid(fd)
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                who = f"pid {holder}" if holder else "another process"
                raise PidfileError(f"pidfile {self.path} is locked by {who}: "
                                   "is another glusterfs running with this pidfile?") from None
            raise PidfileError(f"cannot lock pidfile {self.path}: {err.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Remove the file (only if it still holds our pid) and drop the lock."""
        if self.fd is None:
            return
        try:
            if _read_pid(self.fd) == os.getpid() and os.path.exists(self.path):
                st_file, st_fd = os.stat(self.path), os.fstat(self.fd)
                if (st_file.st_dev, st_file.st_ino) == (st_fd.st_dev, st_fd.st_ino):
                    os.unlink(self.path)
        finally:
            os.close(self.fd)
            self.fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def running(pid: int) -> bool:
    """Whether process `pid` still runs.  A zombie (dead, not yet reaped) does
    not: its work is over (a shared DRC entry it held will never be answered,
    a daemon that became one has stopped).  One we may not signal runs; one
    whose /proc entry we cannot read (not gone) is taken to run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")
