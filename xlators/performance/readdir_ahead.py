"""The `performance/readdir-ahead` xlator: the next batch of a listing, made
while the client is still reading the last one.

Why: a client lists a big directory one reply at a time, each call asking
for the entries after the last cookie it got, and sends the next call only
once it has decoded the last reply.  The server's half of that ping-pong
(for READDIRPLUS: an lstat and a gfid per entry) and the client's half run
one after the other, so one core waits while the other works.  Like
GlusterFS's readdir-ahead, this xlator answers a `readdirp` that continues
a listing and then, before the client asks, has its subvolume make the
batch after it.  It does so on the thread that served the call, once the
reply is out (`glusterfsd.after_reply`; a thread of its own fought the
serving threads for the GIL and cost more than it saved), so the storage
work of the next batch overlaps the client's decoding of this one.

Only what a client would have got anyway is handed out:

* entries are answered from what a listing holds only to a call with the
  same directory and credentials (uid, gid, groups) that continues from a
  cookie of the batch last handed out: the subvolume made every batch as
  that caller, through a directory opened as that caller, so the same
  permission checks held (and the call's own `opendir` checked them again);
* every modifying fop that goes through this xlator (create, mkdir, mknod,
  symlink, link, unlink, rmdir, rename, setattr, write, an open with
  O_TRUNC, xattr changes) makes every batch read before it finished stale,
  so a client never sees attributes older than a change the server had
  already answered;
* a batch older than `MAX_AGE` is not used: changes that do not go through
  this xlator (another worker process, or the export directory changed
  behind the server's back) are seen after at most that long, far sooner
  than NFS clients look again on their own (they cache attributes 3 s and
  more).  Access times moved by READ are not tracked (`relatime` barely
  moves them either).

Bounded: at most `MAX_HELD` listings are followed, and batches made ahead
take at most `rda-cache-limit` bytes (each counted at the size it was made
for); a listing not served for `MAX_AGE` is forgotten.  A batch that fails
(the directory removed, permissions changed) is not kept: the call makes it
itself and answers its error.  Plain `readdir` (names only) is cheap and
passes through.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from collections import OrderedDict

from glusterfsd import after_reply
from glusterfsd.options import Option
from glusterfsd.xlator import Xlator, register

MAX_AGE = 1.0           # seconds a batch made ahead stays usable (see the module doc)
MAX_HELD = 64           # listings followed at once
# made: batches made ahead and kept; dropped: made, but the listing had moved on (or been
# forgotten) by the time the batch was ready, so the work was for nothing
_COUNTS = ("made", "used", "leftovers", "stale", "failed", "missed", "not_made", "dropped")


class _Batch:
    """Entries the subvolume gave, when, and under which change generation."""

    __slots__ = ("entries", "eof", "gen", "made_at", "size")

    def __init__(self, entries: list, eof: bool, gen: int, made_at: float, size: int):
        self.entries, self.eof, self.gen, self.made_at, self.size = \
            entries, eof, gen, made_at, size


class _Listing:
    """One directory listed by one set of credentials: the batch last handed
    out (the entries of it the client did not take are answered from it) and
    the one made ahead, which follows the handed-out one's last cookie."""

    __slots__ = ("caller", "handed", "ahead")

    def __init__(self, caller, handed: _Batch):
        self.caller = caller
        self.handed = handed
        self.ahead: _Batch | None = None


