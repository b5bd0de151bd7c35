"""Logging in GlusterFS's line format, to a file that SIGHUP can reopen.

    [2026-11-21 10:00:00.123456 +0000] I [graph.py:123:init] 0-nfs-server: text

Operators grep these lines the same way they grep gnfs's nfs.log, so the
format is kept to the letter: UTC time with microseconds, one-letter level,
[file:line:function], then `<graph id>-<xlator name>:`.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "TRACE": TRACE,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "NONE": logging.CRITICAL + 10,
}
_LETTER = {TRACE: "T", logging.DEBUG: "D", logging.INFO: "I", logging.WARNING: "W",
           logging.ERROR: "E", logging.CRITICAL: "C"}

ROOT = "glusterfs"
DEFAULT_LOG_FILE = "/var/log/glusterfs/glusterfs.log"


class GlusterFormatter(logging.Formatter):
    """Formats a record as GlusterFS does (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        micros = int((record.created - seconds) * 1_000_000)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
        letter = _LETTER.get(record.levelno, "I")
        domain = getattr(record, "xlator", None) or record.name.rsplit(".", 1)[-1]
        graph = getattr(record, "graph_id", 0)
        line = (f"[{stamp}.{micros:06d} +0000] {letter} "
                f"[{record.filename}:{record.lineno}:{record.funcName}] "
                f"{graph}-{domain}: {record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class ReopenableFileHandler(logging.Handler):
    """Appends to a path; `reopen()` starts a new file after logrotate moved it."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self._lock = threading.Lock()
        self.fd = self._open()

    def _open(self):
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def fileno(self) -> int:
        return self.fd

    def reopen(self) -> None:
        with self._lock:
            old, self.fd = self.fd, self._open()
        os.close(old)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            with self._lock:
                # One write per record: with O_APPEND the kernel appends it whole, so
                # the master's and the workers' lines never interleave mid-line.
                written = os.write(self.fd, data)
                while written < len(data):      # only on a full disk or a signal
                    written += os.write(self.fd, data[written:])
        except Exception:  # never let logging kill a request
            self.handleError(record)

    def close(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        super().close()


_handler: logging.Handler | None = None


def setup(level: str = "INFO", path: str | None = None) -> logging.Handler:
    """Route every project logger to `path` ('-' or None: stderr) at `level`."""
    global _handler
    root = logging.getLogger(ROOT)
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    if path in (None, "-"):
        _handler = logging.StreamHandler(sys.stderr)
    else:
        _handler = ReopenableFileHandler(path)
    _handler.setFormatter(GlusterFormatter())
    root.addHandler(_handler)
    root.setLevel(LEVELS[level.upper()])
    root.propagate = False
    return _handler


def reopen() -> None:
    """Reopen the log file (SIGHUP), so a rotated file is let go."""
    if isinstance(_handler, ReopenableFileHandler):
        _handler.reopen()


def fileno() -> int:
    """The descriptor log lines go to now (the file, or stderr's 2)."""
    if isinstance(_handler, ReopenableFileHandler):
        return _handler.fileno()
    return 2


class XlatorLogger(logging.LoggerAdapter):
    """A logger whose lines carry `<graph id>-<xlator name>`."""

    def process(self, msg, kwargs):
        extra = kwargs.setdefault("extra", {})
        extra.setdefault("xlator", self.extra["xlator"])
        extra.setdefault("graph_id", self.extra.get("graph_id", 0))
        return msg, kwargs

    def trace(self, msg, *args, **kwargs):
        self.log(TRACE, msg, *args, **kwargs)


def get_logger(domain: str, graph_id: int = 0) -> XlatorLogger:
    """The logger for an xlator or a subsystem (`epoll`, `rpcsvc`, `glusterfsd`)."""
    return XlatorLogger(logging.getLogger(f"{ROOT}.{domain}"),
                        {"xlator": domain, "graph_id": graph_id})
