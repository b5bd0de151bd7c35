"""State and helpers shared by the storage/posix fop groups.

The fops are split by concern (`posix_entry`: names; `posix_inode`:
attributes and xattrs; `posix_io`: open files; `posix_dir`: directory
listings); each
group is a mixin on this core, and `posix.PosixXlator` puts them together
with the option table and the lifecycle.

Entry ops run inside `_changing(*parent_gfids)`: the parents' directory
locks are held from their resolution (whose fstat is the wcc pre-op
attributes) to the post-op fstat (see `dir_locks`), and after the locks are
let go what the op changed is committed to stable storage as the option
`metadata-sync` says (see `metadata_sync`).
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
import weakref

from glusterfsd.xlator import (IA_BLK, IA_CHR, IA_DIR, IA_FIFO, IA_LNK, IA_REG, IA_SOCK,
                               ROOT_GFID, Caller, Iatt, Xlator)
from xlators.storage import metadata_sync, names
from xlators.storage.dir_locks import DirLocks
from xlators.storage.fd_cache import FdCache
from xlators.storage.gfid_index import GfidIndex
from xlators.storage.gfid_layout import HIDDEN_DIR, Obj, user_nlink
from xlators.storage.identity import ROOT_CREDS, Creds, Identity, is_server, squash

_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_S_IFMT = 0o170000
_IFMT_TO_IA = {statmod.S_IFREG: IA_REG, statmod.S_IFDIR: IA_DIR, statmod.S_IFBLK: IA_BLK,
               statmod.S_IFCHR: IA_CHR, statmod.S_IFLNK: IA_LNK, statmod.S_IFSOCK: IA_SOCK,
               statmod.S_IFIFO: IA_FIFO}


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
    metadata_sync: str = "on"  # the metadata-sync mode in effect (posix._sync_mode)
    dir_locks: DirLocks
    open_streams: weakref.WeakSet  # DirStreams of directory Fds not yet released

    # --- who and what ----------------------------------------------------------
    def _creds(self, caller: Caller) -> Creds:
        """What the thread runs as: the caller, root-squashed if asked; the
        server's own SERVER_CALLER is real root, never squashed."""
        if is_server(caller):
            return ROOT_CREDS
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
        obj = self._open_path(dir_fd, name)
        try:
            self.index.heal(obj, parent_gfid, name)
        except BaseException:
            obj.close()
            raise
        return obj

    @staticmethod
    def _new_child(parent: Obj, name: bytes) -> Obj:
        """Open an object this fop just created (before it has a gfid), with no
        stat yet (st is None): giving it a gfid changes its ctime, so the fop
        takes the stat it reports after that, once."""
        return Obj(b"", os.open(name, _O_PATH_NOFOLLOW, dir_fd=parent.fd), None)

    @staticmethod
    def _open_path(dir_fd: int, name: bytes) -> Obj:
        """An O_PATH Obj (no gfid yet) of `name`; the descriptor is closed if fstat fails."""
        fd = os.open(name, _O_PATH_NOFOLLOW, dir_fd=dir_fd)
        try:
            return Obj(b"", fd, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise

    def _changing(self, *parents: bytes) -> "_EntryChange":
        """The scope of an entry op on these parent directories (gfids).

        A context manager yielding (list of resolved parent Objs, SyncPlan).
        The parents' locks are taken BEFORE they are resolved, so the stat
        taken by the resolution is an exact pre-op attribute, and held until
        the body returns (it takes the post-op fstat inside).  Then, on
        success only and with the locks released, the plan is committed
        (metadata-sync).
        """
        return _EntryChange(self, parents)

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
        links (the hard link of a non-directory, the root's hidden subdirectory).

        Built field by field rather than through Iatt.from_stat + user_nlink:
        READDIRPLUS builds one per entry, and this is its hot path."""
        mode = st.st_mode
        fmt = mode & _S_IFMT
        nlink = st.st_nlink
        if fmt != statmod.S_IFDIR:
            nlink = nlink - 1 if nlink > 0 else 0
        if gfid == ROOT_GFID:
            nlink -= 1
        rdev = st.st_rdev
        major, minor = (os.major(rdev), os.minor(rdev)) if rdev else (0, 0)
        return Iatt(gfid, _IFMT_TO_IA.get(fmt, IA_REG), mode & 0o7777, nlink, st.st_uid,
                    st.st_gid, st.st_size, st.st_blocks * 512, major, minor, st.st_dev,
                    int.from_bytes(gfid[8:16], "big"), st.st_atime_ns, st.st_mtime_ns,
                    st.st_ctime_ns)

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


class _EntryChange:
    """PosixCore._changing's block.  A class, not a generator context manager:
    every entry op enters one, and contextlib's machinery cost four Python
    calls more per op."""

    __slots__ = ("core", "parents", "objs", "plan", "locks")

    def __init__(self, core: PosixCore, parents: tuple[bytes, ...]):
        self.core = core
        self.parents = parents
        self.objs: list[Obj] = []
        self.plan = metadata_sync.SyncPlan()
        self.locks = None

    def __enter__(self) -> tuple[list[Obj], metadata_sync.SyncPlan]:
        core, objs, plan = self.core, self.objs, self.plan
        locks = core.dir_locks.held(*self.parents)
        locks.__enter__()
        try:
            for gfid in self.parents:
                obj = core._resolve_dir(gfid)
                objs.append(obj)
                plan.add_dir(obj)
        except BaseException:
            locks.__exit__(None, None, None)
            self._close()
            raise
        self.locks = locks
        return objs, plan

    def __exit__(self, etype, exc, tb) -> None:
        core = self.core
        try:
            self.locks.__exit__(etype, exc, tb)
            if etype is None and core.metadata_sync != metadata_sync.OFF:
                metadata_sync.commit(self.plan, core.identity, core.index, core.metadata_sync)
        finally:
            for obj in self.objs:
                obj.close()

    def _close(self) -> None:
        for obj in self.objs:
            obj.close()
