"""storage/posix fops on open files: open, read, write, flush, fsync, release
(of file and directory Fds alike; opendir and the listings are in `posix_dir`).

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

from glusterfsd.xlator import Caller, Fd
from xlators.storage import syscalls
from xlators.storage.gfid_layout import Obj, proc_path
from xlators.storage.identity import ANONYMOUS_FD, Creds, is_server
from xlators.storage.posix_core import PosixCore

S_ISREG = statmod.S_ISREG
_READ_RIGHTS = (os.R_OK, os.X_OK)
_WRITE_RIGHTS = (os.W_OK,)
_ACCESS_FOR = {os.O_RDONLY: os.R_OK, os.O_WRONLY: os.W_OK, os.O_RDWR: os.R_OK | os.W_OK}


# The most one pwrite() is given; a longer WRITE is written in pieces this size.
WRITE_PIECE = 128 * 1024


def _pwrite_all(osfd: int, view: memoryview, offset: int) -> int:
    """Write `view` at `offset` in pieces of at most WRITE_PIECE bytes, carrying
    on after a short write; returns the bytes written.  Fewer than asked when
    the kernel wrote nothing more or failed after some were written (ENOSPC,
    EFBIG): a short write, as write(2) reports it, which NFS clients resend
    the rest of and then meet the error; an error before any byte is raised.

    Why pieces: the page cache sizes a folio by the write that creates it, so
    one 1 MiB pwrite leaves the file in folios of up to 1 MiB, and ext4
    (buffer heads, large folios since Linux 6.16) walks every block of the
    folio for each later small write into it.  Measured here (kernel 6.18,
    ext4, a 256 MiB file then 30 000 random 4 KiB overwrites, CPU per write):
    written in 1 MiB pwrites 11-19 us, in 256 KiB 7, in 128 KiB 5-6, in
    64 KiB 4; the sequential write itself cost the same per MiB down to
    128 KiB pieces (318-339 us, 1 MiB pieces 330), more below (64 KiB 364-378,
    32 KiB 434-453), and reading was unchanged.  Clients write big files in
    wsize pieces (1 MiB) and databases and VM images then rewrite them in
    small blocks: under NFS random writes, ext4_block_write_begin was 24 % of
    the worker's CPU.  File systems that track blocks per folio (xfs) or have
    no large folios lose only a few syscalls per MiB."""
    end = len(view)
    written = 0
    while written < end:
        try:
            count = os.pwrite(osfd, view[written:written + WRITE_PIECE], offset + written)
        except OSError:
            if not written:
                raise
            break
        if count == 0:
            break
        written += count
    return written


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
                              + ("write" if rights == _WRITE_RIGHTS else "read") + " this file")

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
        ctx = fd.ctx
        acc = ctx.get("acc")
        if acc is None or fd.is_dir or "released" in ctx:
            acc = self._file_acc(fd)    # raises what is wrong with it
        if acc == os.O_WRONLY:
            raise OSError(errno.EBADF, "Fd is open for writing only")
        if offset < 0 or size < 0:
            raise OSError(errno.EINVAL, f"bad read range {offset}+{size}")
        entry = self.fd_cache.pin(fd.gfid, acc)   # not `use`: a generator per READ costs
        try:
            osfd = entry.fd
            data = os.pread(osfd, size, offset)
            st = os.fstat(osfd)
            if creds[0] != st.st_uid or not S_ISREG(st.st_mode):   # else: the owner, passes
                self._caller_may(fd, caller, creds, osfd, st, _READ_RIGHTS)
            return data, self._iatt(st, fd.gfid)
        finally:
            self.fd_cache.unpin(entry)

    def write(self, caller: Caller, fd: Fd, offset: int, data: bytes, stable: int):
        creds = self._enter(caller)
        if self.read_only:
            self._writable("write")
        ctx = fd.ctx
        acc = ctx.get("acc")
        if acc is None or fd.is_dir or "released" in ctx:
            acc = self._file_acc(fd)    # raises what is wrong with it
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
            if creds[0] != st.st_uid or not S_ISREG(st.st_mode):   # else: the owner, passes
                self._caller_may(fd, caller, creds, osfd, st, _WRITE_RIGHTS)
            pre = self._iatt(st, fd.gfid)
            written = _pwrite_all(osfd, view, offset)
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
