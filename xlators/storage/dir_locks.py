"""Striped locks by directory gfid: an entry op's pre-op attributes, the
change and the post-op attributes of its parent directory, as one step.

Why: NFSv3 replies to CREATE, REMOVE, RENAME, ... carry `wcc_data`, the
directory's attributes before and after the change.  A client that finds
`pre` equal to what it cached, and `post` following from its own change,
keeps its cached directory listing; if another change slipped in between,
the pair must show it, or the client keeps a listing that misses that
entry.  So within this process the parent is locked from its fstat before
the change until its fstat after it.

The locks are striped (a fixed array, chosen by a hash of the gfid), so
memory stays bounded whatever the number of directories; two directories
sharing a stripe only wait for each other a little.  Several directories
(RENAME) are locked in stripe order, so two renames cannot deadlock.

Limit, accepted as gnfs and knfsd accept it: a change made by another
process -- another prefork worker, another NFS head, a local user -- is not
serialized with ours, so its effect may show in a reply's `post` without
being its own.  The client then sees a directory that changed more than its
request explains and revalidates, which is the safe direction.
"""
from __future__ import annotations

import threading

STRIPES = 256


class LocksInOrder:
    """Holds several locks as one `with` block: taken in the given order, let go
    in reverse; if taking one fails, those already taken are let go.

    A small class rather than a generator context manager over an ExitStack:
    every entry op takes one or two of these, and that machinery cost about
    ten Python calls each time."""

    __slots__ = ("locks",)

    def __init__(self, locks: list):
        self.locks = locks

    def __enter__(self) -> "LocksInOrder":
        taken = 0
        try:
            for lock in self.locks:
                lock.acquire()
                taken += 1
        except BaseException:
            for lock in reversed(self.locks[:taken]):
                lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for lock in reversed(self.locks):
            lock.release()


class DirLocks:
    """A fixed set of locks; `held(*gfids)` takes the ones for those directories."""

    def __init__(self, stripes: int = STRIPES):
        self._locks = [threading.Lock() for _ in range(max(1, stripes))]

    def stripe(self, gfid: bytes) -> int:
        return int.from_bytes(bytes(gfid[-4:]), "big") % len(self._locks)

    def held(self, *gfids: bytes):
        """A context manager holding the stripes of these directory gfids (each once,
        in index order); for one directory, its stripe's lock itself."""
        if len(gfids) == 1:
            return self._locks[self.stripe(gfids[0])]
        return LocksInOrder([self._locks[slot] for slot in sorted({self.stripe(g) for g in gfids})])
