"""`ctime_gfids` across restarts: a snapshot file in the gfid index directory.

Why: READDIRPLUS needs every entry's gfid.  `ctime_gfids` gives it without a
syscall for an object whose inode and ctime are those it was vouched for
under; it starts empty in a new process, so the first `ls -l` of a big
directory after a restart read every entry's gfid xattr and checked it with
the index (50 000 entries: ~0.4 s of a ~1.3 s listing, and the benchmark
lists right after a restart).  The snapshot makes that listing as cheap as a
later one.

Why a remembered entry may be trusted by a later process: the argument of
`ctime_gfids` rests only on ctimes, which the file system keeps.  Whatever
happened while no server ran -- the gfid xattr set or removed, the index
link removed or replaced (the object's link count, so its ctime, moves), the
object replaced by another one reusing its inode number (a later ctime) --
changes the ctime, so the entry no longer matches and the listing takes the
full path.  Kept out on purpose:

* directories: one is vouched for also by its index symlink, which can be
  removed without changing the directory's ctime (in memory that is only
  possible behind the server's back while it runs; across restarts a whole
  downtime's worth of such edits would go unseen);
* entries of another file system than the store's root (st_dev): a
  snapshot holds those of the root's only, and one made for another st_dev
  (the device renumbered, the store moved) is ignored whole;
* a snapshot written "in the future" (the clock went back since), or damaged
  in any way (magic, length, checksum): ignored whole, and replaced by the
  next save.

The file lives in the index directory, on the same file system as the data:
a block-level copy or rollback of the store carries a snapshot that describes
that very state, and a file-level copy (cp -a, rsync -X) gives every object a
new ctime, later than any ctime the snapshot holds.

Durability: before writing, `syncfs` makes every change made so far durable,
so that a crash cannot keep the snapshot but lose an older change it
describes (on a file system without one ordered journal, btrfs for one, an
fsync of the snapshot alone would not promise that).  The snapshot is
written to an unnamed file (O_TMPFILE; a named `*.tmp` one where the file
system has no such thing, which a process killed mid-save leaves behind),
fsynced, then renamed into place: a reader sees the old snapshot or the new
one, never part of one.

Cost: loading 50 000 entries takes ~30 ms, in the first listing (the
storage xlator's init is not this module's to change); saving them ~50 ms
of a background thread, at most once a minute and only after new entries.

When: after a listing that reached the end of a directory, if enough new
entries were remembered since the last save and not too soon after it, in a
background thread (see `SnapshotSaver`).  Losing a save (a crash, a stop in
the middle) only costs the next first listing its speed.
"""
from __future__ import annotations

import errno
import hashlib
import os
import struct
import threading
import time

from xlators.storage import syscalls
from xlators.storage.ctime_gfids import RECORD, CtimeGfids
from xlators.storage.identity import reset_thread

SNAPSHOT_NAME = b"ctime-gfids.v1"
_MAGIC = b"GNFSCTG1"
_HEADER = struct.Struct("<8sqQQ")       # magic, saved_at (ns, wall clock), st_dev, record count
_DIGEST = 16                            # blake2b of header and records, at the end
MIN_NEW = 256                           # remembered since the last save, to save again
MIN_INTERVAL_S = 60.0                   # between two saves of one process

def _digest(data) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST, person=b"ctime-gfids").digest()


def encode(records: list[tuple[int, bytes]], saved_at: int, dev: int) -> bytes:
    """The snapshot file's bytes for (st_ino, value) records of file system `dev`."""
    head = _HEADER.pack(_MAGIC, saved_at, dev, len(records))
    body = b"".join(RECORD.pack(ino, value) for ino, value in records)
    return head + body + _digest(head + body)


def decode(data: bytes, capacity: int) -> tuple[int, int, list[tuple[int, bytes]]]:
    """(saved_at, dev, records) of a snapshot file; ValueError when it is
    damaged or holds more than `capacity` records."""
    saved_at, dev, records = _checked(data, capacity)
    return saved_at, dev, list(records)


def _checked(data: bytes, capacity: int):
    """`decode`, with the records as an iterator: `load` feeds them to the cache
    one by one rather than holding a list of 50 000 tuples (each tracked by the
    cyclic GC, whose collections the first listing would pay for)."""
    if len(data) < _HEADER.size + _DIGEST:
        raise ValueError("too short")
    magic, saved_at, dev, count = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("not a ctime-gfids snapshot (or another version)")
    if count > capacity:
        raise ValueError(f"{count} records, more than the capacity {capacity}")
    end = _HEADER.size + count * RECORD.size
    if len(data) != end + _DIGEST:
        raise ValueError(f"length {len(data)} does not fit {count} records")
    body = memoryview(data)[:end]
    if _digest(body) != data[end:]:
        raise ValueError("checksum mismatch")
    return saved_at, dev, RECORD.iter_unpack(body[_HEADER.size:])


