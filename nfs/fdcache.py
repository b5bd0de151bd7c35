"""Open file descriptors kept between NFS calls.

NFSv3 has no OPEN/CLOSE: every READ, WRITE and COMMIT names the file by
handle.  Opening and closing per call would cost two syscalls and, worse,
close() after an UNSTABLE write; so, like gnfs's anonymous fds and knfsd's
file cache, we keep a bounded LRU of fds per (subvolume, gfid).

The fds are opened as the server itself (`SERVER_CALLER`: real root, which
storage never root-squashes -- squashing is about what a CLIENT's uid 0 may
do, and a squashed server could not open its users' 0600 files for them).
Every fd here is marked anonymous (`ANONYMOUS_FD`, also those adopted from
CREATE): one fd serves every caller, so storage checks each READ and WRITE
against that call's caller on a fresh fstat (see xlators/storage/posix_io).
Entries are reference counted: an fd evicted or dropped while a call still
uses it is released when that call hands it back, never under it.  Idle fds
are closed after `idle_seconds` so a file deleted by someone else does not
keep its space for long.
"""
from __future__ import annotations

import errno
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager

from glusterfsd.xlator import ANONYMOUS_FD, SERVER_CALLER, Fd


class _Entry:
    __slots__ = ("xlator", "fd", "writable", "refs", "dead", "used")

    def __init__(self, xlator, fd: Fd, writable: bool):
        self.xlator = xlator
        self.fd = fd
        self.writable = writable
        self.refs = 0
        self.dead = False
        self.used = time.monotonic()


class FdCache:
    def __init__(self, limit: int = 512, idle_seconds: float = 60.0):
        self.limit = max(1, limit)
        self.idle_seconds = idle_seconds
        self._entries: OrderedDict[tuple[int, bytes], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()
        self.opens = 0
        self.hits = 0

    @contextmanager
    def use(self, xlator, gfid: bytes, writable: bool):
        """An open Fd for gfid on xlator, held for the block.

        Opens O_RDWR when it can (so one fd serves reads and writes), falling
        back to O_RDONLY for reads on read-only storage.  Raises the open's
        OSError.
        """
        entry = self.acquire(xlator, gfid, writable)
        try:
            yield entry.fd
        finally:
            self.release(entry)

    def adopt(self, xlator, gfid: bytes, fd: Fd, writable: bool) -> None:
        """Keep an fd a fop already opened (CREATE's), instead of closing it."""
        key = (id(xlator), gfid)
        fd.ctx[ANONYMOUS_FD] = True   # the creator's Fd now serves every caller
        entry = _Entry(xlator, fd, writable)
        stale = []
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None and self._retire_locked(old):
                stale.append(old)
            self._entries[key] = entry
            if len(self._entries) > self.limit:
                stale.extend(self._evict_locked())
        if stale:   # CREATE adopts one per call: no calls when there is nothing to close
            self._close(stale)

    def drop(self, xlator, gfid: bytes) -> None:
        """Forget gfid's fd (its file was removed, or renamed over)."""
        with self._lock:
            entry = self._entries.pop((id(xlator), gfid), None)
            if entry is None or not self._retire_locked(entry):
                return   # REMOVE drops one per call; most often it was not open
        self._close([entry])

    def close_all(self) -> None:
        """Release every idle fd (fini); busy ones are released by their users."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            closable = [e for e in entries if self._retire_locked(e)]
        self._close(closable)

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict:
        return {"open": len(self._entries), "limit": self.limit,
                "opens": self.opens, "hits": self.hits}

    def acquire(self, xlator, gfid: bytes, writable: bool) -> _Entry:
        """`use` without the context manager, for READ and WRITE's hot path:
        the entry's `.fd`, held until `release(entry)` (in a finally)."""
        key = (id(xlator), gfid)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.writable or not writable):
                entry.refs += 1
                entry.used = time.monotonic()
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
        fd, got_writable = self._open(xlator, gfid, writable)
        fresh = _Entry(xlator, fd, got_writable)
        fresh.refs = 1
        stale = []
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None and self._retire_locked(old):
                stale.append(old)
            self._entries[key] = fresh
            stale.extend(self._evict_locked())
            stale.extend(self._sweep_locked())
        self._close(stale)
        return fresh

    # --- internals -------------------------------------------------------
    def _open(self, xlator, gfid: bytes, writable: bool) -> tuple[Fd, bool]:
        self.opens += 1
        try:
            fd, got_writable = xlator.open(SERVER_CALLER, gfid, os.O_RDWR), True
        except OSError as err:
            if writable or err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM,
                                             errno.ETXTBSY):
                raise
            fd, got_writable = xlator.open(SERVER_CALLER, gfid, os.O_RDONLY), False
        fd.ctx[ANONYMOUS_FD] = True
        return fd, got_writable

    def release(self, entry: _Entry) -> None:
        with self._lock:
            entry.refs -= 1
            closable = entry.dead and entry.refs == 0
        if closable:
            self._close([entry])

    def _retire_locked(self, entry: _Entry) -> bool:
        """Mark an entry out of the table; True if nobody holds it (close it now)."""
        entry.dead = True
        return entry.refs == 0

    def _evict_locked(self) -> list[_Entry]:
        out = []
        while len(self._entries) > self.limit:
            _key, entry = self._entries.popitem(last=False)
            if self._retire_locked(entry):
                out.append(entry)
        return out

    def _sweep_locked(self) -> list[_Entry]:
        now = time.monotonic()
        if now - self._last_sweep < self.idle_seconds / 4:
            return []
        self._last_sweep = now
        out = []
        for key in [k for k, e in self._entries.items()
                    if e.refs == 0 and now - e.used > self.idle_seconds]:
            entry = self._entries.pop(key)
            if self._retire_locked(entry):
                out.append(entry)
        return out

    @staticmethod
    def _close(entries) -> None:
        for entry in entries:
            try:
                entry.xlator.release(entry.fd)
            except Exception:  # release never fails by contract; be safe in fini paths
                pass
