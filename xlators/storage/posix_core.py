"""State and helpers shared by the storage/posix fop groups.

The fops are split by concern (`posix_entry`: names; `posix_inode`:
attributes and xattrs; `posix_io`: open files and directory listings); each
group is a mixin on this core, and `posix.PosixXlator` puts them together
with the option table and the lifecycle.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
import weakref

from glusterfsd.xlator import ROOT_GFID, Caller, Iatt, Xlator
from xlators.storage import names
from xlators.storage.fd_cache import FdCache
from xlators.storage.gfid_index import GfidIndex
from xlators.storage.gfid_layout import HIDDEN_DIR, Obj, user_nlink
from xlators.storage.identity import Creds, Identity, squash

_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class PosixCore(Xlator):
    """Everything the fop mixins share; no fops here."""

    # set by init()
    identity: Identity
    index: GfidIndex
    fd_cache: FdCache
    directory: str
    volume_id: bytes
    read_only: bool = False
    root_squash: bool = False
    anon_uid: int = 65534
    anon_gid: int = 65534
    max_hardlinks: int = 100
    open_streams: weakref.WeakSet  # DirStreams of directory Fds not yet released

    # --- who and what ----------------------------------------------------------
    def _creds(self, caller: Caller) -> Creds:
        groups = tuple(caller.groups)
        if self.root_squash:
            return squash(caller.uid, caller.gid, groups, self.anon_uid, self.anon_gid)
        return caller.uid, caller.gid, groups

    def _enter(self, caller: Caller) -> Creds:
        """Start a fop: this thread now acts as the (squashed) caller."""
        creds = self._creds(caller)
        self.identity.become(creds)
        return creds

    def _writable(self, fop: str) -> None:
        if self.read_only:
            raise OSError(errno.EROFS, f"{fop}: volume {self.name} is read-only")

    # --- objects -----------------------------------------------------------------
    def _resolve(self, gfid: bytes) -> Obj:
        return self.index.resolve(gfid)

    def _resolve_dir(self, gfid: bytes) -> Obj:
        obj = self.index.resolve(gfid)
        if not obj.is_dir:
            obj.close()
            raise OSError(errno.ENOTDIR, "parent is not a directory")
        return obj

    def _child(self, parent: Obj, name: bytes) -> Obj:
        return self._child_at(parent.gfid, parent.fd, name)

    def _child_at(self, parent_gfid: bytes, dir_fd: int, name: bytes) -> Obj:
        """Look `name` up in a directory as the caller (never following it)
        and make sure it has a gfid and an index entry."""
        fd = os.open(name, _O_PATH_NOFOLLOW, dir_fd=dir_fd)
        obj = Obj(b"", fd, os.fstat(fd))
        try:
            self.index.heal(obj, parent_gfid, name)
        except BaseException:
            obj.close()
            raise
        return obj

    def _new_child(self, parent: Obj, name: bytes) -> Obj:
        """Open an object this fop just created (before it has a gfid)."""
        fd = os.open(name, _O_PATH_NOFOLLOW, dir_fd=parent.fd)
        return Obj(b"", fd, os.fstat(fd))

    def _undo_create(self, parent: Obj, name: bytes, is_dir: bool) -> None:
        """Take back an entry whose gfid or index entry could not be made."""
        with self.identity.as_root(), contextlib.suppress(OSError):
            if is_dir:
                os.rmdir(name, dir_fd=parent.fd)
            else:
                os.unlink(name, dir_fd=parent.fd)

    @staticmethod
    def _refuse_hidden(parent: bytes, name: bytes, fop: str) -> None:
        if parent == ROOT_GFID and name == HIDDEN_DIR:
            raise OSError(errno.EPERM, f"{fop}: '{HIDDEN_DIR.decode()}' is reserved for the gfid index")

    @staticmethod
    def _is_hidden(parent: bytes, name: bytes) -> bool:
        return parent == ROOT_GFID and name == HIDDEN_DIR

    # --- attributes --------------------------------------------------------------
    @staticmethod
    def _iatt(st: os.stat_result, gfid: bytes) -> Iatt:
        """Attributes as clients see them: link counts without the index's own
        links (the hard link of a non-directory, the root's hidden subdirectory)."""
        iatt = Iatt.from_stat(st, gfid)
        iatt.nlink = user_nlink(st) - (1 if gfid == ROOT_GFID else 0)
        return iatt

    def _fresh_iatt(self, obj: Obj) -> Iatt:
        obj.st = os.fstat(obj.fd)
        return self._iatt(obj.st, obj.gfid)

    def _fix_mode(self, obj: Obj, requested: int) -> None:
        """Give a new object the permission bits the client asked for.

        The process umask would strip bits (the NFS client applied its own
        umask already); only when it did, one chmod as the owner restores them.
        Bits the kernel added (setgid inherited from the parent) are kept.
        """
        wanted = requested & 0o7777
        have = statmod.S_IMODE(obj.st.st_mode)
        if wanted & ~have and not statmod.S_ISLNK(obj.st.st_mode):
            os.chmod(obj.proc, have | wanted)
            obj.st = os.fstat(obj.fd)

    def _link_count_ok(self, st: os.stat_result) -> None:
        if self.max_hardlinks and user_nlink(st) >= self.max_hardlinks:
            raise OSError(errno.EMLINK, f"already {user_nlink(st)} links (max-hardlinks "
                                        f"{self.max_hardlinks})")

    @staticmethod
    def _name(name, fop: str) -> bytes:
        return names.check_entry_name(name, fop)
