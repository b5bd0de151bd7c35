"""storage/posix fops on open files and directories: open, read, write, flush,
fsync, release, opendir, readdir, readdirp.

File data goes through the descriptor cache (`fd_cache`): `open` checks the
caller's right to the access mode (the kernel's check, as the caller) and
records the Fd; reads and writes then use a shared cached descriptor.  If the
cache evicted it, it is reopened by gfid as root: the Fd already proved the
caller's right, as an open descriptor does in POSIX.

An ANONYMOUS Fd (ctx[identity.ANONYMOUS_FD]; every Fd the SERVER_CALLER
opens, and those the NFS fd cache adopts) is different: it serves whoever
sends the next READ or WRITE, so each read and write checks THAT caller's
right, on an fstat of the file taken by the call itself (never on
attributes cached anywhere: an owner changed by chown elsewhere must lose
the override at once).  The rule is knfsd's for NFS: the owner of a regular
file may always read and write it (NFS has no open state: a client that
created a 0444 file writes through what it holds open), anybody else needs
the kernel's verdict as the caller (faccessat), and reading also passes with
execute permission (a client must read a program to run it).  The owner
pays no extra syscall: writes fstat before writing anyway, reads after
reading (data read without the right is dropped, never returned).
"""
from __future__ import annotations

import errno
import os
import stat as statmod

from glusterfsd.xlator import IA_DIR, ROOT_GFID, Caller, Dirent, Fd, gfid_to_ino
from xlators.storage import syscalls
from xlators.storage.dirstream import DT_TO_IA, DirStream, RawEntry
from xlators.storage.gfid_layout import HIDDEN_DIR, Obj, proc_path
from xlators.storage.identity import ANONYMOUS_FD, Creds, is_server
from xlators.storage.posix_core import PosixCore

_ACCESS_FOR = {os.O_RDONLY: os.R_OK, os.O_WRONLY: os.W_OK, os.O_RDWR: os.R_OK | os.W_OK}
# Bytes one entry takes in an NFSv3 reply (cookie, fileid, name length, next
# pointer), and what READDIRPLUS adds (post_op_attr and a 52-byte handle).
ENTRY_COST = 24
PLUS_COST = 148


