"""storage/posix directory fops: opendir, readdir, readdirp.

Listings resume at the kernel's d_off (see `dirstream`), so any open of the
directory continues any listing and the server keeps no per-client state it
depends on.  (It does keep, for a couple of seconds, the open directory and
the records it read past a reply's end, under the cookie the client will
come back with: `ParkedStreams`; a miss only costs a seek.)

READDIRPLUS is the hot path (`ls -l` of a big directory is one readdirp per
reply, each a few dozen entries), so each entry costs as little as the
guarantees allow:

* one lstat by name, as the caller (the attributes, always fresh);
* its gfid without any further syscall when `ctime_gfids` vouches for the
  inode (this server vouched for it and its ctime has not moved since);
  else the gfid xattr and the index's word for it (`vouched_gfid_at`),
  then remembered; else the full lookup-and-heal path, which also handles
  no search permission, vanished names, copies and foreign files;
  what is remembered survives a restart in a snapshot (`gfid_snapshot`),
  loaded at the first listing and saved after a complete one;
* nothing built for an entry the reply has no room for: the size check
  comes before the lstat;
* no Iatt either: the entry is a `StatDirent` that keeps the lstat (with the
  type and the client's link count decided here), and its iatt is built only
  if a consumer asks for one (nfs3_dir packs the reply from the lstat).
"""
from __future__ import annotations

import errno
import functools
import os
import stat as statmod

from glusterfsd.stat_dirent import StatDirent
from glusterfsd.xlator import (IA_DIR, IA_REG, IA_TO_S_IFMT, ROOT_GFID, Caller, Dirent, Fd,
                               gfid_to_ino)
from xlators.storage import gfid_snapshot
from xlators.storage.ctime_gfids import CtimeGfids
from xlators.storage.dirstream import DT_TO_IA, DirStream, ParkedStreams, RawEntry, shut_stream
from xlators.storage.gfid_layout import HIDDEN_DIR
from xlators.storage.posix_core import PosixCore

# Bytes one entry takes in an NFSv3 reply (cookie, fileid, name length, next
# pointer), and what READDIRPLUS adds (post_op_attr and a 52-byte handle).
ENTRY_COST = 24
PLUS_COST = 148
_DOTS = (b".", b"..")
_S_IFMT = 0o170000
_IFMT_TO_IA = {fmt: kind for kind, fmt in IA_TO_S_IFMT.items()}


