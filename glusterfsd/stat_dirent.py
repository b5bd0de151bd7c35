"""A readdirp entry that keeps the lstat its attributes come from.

Why: `ls -l` of a big directory is one readdirp entry per name, and building
an `Iatt` (fifteen fields) per entry, only for the NFS layer to read the
fields back and pack them, cost about as much as the lstat itself.  A
storage that has the lstat at hand may return `StatDirent`s instead of
`Dirent`s with an iatt: the same entry (it is a `Dirent`; `iatt` is built
on first use, so any consumer that wants one still gets it), plus the lstat,
the gfid and the two values that are the storage's to decide -- the object
type and the link count as clients see it (a store may add links of its
own).  A consumer that knows this class (nfs3_dir) packs the attributes
straight from `st`; the rule for every other field is `iatt`'s below, and
the two must agree (tests/nfs compares them byte for byte).
"""
from __future__ import annotations

import os

from glusterfsd.xlator import Dirent, Iatt


class StatDirent(Dirent):
    """`Dirent` whose iatt is `st` (an os.stat_result) with `gfid`, `type` and
    `nlink` as given; `ino` is the gfid's inode number (gfid_to_ino)."""

    __slots__ = ("st", "gfid", "nlink", "_made")

    def __init__(self, name: bytes, cookie: int, ino: int, type_: int, st, gfid: bytes,
                 nlink: int):
        # positional and flat (not Dirent's generated __init__): one per listed entry
        self.name = name
        self.cookie = cookie
        self.ino = ino
        self.type = type_
        self.st = st
        self.gfid = gfid
        self.nlink = nlink
        self._made = None

    @property
    def iatt(self) -> Iatt:
        made = self._made
        if made is None:
            st = self.st
            rdev = st.st_rdev
            major, minor = (os.major(rdev), os.minor(rdev)) if rdev else (0, 0)
            made = self._made = Iatt(
                self.gfid, self.type, st.st_mode & 0o7777, self.nlink, st.st_uid, st.st_gid,
                st.st_size, st.st_blocks * 512, major, minor, st.st_dev, self.ino,
                st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
        return made

    def __repr__(self) -> str:
        return (f"StatDirent(name={self.name!r}, cookie={self.cookie}, ino={self.ino}, "
                f"type={self.type}, gfid={self.gfid.hex()})")
