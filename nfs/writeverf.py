"""The NFSv3 write verifier (WRITE and COMMIT `verf`).

RFC 1813: the verifier must change whenever the server may have lost data it
acknowledged as UNSTABLE but not yet committed; a client that sees it change
resends everything it has not seen committed.  Here uncommitted data lives in
the kernel page cache, which survives anything but a crash of the machine or
a restart of this server (we cannot tell which), so:

- a new verifier is made at each start (the time in nanoseconds, so two
  starts in the same second still differ; gnfs uses seconds);
- it changes again when writeback reports an error (EIO/ENOSPC on fsync):
  the kernel may have dropped dirty pages, so the client must resend;
- a prefork master starts its workers with one shared verifier (they share
  the page cache), through `GLUSTERFS_NFS_WRITE_VERIFIER` (16 hex digits) in
  the environment, or by calling `set_current()` before forking.
"""
from __future__ import annotations

import os
import struct
import threading
import time

ENV_VAR = "GLUSTERFS_NFS_WRITE_VERIFIER"
SIZE = 8

_lock = threading.Lock()
_current: bytes | None = None


def _fresh(previous: bytes | None) -> bytes:
    value = struct.pack(">Q", time.time_ns() & 0xFFFFFFFFFFFFFFFF)
    while value == previous:  # clock did not move: still make it differ
        value = struct.pack(">Q", (int.from_bytes(value, "big") + 1) & 0xFFFFFFFFFFFFFFFF)
    return value


def from_environment() -> bytes | None:
    """The verifier a prefork master handed down, or None (absent or malformed)."""
    text = os.environ.get(ENV_VAR, "")
    try:
        value = bytes.fromhex(text)
    except ValueError:
        return None
    return value if len(value) == SIZE else None


def start() -> bytes:
    """Fix the verifier for this server start (the environment's, else a new one)."""
    global _current
    with _lock:
        _current = from_environment() or _fresh(_current)
        return _current


def current() -> bytes:
    """The verifier to send now (made on first use if start() was not called)."""
    global _current
    value = _current
    if value is None:
        with _lock:
            if _current is None:
                _current = from_environment() or _fresh(None)
            value = _current
    return value


def set_current(value: bytes) -> None:
    """Use this verifier (a prefork master's, shared with its workers)."""
    global _current
    if len(value) != SIZE:
        raise ValueError(f"a write verifier has {SIZE} bytes")
    with _lock:
        _current = bytes(value)


def data_may_be_lost() -> bytes:
    """Uncommitted data may be gone (writeback error): change the verifier."""
    global _current
    with _lock:
        _current = _fresh(_current)
        return _current