@register
class ReaddirAhead(Xlator):
    type_name = "performance/readdir-ahead"
    children_range = (1, 1)
    options = (
        Option("rda-cache-limit", "sizet", "10MB", min=1, max=1 << 40,
               description="How many bytes of directory entries made ahead are held at "
               "most (each batch counted at the reply size it was made for).  Past it, no "
               "further batch is made ahead until one is claimed or expires."),
    )

    def init(self) -> None:
        self._lock = threading.Lock()
        # (gfid, uid, gid, groups) -> _Listing, the least recently served first
        self._listings: OrderedDict = OrderedDict()
        self._held = 0                              # bytes of the batches made ahead
        # Each change stores a value never stored before (see `_changed`).
        self._counter = itertools.count(1)
        self._gen = 0
        self.counts = dict.fromkeys(_COUNTS, 0)     # for the statedump; not exact under threads

    def fini(self) -> None:
        with self._lock:
            self._listings.clear()
            self._held = 0

    def dump_private(self) -> dict:
        with self._lock:
            held = {"listings": len(self._listings), "held_bytes": self._held}
        return {**held, "cache_limit": self.opts["rda-cache-limit"], **self.counts}

    # --- the listing ------------------------------------------------------------------

    def readdirp(self, caller, fd, cookie: int, size: int):
        """What the subvolume would answer; from what this listing holds when it can.

        A client takes what fits its reply, which may be less than a batch:
        the entries after the cookie it took last are answered first (the
        "leftovers", no new work); a call that goes on exactly where the
        handed-out batch ends gets the batch made ahead, whole even when it
        asks for less (the NFS layer takes what fits, and the rest is the next
        call's leftovers)."""
        key = (fd.gfid, caller.uid, caller.gid, caller.groups)
        if cookie:
            found = self._continue(key, cookie)
            if found is not None:
                return found
        gen = self._gen             # before the read: a change after it shows
        entries, eof = self.first_child.readdirp(caller, fd, cookie, size)
        self._hand_out(key, caller, _Batch(entries, eof, gen, time.monotonic(), size))
        return entries, eof

    def _continue(self, key, cookie: int):
        """(entries, eof) after `cookie` from what the listing holds, or None."""
        with self._lock:
            listing = self._listings.get(key)
            handed = listing.handed if listing is not None else None
            if handed is not None and handed.entries[-1].cookie == cookie:
                batch, rest, kind = listing.ahead, None, "used"
                if batch is not None:
                    listing.ahead = None
                    self._held -= batch.size
                    rest = batch.entries
            elif handed is not None:
                batch, kind = handed, "leftovers"
                at = next((i for i, entry in enumerate(handed.entries)
                           if entry.cookie == cookie), None)
                rest = handed.entries[at + 1:] if at is not None else None
            else:
                batch = rest = None
        if rest is None:
            self.counts["missed"] += 1
            return None
        if batch.gen != self._gen or time.monotonic() - batch.made_at > MAX_AGE:
            self.counts["stale"] += 1
            return None
        self.counts[kind] += 1
        if kind == "used":
            self._hand_out(key, listing.caller, batch)
        return rest, batch.eof

    def _hand_out(self, key, caller, batch: _Batch) -> None:
        """Remember `batch` as the listing's handed-out one, and have the one after
        it made once the reply is out (nothing is kept past the end)."""
        with self._lock:
            self._forget_locked(key)
            self._expire(time.monotonic())
            if batch.eof or not batch.entries:
                return
            self._listings[key] = _Listing(caller, batch)
        after = batch.entries[-1].cookie
        if not after_reply.defer(lambda: self._make(key, after)):
            self.counts["not_made"] += 1        # not on a thread that serves calls

    def _expire(self, now: float) -> None:
        """Forget listings (under the lock) served longer ago than MAX_AGE, or
        beyond MAX_HELD: the least recently served first."""
        listings = self._listings
        while listings:
            key, listing = next(iter(listings.items()))
            if len(listings) < MAX_HELD and now - listing.handed.made_at <= MAX_AGE:
                return
            self._forget_locked(key)

    def _forget_locked(self, key) -> None:
        """Drop a listing and the bytes of its batch made ahead (under the lock)."""
        listing = self._listings.pop(key, None)
        if listing is not None and listing.ahead is not None:
            self._held -= listing.ahead.size

    def _make(self, key, cookie: int) -> None:
        """Make the batch after `cookie` as the listing's caller and hold it as
        its batch made ahead (after a reply: see `glusterfsd.after_reply`)."""
        with self._lock:
            listing = self._listings.get(key)
            if listing is None or listing.ahead is not None or \
                    listing.handed.entries[-1].cookie != cookie or \
                    self._held + listing.handed.size > self.opts["rda-cache-limit"]:
                self.counts["not_made"] += 1
                return
            caller, size = listing.caller, listing.handed.size
        gen = self._gen             # before the first read: a change after it shows
        child = self.first_child
        try:
            fd = child.opendir(caller, key[0])      # the caller's permission check
            try:
                entries, eof = child.readdirp(caller, fd, cookie, size)
            finally:
                child.release(fd)
        except OSError as err:      # the call will make it itself and answer the error
            self.counts["failed"] += 1
            self.log.debug("batch after cookie %d not made ahead: %s", cookie, err)
            return
        with self._lock:
            kept = self._listings.get(key) is listing and listing.ahead is None
            if kept:
                listing.ahead = _Batch(entries, eof, gen, time.monotonic(), size)
                self._held += size
        self.counts["made" if kept else "dropped"] += 1

    # --- changes ----------------------------------------------------------------------

    def _changed(self) -> None:
        """Called once a modifying fop has finished (or failed: it may have done part).
        `itertools.count` hands out each value once, even to threads racing here,
        so whatever order their stores land in, the generation a batch was made
        under is never current again."""
        self._gen = next(self._counter)

    def open(self, caller, gfid: bytes, flags: int):
        """Pass open on; one that truncates is a change (see `_changed`)."""
        if not flags & os.O_TRUNC:
            return self.first_child.open(caller, gfid, flags)
        try:
            return self.first_child.open(caller, gfid, flags)
        finally:
            self._changed()


def _changing(fop: str):
    def changing(self, *args, **kwargs):
        try:
            return getattr(self.first_child, fop)(*args, **kwargs)
        finally:
            self._changed()
    changing.__name__ = fop
    changing.__doc__ = f"Pass {fop} on; batches made ahead before it ends are stale."
    return changing


for _fop in ("setattr", "mknod", "mkdir", "unlink", "rmdir", "symlink", "rename", "link",
             "create", "write", "setxattr", "removexattr"):
    setattr(ReaddirAhead, _fop, _changing(_fop))

