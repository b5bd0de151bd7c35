"""Gfids this server has vouched for, by inode and change time: a listing's
cache that needs no xattr read for an object that has not changed.

Why: READDIRPLUS needs every entry's gfid, and reading the gfid xattr (and,
after a restart, checking the object's index entry) costs two or three
path-walking syscalls per entry, more than the lstat that gives the
attributes.  The lstat is needed anyway; if it shows an inode whose ctime is
the one we saw when we last vouched for its gfid, nothing can have changed:

* setting or removing the gfid xattr changes ctime;
* removing or replacing the object's index entry (a hard link of a
  non-directory) changes its link count, hence its ctime;
* a directory's index entry names its parent and name, which only a rename
  of the directory changes (which changes its ctime); we also keep the parent
  and name it was vouched under and compare them;
* an inode number reused by a new object: the new object's ctime is the
  time it was made, later than the old one's.

The last point needs a ctime that no later change can repeat: timestamps are
coarse (a clock tick), so an object is remembered only if its ctime is at
least `SETTLED_NS` older than the clock read before its lstat.  Any change
after that lstat stamps a ctime no older than that clock reading (minus a
tick, far below the margin), so it never equals the remembered one.  (A wall
clock stepped back by more than the margin voids this; so it would most
time-based caches.  The entries live only as long as the process.)

Objects changed in the last `SETTLED_NS` (a directory being filled) are not
remembered and take the xattr path every time.  Bounded (CAPACITY): the
oldest entries go first, so listings of more than CAPACITY entries in all
keep missing (first in, first out against a sequential scan).
"""
from __future__ import annotations

import struct
import threading
import time
from itertools import islice

SETTLED_NS = 1_000_000_000   # far above any file system's timestamp granularity
CAPACITY = 131072            # entries; about 17 MiB when full
_STAMP = struct.Struct("=qQ")   # ctime_ns, st_dev: what must still match


class CtimeGfids:
    """(st_dev, st_ino) -> gfid, valid while st_ctime_ns is unchanged."""

    __slots__ = ("_by_ino", "_dirs", "_capacity", "_evict", "_lock")

    def __init__(self, capacity: int = CAPACITY):
        # ino -> _STAMP + gfid in one bytes object (a tuple of three objects
        # would take twice the memory); ino -> (parent, name) for directories,
        # whose index entry names them (an inode's type never changes)
        self._by_ino: dict[int, bytes] = {}
        self._dirs: dict[int, tuple[bytes, bytes]] = {}
        self._capacity = max(capacity, 0)
        self._evict = max(capacity // 8, 1)   # dropped at once when full: amortizes the scan
        self._lock = threading.Lock()

    @staticmethod
    def clock() -> int:
        """Read before the lstat whose result may be remembered (see `remember`)."""
        return time.time_ns()

    def gfid(self, st, parent: bytes, name: bytes) -> bytes | None:
        """The gfid remembered for the object `st` describes, if it has not changed
        (and, for a directory, is still `name` in `parent`)."""
        ino = st.st_ino
        known = self._by_ino.get(ino)
        if known is None or known[:16] != _STAMP.pack(st.st_ctime_ns, st.st_dev):
            return None
        if ino in self._dirs and self._dirs.get(ino) != (parent, name):
            return None
        return known[16:]

    def remember(self, st, gfid: bytes, parent: bytes, name: bytes, is_dir: bool,
                 clock: int) -> None:
        """Remember gfid (just vouched for) for `st`, taken after `clock` was read."""
        if st.st_ctime_ns > clock - SETTLED_NS or self._capacity == 0 or len(gfid) != 16:
            return
        by_ino = self._by_ino
        if len(by_ino) >= self._capacity:
            with self._lock:
                try:
                    oldest = list(islice(by_ino, self._evict)) \
                        if len(by_ino) >= self._capacity else ()
                except RuntimeError:    # changed under us (another thread): next time
                    oldest = ()
                for ino in oldest:
                    by_ino.pop(ino, None)
                    self._dirs.pop(ino, None)
        ino = st.st_ino
        if is_dir:
            self._dirs[ino] = (parent, name)
        else:
            self._dirs.pop(ino, None)
        by_ino[ino] = _STAMP.pack(st.st_ctime_ns, st.st_dev) + gfid

    def clear(self) -> None:
        self._by_ino.clear()
        self._dirs.clear()

    def __len__(self) -> int:
        return len(self._by_ino)
