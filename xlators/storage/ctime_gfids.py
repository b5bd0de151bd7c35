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
time-based caches.)  The entries of non-directories outlive the process in
a snapshot file (see `gfid_snapshot`): the argument above rests on ctimes
the file system keeps, not on anything this process remembers.

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
from typing import Iterable

SETTLED_NS = 1_000_000_000   # far above any file system's timestamp granularity
CAPACITY = 131072            # entries; about 17 MiB when full
STAMP = struct.Struct("<qQ")    # ctime_ns, st_dev: what must still match
# One remembered entry as a snapshot holds it: st_ino, then the value kept in
# memory (STAMP + gfid).  Little-endian throughout, so a snapshot means the
# same on any machine.
RECORD = struct.Struct("<Q32s")


class CtimeGfids:
    """(st_dev, st_ino) -> gfid, valid while st_ctime_ns is unchanged."""

    __slots__ = ("_by_ino", "_dirs", "_capacity", "_evict", "_lock", "remembered")

    def __init__(self, capacity: int = CAPACITY):
        # ino -> STAMP + gfid in one bytes object (a tuple of three objects
        # would take twice the memory); ino -> (parent, name) for directories,
        # whose index entry names them (an inode's type never changes)
        self._by_ino: dict[int, bytes] = {}
        self._dirs: dict[int, tuple[bytes, bytes]] = {}
        self._capacity = max(capacity, 0)
        self._evict = max(capacity // 8, 1)   # dropped at once when full: amortizes the scan
        self._lock = threading.Lock()
        # how many entries were stored in all (whether a snapshot is out of
        # date; a count, not exact under threads, which is all it is used for)
        self.remembered = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @staticmethod
    def clock() -> int:
        """Read before the lstat whose result may be remembered (see `remember`)."""
        return time.time_ns()

    def gfid(self, st, parent: bytes, name: bytes) -> bytes | None:
        """The gfid remembered for the object `st` describes, if it has not changed
        (and, for a directory, is still `name` in `parent`)."""
        ino = st.st_ino
        known = self._by_ino.get(ino)
        if known is None or known[:16] != STAMP.pack(st.st_ctime_ns, st.st_dev):
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
        by_ino[ino] = STAMP.pack(st.st_ctime_ns, st.st_dev) + gfid
        self.remembered += 1

    def records(self, dev: int) -> list[tuple[int, bytes]]:
        """(st_ino, value) of every remembered non-directory of file system
        `dev`, as `RECORD` packs them: what a snapshot keeps.  Directories are
        left out: one is vouched for also by its index symlink, which can
        change without its ctime."""
        # dict.copy of int keys runs without releasing the GIL: a consistent copy
        # while other threads remember
        by_ino = self._by_ino.copy()
        dirs = self._dirs.copy()
        on_dev = struct.pack("<Q", dev)
        return [(ino, value) for ino, value in by_ino.items()
                if value[8:16] == on_dev and ino not in dirs]

    def restore(self, records: Iterable[tuple[int, bytes]]) -> int:
        """Take (st_ino, value) pairs from a snapshot (see `gfid_snapshot`, which
        checks them), up to the capacity; an entry remembered since is kept (it
        is newer).  Returns how many were taken."""
        by_ino = self._by_ino
        room = max(self._capacity - len(by_ino), 0)
        if not by_ino:                  # the usual case, at the first listing: at C speed
            by_ino.update(islice(records, room))
            return len(by_ino)
        taken = 0
        for ino, value in records:
            if taken >= room:
                break
            if by_ino.setdefault(ino, value) is value:
                self._dirs.pop(ino, None)
                taken += 1
        return taken

    def clear(self) -> None:
        self._by_ino.clear()
        self._dirs.clear()

    def __len__(self) -> int:
        return len(self._by_ino)
