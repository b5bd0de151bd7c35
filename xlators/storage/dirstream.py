"""Reading a directory from any cookie, with the kernel's d_off as the cookie.

Why d_off: NFS READDIR hands the client a cookie per entry and the client
comes back with it later, maybe after the server closed the directory (or
restarted).  The kernel's `d_off` of an entry is exactly "where to resume
after it", valid for any descriptor of that directory: on ext4 with dir_index
it is a hash of the name, so it stays valid while other entries come and go.
`os.scandir` hides it, so we call `getdents64` ourselves and `lseek` to the
cookie before each batch.  Cookie 0 is the start.
"""
from __future__ import annotations

import errno
import os
import struct
import threading
from dataclasses import dataclass
from typing import Iterator

from glusterfsd.xlator import IA_BLK, IA_CHR, IA_DIR, IA_FIFO, IA_LNK, IA_REG, IA_SOCK
from xlators.storage import syscalls

_HEADER = struct.Struct("<QqHB")  # d_ino, d_off, d_reclen, d_type; d_name follows
_BUFFER = 32768
# Smallest read: holds any one record (19-byte header + a 255-byte name, padded).
MIN_BUFFER = 1024
MAX_COOKIE = (1 << 63) - 1  # lseek takes a signed 64-bit offset

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

    `lock` must be held while iterating: the file position is shared.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.lock = threading.Lock()

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

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        # an Fd dropped without release(): do not leak its descriptor
        self.close()
