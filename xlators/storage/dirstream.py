"""Reading a directory from any cookie, with the kernel's d_off as the cookie.

Why d_off: NFS READDIR hands the client a cookie per entry and the client
comes back with it later, maybe after the server closed the directory (or
restarted).  The kernel's `d_off` of an entry is exactly "where to resume
after it", valid for any descriptor of that directory: on ext4 with dir_index
it is a hash of the name, so it stays valid while other entries come and go.
`os.scandir` hides it, so we call `getdents64` ourselves and `lseek` to the
cookie before each batch.  Cookie 0 is the start.

Resuming costs more than reading on, though: the kernel (ext4 with htree)
keeps the entries of the leaf block it read in the open file, and a seek to
anywhere but where it stopped throws them away and hashes a whole leaf block
again (~50 us a call).  A listing reply ends wherever the reply is full,
mid-batch, so every NFS call paid that.  `ParkedStreams` keeps the open
directory (a dup: the same open file) and the records read but not sent,
under the cookie the client will come back with, for a few seconds.
"""
from __future__ import annotations

import errno
import os
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

from glusterfsd.xlator import IA_BLK, IA_CHR, IA_DIR, IA_FIFO, IA_LNK, IA_REG, IA_SOCK
from xlators.storage import syscalls

_HEADER = struct.Struct("<QqHB")  # d_ino, d_off, d_reclen, d_type; d_name follows
_BUFFER = 32768
# Smallest read: holds any one record (19-byte header + a 255-byte name, padded).
MIN_BUFFER = 1024
MAX_COOKIE = (1 << 63) - 1  # lseek takes a signed 64-bit offset
PARK_SECONDS = 2.0          # a parked stream older than this is closed, not resumed
PARK_CAPACITY = 64          # parked streams per store (each holds a descriptor)

DT_UNKNOWN = 0
# d_type (DT_*) to the IA_* type numbers
DT_TO_IA = {1: IA_FIFO, 2: IA_CHR, 4: IA_DIR, 6: IA_BLK, 8: IA_REG, 10: IA_LNK, 12: IA_SOCK}


@dataclass(slots=True)
class RawEntry:
    name: bytes
    cookie: int  # d_off: resume after this entry
    ino: int  # the local inode number (not what clients see)
    d_type: int


def parse(records: bytes) -> Iterator[RawEntry]:
    """Entries of one getdents64 buffer."""
    for name, d_off, ino, d_type in parse_tuples(records):
        yield RawEntry(name, d_off, ino, d_type)


def parse_tuples(records: bytes) -> list[tuple[bytes, int, int, int]]:
    """(name, d_off, d_ino, d_type) of each record of one getdents64 buffer.

    Plain tuples in one list: a listing parses every entry of a big
    directory, and this is cheaper per entry than an object each."""
    out = []
    append = out.append
    unpack = _HEADER.unpack_from
    find = records.find
    header = _HEADER.size
    offset = 0
    end = len(records)
    while offset < end:
        ino, d_off, reclen, d_type = unpack(records, offset)
        name_end = find(b"\0", offset + header, offset + reclen)
        if reclen < header + 1 or name_end < 0:
            raise OSError(errno.EIO, f"corrupt dirent record length {reclen}")
        append((records[offset + header:name_end], d_off, ino, d_type))
        offset += reclen
    return out


