"""An LRU of O_PATH descriptors of directories, by gfid.

Why: resolving a directory's gfid walks its ancestors through the index
(a readlink and an openat per level).  Keeping descriptors of recently used
directories turns that into one fstat.  A descriptor follows its inode across
renames, and fstat shows nlink 0 once the directory is removed, so a cached
entry never names the wrong directory.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict


class DirFdCache:
    """LRU of O_PATH descriptors of directories, by gfid.  Callers get dups, so
    evicting (closing) an entry never pulls a descriptor from under anyone."""

    def __init__(self, capacity: int):
        self.capacity = max(capacity, 0)
        self._fds: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def dup(self, gfid: bytes) -> int | None:
        with self._lock:
            fd = self._fds.get(gfid)
            if fd is None:
                self.misses += 1
                return None
            self._fds.move_to_end(gfid)
            self.hits += 1
            return os.dup(fd)

    def put(self, gfid: bytes, fd: int) -> None:
        if self.capacity == 0:
            return
        copy = os.dup(fd)
        with self._lock:
            old = self._fds.pop(gfid, None)
            self._fds[gfid] = copy
            while len(self._fds) > self.capacity:
                _, victim = self._fds.popitem(last=False)
                os.close(victim)
        if old is not None:
            os.close(old)

    def forget(self, gfid: bytes) -> None:
        with self._lock:
            fd = self._fds.pop(gfid, None)
        if fd is not None:
            os.close(fd)

    def clear(self) -> None:
        with self._lock:
            fds, self._fds = list(self._fds.values()), OrderedDict()
        for fd in fds:
            os.close(fd)

    def __len__(self) -> int:
        return len(self._fds)