class DirFops(PosixCore):

    @functools.cached_property
    def ctime_gfids(self) -> CtimeGfids:
        """Gfids vouched for by inode and ctime (per volume: vouching is per
        index), starting from the store's snapshot: loaded here, at the first
        listing, rather than at init, so that a server that never lists pays
        nothing."""
        cache = CtimeGfids()
        with self.identity.as_root():
            taken = gfid_snapshot.load(cache, self.index.index_fd, self._root_dev, self.log)
        if taken:
            self.log.info("%d gfids taken from the snapshot of the last run", taken)
        return cache

    @functools.cached_property
    def gfid_snapshots(self) -> gfid_snapshot.SnapshotSaver:
        """Saves `ctime_gfids` now and then (not on a read-only volume)."""
        return gfid_snapshot.SnapshotSaver(self.ctime_gfids, self.index.index_fd,
                                           self._root_dev, self.log, enabled=not self.read_only)

    @functools.cached_property
    def _root_dev(self) -> int:
        """The store root's file system: the only one a snapshot keeps entries of."""
        return os.fstat(self.index.root_fd).st_dev

    @functools.cached_property
    def parked_streams(self) -> ParkedStreams:
        """Listings left mid-batch, to go on reading where they stopped."""
        return ParkedStreams()

    def finish_listings(self, timeout: float = 10.0) -> None:
        """For the store's fini, before the index closes: close the parked
        streams and bring the gfid snapshot up to date (waiting up to
        `timeout` for a save in progress).  A store that never listed has
        neither, and nothing is made for it here."""
        if "parked_streams" in self.__dict__:
            self.parked_streams.close_all()
        if "gfid_snapshots" in self.__dict__:
            self.gfid_snapshots.flush(timeout)

    def opendir(self, caller: Caller, gfid: bytes) -> Fd:
        self._enter(caller)
        with self._resolve(gfid) as obj:
            if not obj.is_dir:
                raise OSError(errno.ENOTDIR, "opendir of a non-directory")
            stream = DirStream(os.open(obj.proc, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            self.open_streams.add(stream)  # so fini can close what was never released
            return Fd(obj.gfid, os.O_RDONLY, is_dir=True, ctx={"stream": stream})

    @staticmethod
    def _stream(fd: Fd) -> DirStream:
        if not fd.is_dir or "stream" not in fd.ctx:
            raise OSError(errno.ENOTDIR, "not a directory Fd")
        if fd.ctx.get("released"):
            raise OSError(errno.EBADF, "Fd already released")
        return fd.ctx["stream"]

    def readdir(self, caller: Caller, fd: Fd, cookie: int, size: int):
        self._enter(caller)
        with self.identity.as_root():  # entry gfids are our bookkeeping, not the caller's
            return self._list(fd, cookie, size, plus=False)

    def readdirp(self, caller: Caller, fd: Fd, cookie: int, size: int):
        self._enter(caller)
        return self._list(fd, cookie, size, plus=True)

    def _list(self, fd: Fd, cookie: int, size: int, plus: bool):
        """Entries after `cookie` worth about `size` bytes (at least one)."""
        if size <= 0:
            raise OSError(errno.EINVAL, f"bad readdir size {size}")
        own = self._stream(fd)
        dir_gfid = fd.gfid
        # where this store stopped a moment ago, mid-batch: read on from there
        parked = self.parked_streams.take(dir_gfid, cookie) if cookie else None
        stream = parked or own
        try:
            with stream.lock:
                if stream.fd < 0:
                    raise OSError(errno.EBADF, "Fd already released")
                if parked is not None:
                    batches = parked.resumed(size if plus else size * 4)
                else:
                    # a listed entry costs the reply at least ENTRY_COST (+ PLUS_COST)
                    # plus its name, its getdents record about 24 bytes plus the name
                    batches = own.records_from(cookie, size // 4 if plus else size * 2)
                entries, stop = self._fill(stream.fd, batches, dir_gfid, cookie, size, plus)
                if stop is not None and parked is None:
                    # park a duplicate: the same open file, so the kernel's position
                    # and read-ahead go with it, while `own` stays the Fd's; as they
                    # share that position, they share the lock
                    stop = stop[0], DirStream(os.dup(own.fd), stop[1], own.lock)
        except BaseException:
            if parked is not None:
                shut_stream(parked)
            raise
        if stop is None:
            if parked is not None:
                shut_stream(parked)
            if plus:
                self.gfid_snapshots.listing_done()
            return entries, True
        resume, rest = stop
        if parked is not None:
            parked.pending = rest
            rest = parked
        else:
            self.open_streams.add(rest)  # so fini closes it
        self.parked_streams.park(dir_gfid, resume, rest)
        return entries, False

    def _fill(self, dir_fd: int, batches, dir_gfid: bytes, cookie: int, size: int, plus: bool):
        """(entries, None) up to the end of the directory, or (entries, (resume,
        rest)) when the reply is full: the records not listed and the cookie
        they follow."""
        entries: list[Dirent] = []
        append = entries.append
        used = 0
        fixed = ENTRY_COST + (PLUS_COST if plus else 0)
        at_root = dir_gfid == ROOT_GFID
        remembered = self.ctime_gfids
        known_gfid = remembered.gfid
        lstat = os.stat
        ia_of, from_bytes = _IFMT_TO_IA.get, int.from_bytes
        stat_dirent, s_ifmt, ia_reg, ia_dir, root_gfid = \
            StatDirent, _S_IFMT, IA_REG, IA_DIR, ROOT_GFID      # locals: read once per entry
        clock = remembered.clock()
        before = cookie             # the cookie the current batch follows
        for records in batches:
            for record in records:
                name, d_off, d_ino, d_type = record
                if at_root and name == HIDDEN_DIR:
                    continue
                cost = fixed + ((len(name) + 3) & ~3)     # XDR pads names to 4 bytes
                if entries and used + cost > size:
                    at = records.index(record)
                    return entries, (records[at - 1][1] if at else before, records[at:])
                used += cost
                if plus and name != b"." and name != b"..":
                    # READDIRPLUS's common case, written out (this loop runs once per
                    # listed entry): an lstat by name as the caller, and a gfid this
                    # server vouched for, remembered by ctime or read and checked now;
                    # anything else takes `_dirent`, the full path
                    try:
                        st = lstat(name, dir_fd=dir_fd, follow_symlinks=False)
                    except OSError:
                        st = None
                    if st is not None:
                        gfid = known_gfid(st, dir_gfid, name) or \
                            self._vouch(dir_fd, name, st, dir_gfid, clock)
                        if gfid is not None:
                            # _stat_dirent, written out (once per entry)
                            kind = ia_of(st.st_mode & s_ifmt, ia_reg)
                            nlink = st.st_nlink
                            if kind != ia_dir:
                                nlink = nlink - 1 if nlink > 0 else 0
                            if gfid == root_gfid:
                                nlink -= 1
                            append(stat_dirent(name, d_off, from_bytes(gfid[8:16], "big"), kind,
                                               st, gfid, nlink))
                            continue
                dirent = self._dirent(dir_gfid, dir_fd, RawEntry(name, d_off, d_ino, d_type),
                                      plus)
                if dirent is None:
                    used -= cost
                    continue  # removed while we listed
                append(dirent)
            before = records[-1][1]
        return entries, None

    def _vouch(self, dir_fd: int, name: bytes, st, dir_gfid: bytes, clock: int) -> bytes | None:
        """The gfid of `name` (lstat `st`) if the index vouches for it, then remembered."""
        gfid = self.index.vouched_gfid_at(dir_fd, name, st, dir_gfid)
        if gfid is not None:
            self.ctime_gfids.remember(st, gfid, dir_gfid, name, statmod.S_ISDIR(st.st_mode), clock)
        return gfid

    @staticmethod
    def _stat_dirent(name: bytes, cookie: int, st, gfid: bytes) -> StatDirent:
        """The entry of `name` (lstat `st`, `gfid`) with the lstat kept for the
        consumer to take its attributes from (see glusterfsd.stat_dirent): its
        `iatt` is what `_iatt(st, gfid)` makes.  (`_fill` writes this out: a call
        per listed entry was 1.3 % of a first `ls -l`; tests hold the two equal.)"""
        kind = _IFMT_TO_IA.get(st.st_mode & _S_IFMT, IA_REG)
        nlink = st.st_nlink
        if kind != IA_DIR:       # the index's hard link is not the client's
            nlink = nlink - 1 if nlink > 0 else 0
        if gfid == ROOT_GFID:    # nor is the root's hidden subdirectory
            nlink -= 1
        return StatDirent(name, cookie, gfid_to_ino(gfid), kind, st, gfid, nlink)

    def _dirent(self, dir_gfid: bytes, dir_fd: int, raw: RawEntry, plus: bool) -> Dirent | None:
        """An entry by the full path: '.' and '..', and whatever `_fill`'s own
        lstat and gfid check (for READDIRPLUS) did not vouch for."""
        if raw.name in _DOTS:
            gfid = dir_gfid if raw.name == b"." else self.index.parent_of_dir(dir_gfid)
            iatt = None
            if plus:
                with self._resolve(gfid) as obj:
                    iatt = self._iatt(obj.st, obj.gfid)
            return Dirent(raw.name, raw.cookie, gfid_to_ino(gfid), IA_DIR, iatt)
        try:
            if plus:
                try:
                    clock = self.ctime_gfids.clock()
                    with self._child_at(dir_gfid, dir_fd, raw.name) as obj:
                        self.ctime_gfids.remember(obj.st, obj.gfid, dir_gfid, raw.name,
                                                  obj.is_dir, clock)
                        return self._stat_dirent(raw.name, raw.cookie, obj.st, obj.gfid)
                except PermissionError:
                    pass  # no search permission: names and inode numbers only
            gfid = self.index.read_gfid_at(dir_fd, raw.name)
            kind = DT_TO_IA.get(raw.d_type)
            if gfid is None or kind is None:
                with self.identity.as_root(), self._child_at(dir_gfid, dir_fd, raw.name) as obj:
                    gfid, kind = obj.gfid, self._iatt(obj.st, obj.gfid).type
            return Dirent(raw.name, raw.cookie, gfid_to_ino(gfid), kind)
        except FileNotFoundError:
            return None
