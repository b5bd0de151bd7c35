"""A bounded LRU of open OS descriptors, by (gfid, access mode).

Why: NFS has no open/close; each READ or WRITE names the file by handle.
Opening and closing the file around every call would cost two syscalls and
a path walk each time, so descriptors stay open here and are shared by every
`Fd` of the same file and mode.  The cache, not the `Fd`, owns them: it is
bounded (RLIMIT_NOFILE is finite), evicts the least recently used, and a
later use of an evicted one reopens it by gfid (`reopen`), transparently.

A descriptor in use by a read or write is pinned; evicting or forgetting it
only marks it, and the last user closes it.  So a descriptor number is never
closed under a thread still using it (which could otherwise be reused for
another file and read from the wrong one).
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from typing import Callable, Iterator

Key = tuple[bytes, int]  # (gfid, O_RDONLY | O_WRONLY | O_RDWR)
_ANY_ACCESS = (os.O_RDWR, os.O_RDONLY, os.O_WRONLY)


class _Entry:
    __slots__ = ("fd", "pins", "opens", "doomed")

    def __init__(self, fd: int):
        self.fd = fd
        self.pins = 0  # reads/writes using it right now
        self.opens = 0  # Fds opened on it and not yet released
        self.doomed = False  # evicted while pinned: the last unpin closes it


class FdCache:
    def __init__(self, capacity: int, reopen: Callable[[bytes, int], int]):
        self.capacity = max(1, capacity)
        self._reopen = reopen
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def adopt(self, gfid: bytes, acc: int, fd: int) -> None:
        """Keep a descriptor just opened for an Fd (open/create).  If one is
        cached already, the new one is closed and the cached one serves."""
        closing: list[int] = []
        with self._lock:
            entry = self._entries.get((gfid, acc))
            if entry is None:
                entry = _Entry(fd)
                self._entries[(gfid, acc)] = entry
                if len(self._entries) > self.capacity:
                    closing = self._evict_locked()
            else:
                self._entries.move_to_end((gfid, acc))
                closing.append(fd)
            entry.opens += 1
        if closing:  # (every CREATE adopts one: no call when nothing is to close)
            self._close_all(closing)

    def has(self, gfid: bytes, acc: int) -> bool:
        """Whether a descriptor is cached (open() then only checks the right)."""
        with self._lock:
            return (gfid, acc) in self._entries

    def note_open(self, gfid: bytes, acc: int) -> bool:
        """An Fd was opened on a cached descriptor; False if none is cached."""
        with self._lock:
            entry = self._entries.get((gfid, acc))
            if entry is None:
                return False
            entry.opens += 1
            self._entries.move_to_end((gfid, acc))
            self.hits += 1
            return True

    @contextlib.contextmanager
    def use(self, gfid: bytes, acc: int) -> Iterator[int]:
        """A descriptor for (gfid, acc), pinned for the duration of the block."""
        entry = self.pin(gfid, acc)
        try:
            yield entry.fd
        finally:
            self.unpin(entry)

    def pin(self, gfid: bytes, acc: int) -> _Entry:
        """`use` without the context manager (READ and WRITE's hot path): the
        entry's `.fd` stays open until `unpin(entry)`, which must follow in a
        finally.  Reopens by gfid if the descriptor was evicted."""
        key = (gfid, acc)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.pins += 1
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
        fd = self._reopen(gfid, acc)  # may raise ESTALE: the file is gone
        closing: list[int] = []
        with self._lock:
            self.misses += 1
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(fd)
                self._entries[key] = entry
                closing = self._evict_locked(keep=key)
            else:
                closing.append(fd)
            entry.pins += 1
        self._close_all(closing)
        return entry

    def pin_cached(self, gfid: bytes) -> _Entry | None:
        """A descriptor of gfid already in the cache (any access mode), pinned as
        `pin` does; None when none is, and then nothing is opened."""
        with self._lock:
            for acc in _ANY_ACCESS:
                entry = self._entries.get((gfid, acc))
                if entry is not None and not entry.doomed:
                    entry.pins += 1
                    self.hits += 1
                    return entry
        return None

    def unpin(self, entry: _Entry) -> None:
        with self._lock:
            entry.pins -= 1
            close = entry.doomed and entry.pins == 0
        if close:
            os.close(entry.fd)

    def release(self, gfid: bytes, acc: int, gone: Callable[[int], bool]) -> None:
        """An Fd was released.  When it was the last one and the file has no
        names left (`gone(fd)`), the descriptor is dropped now instead of
        keeping a dead inode's space allocated until eviction."""
        with self._lock:
            entry = self._entries.get((gfid, acc))
            if entry is None:
                return
            entry.opens = max(entry.opens - 1, 0)
            if entry.opens or entry.pins:
                return
            entry.pins += 1  # so an eviction cannot close it while we look
        try:
            dead = gone(entry.fd)
        except OSError:
            dead = True
        finally:
            self.unpin(entry)
        if dead:
            self.forget(gfid)

    def forget(self, gfid: bytes) -> None:
        """The file is gone (last link removed): drop every descriptor of it."""
        closing: list[int] = []
        with self._lock:   # keys are (gfid, access mode): look the three up, scan nothing
            for acc in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
                if (gfid, acc) in self._entries:
                    closing.extend(self._drop_locked((gfid, acc)))
        if closing:
            self._close_all(closing)

    def clear(self) -> None:
        closing: list[int] = []
        with self._lock:
            for key in list(self._entries):
                closing.extend(self._drop_locked(key))
        self._close_all(closing)

    def _drop_locked(self, key: Key) -> list[int]:
        entry = self._entries.pop(key)
        if entry.pins:
            entry.doomed = True
            return []
        return [entry.fd]

    def _evict_locked(self, keep: Key | None = None) -> list[int]:
        closing: list[int] = []
        while len(self._entries) > self.capacity:
            victim = next(iter(self._entries))
            if victim == keep:
                self._entries.move_to_end(victim)
                victim = next(iter(self._entries))
            closing.extend(self._drop_locked(victim))
            self.evictions += 1
        return closing

    @staticmethod
    def _close_all(fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