class DirStream:
    """One open directory descriptor (O_RDONLY) shared by the calls on an Fd.

    `lock` must be held while iterating: the file position is shared (with
    every duplicate of the descriptor too, which is why those share the lock).
    """

    def __init__(self, fd: int, pending: list | None = None, lock=None):
        self.fd = fd
        # a duplicate descriptor shares the open file, so its file position:
        # it must share the lock too (see ParkedStreams)
        self.lock = lock or threading.Lock()
        # a parked stream: records read but not yet listed, the kernel's file
        # position right after the last of them
        self.pending = pending or []

    def entries_from(self, cookie: int, first_read: int = _BUFFER) -> Iterator[RawEntry]:
        """Every entry after `cookie` (0: from the start), in kernel order.

        `first_read` sizes the first getdents64 (later ones double, up to 32
        KiB): a caller that will stop after a few dozen entries says so,
        because every call seeks to its cookie anew and whatever the kernel
        read beyond what the caller takes is work thrown away."""
        for records in self.records_from(cookie, first_read):
            for name, d_off, ino, d_type in records:
                yield RawEntry(name, d_off, ino, d_type)

    def records_from(self, cookie: int, first_read: int = _BUFFER) -> Iterator[list[tuple]]:
        """`entries_from` as one list of `parse_tuples` per getdents64 call."""
        if not 0 <= cookie <= MAX_COOKIE:
            raise OSError(errno.EINVAL, f"bad directory cookie {cookie}")
        size = min(max(first_read, MIN_BUFFER), _BUFFER)
        os.lseek(self.fd, cookie, os.SEEK_SET)
        while True:
            records = syscalls.getdents64(self.fd, size)
            if not records:
                return
            yield parse_tuples(records)
            size = min(size * 2, _BUFFER)

    def resumed(self, first_read: int = _BUFFER) -> Iterator[list[tuple]]:
        """A parked stream's records: its pending ones, then on from the kernel's
        position after them (sought again: a no-op for the kernel when nobody
        moved the shared position, a correction when somebody did)."""
        pending, self.pending = self.pending, []
        if not pending:
            raise OSError(errno.EINVAL, "nothing parked in this stream")
        yield pending
        yield from self.records_from(pending[-1][1], first_read)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        # an Fd dropped without release(): do not leak its descriptor
        self.close()


class ParkedStreams:
    """Open directories left mid-listing, by (directory gfid, cookie to resume
    after), each good for one resumption within PARK_SECONDS.

    Why it is safe to hand one to another caller: that caller opened the
    directory itself first (opendir checks its permission), the entries'
    attributes are read as that caller, and cookies are the kernel's d_off
    either way.  What a resumed listing sees is the directory as it was when
    those records were read, at most PARK_SECONDS ago -- as for any
    readdir stream (POSIX leaves entries added or removed during a listing
    unspecified); a removed name is dropped when its lstat fails.
    """

    def __init__(self, capacity: int = PARK_CAPACITY, seconds: float = PARK_SECONDS):
        self.capacity = capacity
        self.seconds = seconds
        self._parked: OrderedDict[tuple[bytes, int], tuple[float, DirStream]] = OrderedDict()
        self._lock = threading.Lock()
        self.resumed = 0

    def park(self, gfid: bytes, cookie: int, stream: DirStream) -> None:
        """Keep `stream` (with its `pending` records) for a listing resumed at `cookie`."""
        if self.capacity <= 0 or not stream.pending:
            shut_stream(stream)
            return
        now = time.monotonic()
        with self._lock:
            old = self._parked.pop((gfid, cookie), None)
            self._parked[(gfid, cookie)] = (now, stream)
            victims = self._expired(now)
            while len(self._parked) > self.capacity:
                victims.append(self._parked.popitem(last=False)[1][1])
        if old is not None:
            victims.append(old[1])
        for victim in victims:
            shut_stream(victim)

    def take(self, gfid: bytes, cookie: int) -> DirStream | None:
        """The stream parked for this resumption, now the caller's alone."""
        if not self._parked:
            return None
        now = time.monotonic()
        with self._lock:
            found = self._parked.pop((gfid, cookie), None)
            victims = self._expired(now)
        for victim in victims:
            shut_stream(victim)
        if found is None:
            return None
        parked_at, stream = found
        if now - parked_at > self.seconds or stream.fd < 0:
            shut_stream(stream)
            return None
        self.resumed += 1
        return stream

    def _expired(self, now: float) -> list[DirStream]:
        """Remove the streams parked too long ago (the oldest come first); under the lock."""
        out = []
        parked = self._parked
        while parked:
            key = next(iter(parked))
            if now - parked[key][0] <= self.seconds:
                break
            out.append(parked.pop(key)[1])
        return out

    def close_all(self) -> None:
        with self._lock:
            streams = [stream for _, stream in self._parked.values()]
            self._parked.clear()
        for stream in streams:
            shut_stream(stream)

    def __len__(self) -> int:
        return len(self._parked)


def shut_stream(stream: DirStream) -> None:
    """Close a stream nobody else uses any more (waiting for one who still does)."""
    with stream.lock:
        stream.close()
