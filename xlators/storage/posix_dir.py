"""storage/posix directory fops: opendir, readdir, readdirp.

Listings resume at the kernel's d_off (see `dirstream`), so any open of the
directory continues any listing and the server keeps no per-client state.

READDIRPLUS is the hot path (`ls -l` of a big directory is one readdirp per
reply, each a few dozen entries), so each entry costs as little as the
guarantees allow:

* one lstat by name, as the caller (the attributes, always fresh);
* its gfid without any further syscall when `ctime_gfids` vouches for the
  inode (this server vouched for it and its ctime has not moved since);
  else the gfid xattr and the index's word for it (`vouched_gfid_at`),
  then remembered; else the full lookup-and-heal path, which also handles
  no search permission, vanished names, copies and foreign files;
* nothing built for an entry the reply has no room for: the size check
  comes before the lstat.
"""
from __future__ import annotations

import errno
import functools
import os
import stat as statmod

from glusterfsd.xlator import IA_DIR, ROOT_GFID, Caller, Dirent, Fd, gfid_to_ino
from xlators.storage.ctime_gfids import CtimeGfids
from xlators.storage.dirstream import DT_TO_IA, DirStream, RawEntry
from xlators.storage.gfid_layout import HIDDEN_DIR
from xlators.storage.posix_core import PosixCore

# Bytes one entry takes in an NFSv3 reply (cookie, fileid, name length, next
# pointer), and what READDIRPLUS adds (post_op_attr and a 52-byte handle).
ENTRY_COST = 24
PLUS_COST = 148
_DOTS = (b".", b"..")


class DirFops(PosixCore):

    @functools.cached_property
    def ctime_gfids(self) -> CtimeGfids:
        """Gfids vouched for by inode and ctime (per volume: vouching is per index)."""
        return CtimeGfids()

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
        stream = self._stream(fd)
        entries: list[Dirent] = []
        append = entries.append
        used = 0
        fixed = ENTRY_COST + (PLUS_COST if plus else 0)
        dir_gfid = fd.gfid
        at_root = dir_gfid == ROOT_GFID
        remembered = self.ctime_gfids
        known_gfid = remembered.gfid
        iatt_of = self._iatt
        lstat = os.stat
        with stream.lock:
            dir_fd = stream.fd
            if dir_fd < 0:
                raise OSError(errno.EBADF, "Fd already released")
            # a listed entry costs the reply at least `fixed` plus its name, its
            # getdents record about 24 bytes plus the name
            first_read = size // 4 if plus else size * 2
            clock = remembered.clock()
            for records in stream.records_from(cookie, first_read):
                for name, d_off, d_ino, d_type in records:
                    if at_root and name == HIDDEN_DIR:
                        continue
                    cost = fixed + len(name)
                    if entries and used + cost > size:
                        return entries, False
                    used += cost
                    if plus and name != b"." and name != b"..":
                        # _vouched_dirent, inlined: this loop runs once per listed entry
                        try:
                            st = lstat(name, dir_fd=dir_fd, follow_symlinks=False)
                        except OSError:
                            st = None
                        if st is not None:
                            gfid = known_gfid(st, dir_gfid, name) or \
                                self._vouch(dir_fd, name, st, dir_gfid, clock)
                            if gfid is not None:
                                iatt = iatt_of(st, gfid)
                                append(Dirent(name, d_off, iatt.ino, iatt.type, iatt))
                                continue
                    dirent = self._dirent(dir_gfid, dir_fd, RawEntry(name, d_off, d_ino, d_type),
                                          plus, quick_tried=plus)
                    if dirent is None:
                        used -= cost
                        continue  # removed while we listed
                    append(dirent)
        return entries, True

    def _vouch(self, dir_fd: int, name: bytes, st, dir_gfid: bytes, clock: int) -> bytes | None:
        """The gfid of `name` (lstat `st`) if the index vouches for it, then remembered."""
        gfid = self.index.vouched_gfid_at(dir_fd, name, st, dir_gfid)
        if gfid is not None:
            self.ctime_gfids.remember(st, gfid, dir_gfid, name, statmod.S_ISDIR(st.st_mode), clock)
        return gfid

    def _vouched_dirent(self, dir_gfid: bytes, dir_fd: int, raw: RawEntry) -> Dirent | None:
        """READDIRPLUS's common case (which `_list` inlines): an lstat by name
        as the caller, and a gfid this server vouched for, remembered by ctime
        or read and checked now.  None sends the entry down the full path."""
        clock = self.ctime_gfids.clock()     # before the lstat (see CtimeGfids.remember)
        try:
            st = os.stat(raw.name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return None
        gfid = self.ctime_gfids.gfid(st, dir_gfid, raw.name) or \
            self._vouch(dir_fd, raw.name, st, dir_gfid, clock)
        if gfid is None:
            return None
        iatt = self._iatt(st, gfid)
        return Dirent(raw.name, raw.cookie, iatt.ino, iatt.type, iatt)

    def _dirent(self, dir_gfid: bytes, dir_fd: int, raw: RawEntry, plus: bool,
                quick_tried: bool = False) -> Dirent | None:
        """An entry by the full path: '.' and '..', and whatever `_vouched_dirent`
        (already tried if `quick_tried`) does not vouch for."""
        if raw.name in _DOTS:
            gfid = dir_gfid if raw.name == b"." else self.index.parent_of_dir(dir_gfid)
            iatt = None
            if plus:
                with self._resolve(gfid) as obj:
                    iatt = self._iatt(obj.st, obj.gfid)
            return Dirent(raw.name, raw.cookie, gfid_to_ino(gfid), IA_DIR, iatt)
        try:
            if plus:
                quick = None if quick_tried else self._vouched_dirent(dir_gfid, dir_fd, raw)
                if quick is not None:
                    return quick
                try:
                    clock = self.ctime_gfids.clock()
                    with self._child_at(dir_gfid, dir_fd, raw.name) as obj:
                        iatt = self._iatt(obj.st, obj.gfid)
                        self.ctime_gfids.remember(obj.st, obj.gfid, dir_gfid, raw.name,
                                                  obj.is_dir, clock)
                        return Dirent(raw.name, raw.cookie, iatt.ino, iatt.type, iatt)
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