class IoFops(PosixCore):

    # --- files ------------------------------------------------------------------------
    def open(self, caller: Caller, gfid: bytes, flags: int) -> Fd:
        creds = self._enter(caller)
        acc = flags & os.O_ACCMODE
        if acc not in _ACCESS_FOR:
            raise OSError(errno.EINVAL, f"bad access mode in flags {flags:#o}")
        if acc != os.O_RDONLY or flags & os.O_TRUNC:
            self._writable("open")
        with self._resolve(gfid) as obj:
            if obj.is_dir:
                raise OSError(errno.EISDIR, "open of a directory (use opendir)")
            if statmod.S_ISLNK(obj.st.st_mode):
                raise OSError(errno.ELOOP, "open of a symbolic link")
            if not statmod.S_ISREG(obj.st.st_mode):
                raise OSError(errno.EINVAL, "only regular files can be opened on the server")
            ctx = {"acc": acc, ANONYMOUS_FD: True} if is_server(caller) else {"acc": acc}
            if not flags & os.O_TRUNC and self.fd_cache.has(obj.gfid, acc):
                self._check_right(obj, acc, creds)
                if self.fd_cache.note_open(obj.gfid, acc):
                    return Fd(obj.gfid, flags, ctx=ctx)
            fd = self._open_as(obj, acc | (flags & os.O_TRUNC), creds)
            self.fd_cache.adopt(obj.gfid, acc, fd)
            return Fd(obj.gfid, flags, ctx=ctx)

    def _owner_override(self, obj: Obj, creds: Creds) -> bool:
        """NFS has no open state: a client that created a 0444 file and still
        has it open must be able to WRITE it.  As knfsd does, the owner of a
        regular file passes the permission check."""
        return creds[0] == obj.st.st_uid and statmod.S_ISREG(obj.st.st_mode)

    @staticmethod
    def _caller_may(fd: Fd, caller: Caller, creds: Creds, osfd: int, st: os.stat_result,
                    rights: tuple[int, ...]) -> None:
        """For an anonymous Fd: PermissionError(EACCES) unless this caller may
        use it (owner override, else any of `rights` by the kernel's check as
        the caller, whose credentials the thread already carries)."""
        if not fd.ctx.get(ANONYMOUS_FD) or is_server(caller):
            return
        if creds[0] == st.st_uid and statmod.S_ISREG(st.st_mode):
            return
        path = proc_path(osfd)
        for mask in rights:
            try:
                syscalls.check_access(path, mask)
                return
            except PermissionError:
                continue
        raise PermissionError(errno.EACCES, "the caller may not "
                              + ("write" if rights == (os.W_OK,) else "read") + " this file")

    def _check_right(self, obj: Obj, acc: int, creds: Creds) -> None:
        try:
            syscalls.check_access(obj.proc, _ACCESS_FOR[acc])
        except PermissionError:
            if not self._owner_override(obj, creds):
                raise

    def _open_as(self, obj: Obj, flags: int, creds: Creds) -> int:
        try:
            return os.open(obj.proc, flags | os.O_CLOEXEC)
        except PermissionError:
            if not self._owner_override(obj, creds):
                raise
            with self.identity.as_root():
                return os.open(obj.proc, flags | os.O_CLOEXEC)

    def _reopen(self, gfid: bytes, acc: int) -> int:
        """The fd cache lost a descriptor: open it again by gfid (as root)."""
        with self.identity.as_root(), self.index.resolve(gfid) as obj:
            if not statmod.S_ISREG(obj.st.st_mode):
                raise OSError(errno.ESTALE, "the gfid now names a non-regular file")
            return os.open(obj.proc, acc | os.O_CLOEXEC)

    @staticmethod
    def _file_acc(fd: Fd) -> int:
        if fd.is_dir:
            raise OSError(errno.EISDIR, "a directory Fd")
        if fd.ctx.get("released"):
            raise OSError(errno.EBADF, "Fd already released")
        if "acc" not in fd.ctx:
            raise OSError(errno.EBADF, "Fd was not opened by this volume")
        return fd.ctx["acc"]

    def read(self, caller: Caller, fd: Fd, offset: int, size: int):
        creds = self._enter(caller)
        acc = self._file_acc(fd)
        if acc == os.O_WRONLY:
            raise OSError(errno.EBADF, "Fd is open for writing only")
        if offset < 0 or size < 0:
            raise OSError(errno.EINVAL, f"bad read range {offset}+{size}")
        entry = self.fd_cache.pin(fd.gfid, acc)   # not `use`: a generator per READ costs
        try:
            osfd = entry.fd
            data = os.pread(osfd, size, offset)
            st = os.fstat(osfd)
            self._caller_may(fd, caller, creds, osfd, st, (os.R_OK, os.X_OK))
            return data, self._iatt(st, fd.gfid)
        finally:
            self.fd_cache.unpin(entry)

    def write(self, caller: Caller, fd: Fd, offset: int, data: bytes, stable: int):
        creds = self._enter(caller)
        self._writable("write")
        acc = self._file_acc(fd)
        if acc == os.O_RDONLY:
            raise OSError(errno.EBADF, "Fd is open for reading only")
        if stable not in (0, 1, 2):
            raise OSError(errno.EINVAL, f"bad stable mode {stable}")
        if offset < 0:
            raise OSError(errno.EINVAL, f"bad write offset {offset}")
        view = memoryview(data).cast("B")
        entry = self.fd_cache.pin(fd.gfid, acc)
        try:
            osfd = entry.fd
            st = os.fstat(osfd)
            self._caller_may(fd, caller, creds, osfd, st, (os.W_OK,))
            pre = self._iatt(st, fd.gfid)
            written = os.pwrite(osfd, view, offset)
            while 0 < written < len(view):   # a short write: carry on from where it stopped
                count = os.pwrite(osfd, view[written:], offset + written)
                if count == 0:
                    break
                written += count
            if stable == 1:
                os.fdatasync(osfd)
            elif stable == 2:
                os.fsync(osfd)
            return written, pre, self._iatt(os.fstat(osfd), fd.gfid)
        finally:
            self.fd_cache.unpin(entry)

    def flush(self, caller: Caller, fd: Fd) -> None:
        """Nothing is buffered above the kernel here, so flush only checks the Fd."""
        self._enter(caller)
        if fd.ctx.get("released"):
            raise OSError(errno.EBADF, "Fd already released")
        if not fd.is_dir:
            self._file_acc(fd)

    def fsync(self, caller: Caller, fd: Fd, datasync: bool):
        self._enter(caller)
        sync = os.fdatasync if datasync else os.fsync
        if fd.is_dir:
            stream = self._stream(fd)
            with stream.lock:
                pre = self._iatt(os.fstat(stream.fd), fd.gfid)
                sync(stream.fd)
                return pre, self._iatt(os.fstat(stream.fd), fd.gfid)
        acc = self._file_acc(fd)
        with self.fd_cache.use(fd.gfid, acc) as osfd:
            pre = self._iatt(os.fstat(osfd), fd.gfid)
            sync(osfd)
            return pre, self._iatt(os.fstat(osfd), fd.gfid)

    def release(self, fd: Fd) -> None:
        """Close an Fd.  Never fails: problems are logged."""
        if fd.ctx.get("released"):
            return
        fd.ctx["released"] = True
        try:
            if fd.is_dir:
                stream = fd.ctx.get("stream")
                if stream is not None:
                    with stream.lock:
                        stream.close()
            elif "acc" in fd.ctx:
                self.fd_cache.release(fd.gfid, fd.ctx["acc"],
                                      gone=lambda osfd: os.fstat(osfd).st_nlink <= 1)
        except Exception as err:  # release has no caller to report to
            self.log.warning("release of %s failed: %s", fd.gfid.hex(), err)

    # --- directories ---------------------------------------------------------------
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
        used = 0
        with stream.lock:
            if stream.fd < 0:
                raise OSError(errno.EBADF, "Fd already released")
            # a listed entry costs the reply at least ENTRY_COST (+ PLUS_COST) plus
            # its name, its getdents record about 24 bytes plus the name
            first_read = size // 4 if plus else size * 2
            for raw in stream.entries_from(cookie, first_read):
                if fd.gfid == ROOT_GFID and raw.name == HIDDEN_DIR:
                    continue
                dirent = self._dirent(fd.gfid, stream.fd, raw, plus)
                if dirent is None:
                    continue  # removed while we listed
                cost = ENTRY_COST + len(raw.name) + (PLUS_COST if plus else 0)
                if entries and used + cost > size:
                    return entries, False
                entries.append(dirent)
                used += cost
        return entries, True

    def _vouched_dirent(self, dir_gfid: bytes, dir_fd: int, raw: RawEntry) -> Dirent | None:
        """READDIRPLUS's common case in two syscalls (lstat and the gfid xattr,
        both by name as the caller): an entry whose index entry this server
        already verified.  None sends the entry down the full path (open,
        heal), which also handles no search permission and vanished names."""
        try:
            st = os.stat(raw.name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return None
        gfid = self.index.vouched_gfid_at(dir_fd, raw.name, st, dir_gfid)
        if gfid is None:
            return None
        iatt = self._iatt(st, gfid)
        return Dirent(raw.name, raw.cookie, iatt.ino, iatt.type, iatt)

    def _dirent(self, dir_gfid: bytes, dir_fd: int, raw: RawEntry, plus: bool) -> Dirent | None:
        if raw.name in (b".", b".."):
            gfid = dir_gfid if raw.name == b"." else self.index.parent_of_dir(dir_gfid)
            iatt = None
            if plus:
                with self._resolve(gfid) as obj:
                    iatt = self._iatt(obj.st, obj.gfid)
            return Dirent(raw.name, raw.cookie, gfid_to_ino(gfid), IA_DIR, iatt)
        try:
            if plus:
                quick = self._vouched_dirent(dir_gfid, dir_fd, raw)
                if quick is not None:
                    return quick
                try:
                    with self._child_at(dir_gfid, dir_fd, raw.name) as obj:
                        iatt = self._iatt(obj.st, obj.gfid)
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
