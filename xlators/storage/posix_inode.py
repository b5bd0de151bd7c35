"""storage/posix fops on an object's attributes: stat, setattr, access,
readlink, statfs and the xattr fops.

Objects are reached by gfid as O_PATH descriptors; calls that need a path
use /proc/self/fd/N, which the kernel resolves to the object itself (a
symlink stays a symlink: chown or xattrs touch the link, never its target)
and checks against the caller's credentials.
"""
from __future__ import annotations

import errno
import os
import stat as statmod

from glusterfsd.xlator import SET_TO_NOW, Caller, Iatt, SetAttr, StatFs
from xlators.storage import names, syscalls
from xlators.storage.gfid_layout import GFID_XATTR_FALLBACK, Obj
from xlators.storage.posix_core import PosixCore
from xlators.storage.identity import Creds

_ID_MAX = 0xFFFFFFFE  # (uid_t)-1 means "unchanged" to chown, so it cannot be set
# Namespaces a client may use: its own user.* attributes and POSIX ACLs
# (for NFSACL).  trusted.* and security.* hold the server's own data.
_ACL_NAMES = (b"system.posix_acl_access", b"system.posix_acl_default")
_PRIVATE_PREFIXES = (b"trusted.", b"security.", GFID_XATTR_FALLBACK.rsplit(".", 1)[0].encode() + b".")


def _xattr_name(name) -> str:
    """The attribute name if a client may touch it; EPERM/EOPNOTSUPP if not."""
    raw = names.check_xattr_name(name)
    if raw.startswith(_PRIVATE_PREFIXES):
        raise OSError(errno.EPERM, f"extended attribute {raw.decode(errors='replace')} is reserved")
    if not (raw.startswith(b"user.") or raw in _ACL_NAMES):
        raise OSError(errno.EOPNOTSUPP, f"namespace of {raw.decode(errors='replace')} is not supported")
    return os.fsdecode(raw)


def _visible(name: str) -> bool:
    try:
        _xattr_name(name)
        return True
    except OSError:
        return False


class InodeFops(PosixCore):

    def stat(self, caller: Caller, gfid: bytes) -> Iatt:
        self._enter(caller)
        entry = self.fd_cache.pin_cached(gfid)
        if entry is not None:   # an open file (READ/WRITE keep them): fstat, no path walk
            try:
                st = os.fstat(entry.fd)
            finally:
                self.fd_cache.unpin(entry)
            if st.st_nlink > 1:   # a user name besides the index link: it is still there
                return self._iatt(st, gfid)
        with self._resolve(gfid) as obj:   # also what reports a removed file (ESTALE)
            return self._iatt(obj.st, obj.gfid)

    def setattr(self, caller: Caller, gfid: bytes, attr: SetAttr):
        creds = self._enter(caller)
        self._writable("setattr")
        for ident in (attr.uid, attr.gid):
            if ident is not None and not 0 <= ident <= _ID_MAX:
                raise OSError(errno.EINVAL, f"bad owner id {ident}")
        if attr.size is not None and attr.size < 0:
            raise OSError(errno.EINVAL, f"bad size {attr.size}")
        with self._resolve(gfid) as obj:
            pre = self._iatt(obj.st, obj.gfid)
            if attr.uid is not None or attr.gid is not None:
                os.chown(obj.proc, -1 if attr.uid is None else attr.uid,
                         -1 if attr.gid is None else attr.gid)
            if attr.mode is not None:
                if statmod.S_ISLNK(obj.st.st_mode):
                    raise OSError(errno.EOPNOTSUPP, "the mode of a symlink cannot be changed")
                os.chmod(obj.proc, attr.mode & 0o7777)
            if attr.size is not None:
                self._truncate(obj, attr.size, creds)
            if attr.atime is not None or attr.mtime is not None:
                syscalls.set_times(obj.proc, attr.atime, attr.mtime, SET_TO_NOW)
            return pre, self._fresh_iatt(obj)

    def _truncate(self, obj: Obj, size: int, creds: Creds) -> None:
        if obj.is_dir:
            raise OSError(errno.EISDIR, "cannot set the size of a directory")
        if not statmod.S_ISREG(obj.st.st_mode):
            raise OSError(errno.EINVAL, "only regular files have a settable size")
        try:
            os.truncate(obj.proc, size)
        except PermissionError:
            # NFS has no open state: the owner may always size its file (knfsd's owner override)
            if creds[0] != obj.st.st_uid:
                raise
            with self.identity.as_root():
                os.truncate(obj.proc, size)

    def access(self, caller: Caller, gfid: bytes, mask: int) -> None:
        self._enter(caller)
        if mask & ~(os.R_OK | os.W_OK | os.X_OK):
            raise OSError(errno.EINVAL, f"bad access mask {mask:#o}")
        if mask & os.W_OK and self.read_only:
            raise OSError(errno.EROFS, f"volume {self.name} is read-only")
        with self._resolve(gfid) as obj:
            syscalls.check_access(obj.proc, mask)

    def readlink(self, caller: Caller, gfid: bytes) -> bytes:
        self._enter(caller)
        with self._resolve(gfid) as obj:
            if not statmod.S_ISLNK(obj.st.st_mode):
                raise OSError(errno.EINVAL, "not a symbolic link")
            return os.readlink(b"", dir_fd=obj.fd)

    def statfs(self, caller: Caller, gfid: bytes) -> StatFs:
        """Figures of the file system holding the export root (the gfid must exist)."""
        self._enter(caller)
        with self._resolve(gfid):
            vfs = os.statvfs(self.index.root_fd)
        return StatFs(
            total_bytes=vfs.f_blocks * vfs.f_frsize, free_bytes=vfs.f_bfree * vfs.f_frsize,
            avail_bytes=vfs.f_bavail * vfs.f_frsize, total_files=vfs.f_files,
            free_files=vfs.f_ffree, avail_files=vfs.f_favail, name_max=vfs.f_namemax)

    # --- extended attributes ---------------------------------------------------------
    def getxattr(self, caller: Caller, gfid: bytes, name) -> bytes:
        self._enter(caller)
        key = _xattr_name(name)
        with self._resolve(gfid) as obj:
            return os.getxattr(obj.proc, key)

    def setxattr(self, caller: Caller, gfid: bytes, name, value: bytes, flags: int = 0) -> None:
        self._enter(caller)
        self._writable("setxattr")
        key = _xattr_name(name)
        if flags & ~(os.XATTR_CREATE | os.XATTR_REPLACE):
            raise OSError(errno.EINVAL, f"bad setxattr flags {flags:#x}")
        with self._resolve(gfid) as obj:
            os.setxattr(obj.proc, key, bytes(value), flags)

    def removexattr(self, caller: Caller, gfid: bytes, name) -> None:
        self._enter(caller)
        self._writable("removexattr")
        key = _xattr_name(name)
        with self._resolve(gfid) as obj:
            os.removexattr(obj.proc, key)

    def listxattr(self, caller: Caller, gfid: bytes) -> list[bytes]:
        self._enter(caller)
        with self._resolve(gfid) as obj:
            found = os.listxattr(obj.proc)
        return [os.fsencode(key) for key in found if _visible(key)]