def load(cache: CtimeGfids, index_fd: int, dev: int, log, now: int | None = None) -> int:
    """Fill `cache` from the snapshot in the index directory `index_fd` (a store
    on file system `dev`).  Returns how many entries were taken; a missing,
    unreadable or damaged snapshot takes none (and is only logged to `log`)."""
    limit = _HEADER.size + cache.capacity * RECORD.size + _DIGEST
    try:
        fd = os.open(SNAPSHOT_NAME, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=index_fd)
    except FileNotFoundError:
        return 0
    except OSError as err:
        log.warning("gfid snapshot not read: %s", err)
        return 0
    try:
        data = os.read(fd, limit + 1)
        saved_at, saved_dev, records = _checked(data, cache.capacity)
    except (OSError, ValueError) as err:
        log.warning("gfid snapshot ignored: %s", err)
        return 0
    finally:
        os.close(fd)
    now = time.time_ns() if now is None else now
    if saved_at > now:
        log.warning("gfid snapshot ignored: written %.0f s in the future (clock set back?)",
                    (saved_at - now) / 1e9)
        return 0
    if saved_dev != dev:
        log.info("gfid snapshot ignored: made for device %#x, the store is on %#x",
                 saved_dev, dev)
        return 0
    return cache.restore(records)


def save(cache: CtimeGfids, index_fd: int, dev: int) -> int:
    """Write the cache's non-directory entries of file system `dev` to the
    snapshot in `index_fd`, replacing it at once (see the module doc).
    Returns how many were written."""
    records = cache.records(dev)   # first: every change they describe is made
    temp = b"%s.%d.%d.tmp" % (SNAPSHOT_NAME, os.getpid(), threading.get_ident())
    fd, named = _open_temp(index_fd, temp)
    try:
        syscalls.syncfs(fd)
        data = encode(records, time.time_ns(), dev)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        if not named:   # give it a name: the temporary one, renamed below
            os.link(b"/proc/self/fd/%d" % fd, temp, dst_dir_fd=index_fd, follow_symlinks=True)
            named = True
        os.rename(temp, SNAPSHOT_NAME, src_dir_fd=index_fd, dst_dir_fd=index_fd)
        named = False
    finally:
        os.close(fd)
        if named:
            try:
                os.unlink(temp, dir_fd=index_fd)
            except OSError:
                pass
    return len(records)


def _open_temp(index_fd: int, temp: bytes) -> tuple[int, bool]:
    """(descriptor, named) of a new file in the index directory: without a name
    (O_TMPFILE) where the file system can, so a save cut short by a crash
    leaves nothing behind; else under the name `temp`."""
    try:
        return os.open(b".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600,
                       dir_fd=index_fd), False
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                   0o600, dir_fd=index_fd), True


class SnapshotSaver:
    """When and where one store's snapshot is saved: after a complete listing,
    if at least MIN_NEW entries were remembered since the last save and
    MIN_INTERVAL_S have passed, in one background thread at a time.

    The thread works on its own duplicate of the index descriptor, so a store
    closed meanwhile (fini) can never make it write elsewhere."""

    def __init__(self, cache: CtimeGfids, index_fd: int, dev: int, log, enabled: bool = True):
        self.cache = cache
        self.dev = dev
        self.log = log
        self.index_fd = index_fd
        self.enabled = enabled
        self.saved_count = 0        # `remembered` does not count what a snapshot restored
        self.last_save = float("-inf")
        self.saves = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        return (self.enabled and self.cache.remembered - self.saved_count >= MIN_NEW
                and time.monotonic() - self.last_save >= MIN_INTERVAL_S)

    def listing_done(self) -> bool:
        """Called after a listing reached the end; starts a save if one is due."""
        if not self.due():
            return False
        with self._lock:
            if not self.due() or (self._thread is not None and self._thread.is_alive()):
                return False
            try:
                fd = os.dup(self.index_fd)
            except OSError as err:
                self.log.warning("gfid snapshot not saved: %s", err)
                return False
            self.last_save = time.monotonic()
            self.saved_count = self.cache.remembered
            self._thread = threading.Thread(target=self._save, args=(fd,),
                                            name="gfid-snapshot", daemon=True)
            self._thread.start()
            return True

    def _save(self, fd: int) -> None:
        try:
            # a new thread inherits the fsuid of the stage thread that started
            # it, a caller's: the snapshot is the server's own bookkeeping
            reset_thread()
            written = save(self.cache, fd, self.dev)
            self.saves += 1
            self.log.debug("gfid snapshot saved: %d entries", written)
        except OSError as err:
            report = self.log.debug if err.errno == errno.EROFS else self.log.warning
            report("gfid snapshot not saved: %s", err)
        finally:
            os.close(fd)

    def flush(self, timeout: float) -> None:
        """At a store's stop: let a save in progress finish, then save what is
        new, however soon after the last save (in the calling thread)."""
        self.wait(timeout)
        if self._thread is not None and self._thread.is_alive():
            return
        self.last_save = float("-inf")
        if self.due():
            self.saved_count = self.cache.remembered
            self._save(os.dup(self.index_fd))

    def wait(self, timeout: float | None = None) -> None:
        """Until the save in progress, if any, is over (tests, a stopping store)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

