"""The translator (xlator) base: lifecycle, option table, and the fop interface.

A GlusterFS graph is a tree of xlators; a file operation ("fop") enters at the
top and each xlator either answers it or passes it to its children.  Here fops
are plain synchronous method calls made from stage threads (no callbacks): a
fop returns its result or raises `OSError` with the errno, exactly as the
storage would.  The base class passes every fop to its first child, so an
xlator overrides only what it changes, like GlusterFS's `default_*` fops.

Objects are named by their 16-byte gfid (GlusterFS's identity), never by
path, so handles stay valid across renames and restarts.  Every fop takes the
`Caller` first: the credentials the storage must act as.
"""
from __future__ import annotations

import errno
import stat as statmod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from glusterfsd import log as gflog
from glusterfsd.options import Option, OptionTable

ROOT_GFID = b"\x00" * 15 + b"\x01"

# Object types, numbered as NFSv3's ftype3 so the NFS layer needs no mapping.
IA_REG, IA_DIR, IA_BLK, IA_CHR, IA_LNK, IA_SOCK, IA_FIFO = 1, 2, 3, 4, 5, 6, 7
_S_IFMT_TO_IA = {
    statmod.S_IFREG: IA_REG, statmod.S_IFDIR: IA_DIR, statmod.S_IFBLK: IA_BLK,
    statmod.S_IFCHR: IA_CHR, statmod.S_IFLNK: IA_LNK, statmod.S_IFSOCK: IA_SOCK,
    statmod.S_IFIFO: IA_FIFO,
}
IA_TO_S_IFMT = {v: k for k, v in _S_IFMT_TO_IA.items()}

# notify() events, as GlusterFS's GF_EVENT_*.
EVENT_PARENT_UP = "parent-up"
EVENT_CHILD_UP = "child-up"
EVENT_CHILD_DOWN = "child-down"


def gfid_to_ino(gfid: bytes) -> int:
    """The 64-bit inode number of a gfid: its last 8 bytes, as posix does."""
    return int.from_bytes(gfid[8:16], "big")


@dataclass(slots=True)
class Caller:
    """Who a fop runs as: the AUTH_SYS (or anonymous) identity of the request."""

    uid: int = 65534
    gid: int = 65534
    groups: tuple[int, ...] = ()
    client: str = ""  # peer address, for logs and auth caches

    @property
    def is_root(self) -> bool:
        return self.uid == 0


ROOT_CALLER = Caller(0, 0, ())
# The server acting for itself (never a client): storage runs it as real root
# and never squashes it, because root-squash is about what a CLIENT's uid 0 may
# do.  Compared by identity (`is`), so no decoded credential can pass for it.
SERVER_CALLER = Caller(0, 0, (), "<server>")
# Fd.ctx key: this Fd is shared by many callers (NFS has no OPEN), so storage
# checks each read and write on it against that call's caller.
ANONYMOUS_FD = "anonymous"


@dataclass(slots=True)
class Iatt:
    """The attributes of one object (GlusterFS's `struct iatt`)."""

    gfid: bytes
    type: int
    mode: int  # permission bits only (07777)
    nlink: int
    uid: int
    gid: int
    size: int
    used: int  # bytes allocated on disk
    rdev_major: int
    rdev_minor: int
    dev: int
    ino: int
    atime: int  # nanoseconds since the epoch
    mtime: int
    ctime: int

    @classmethod
    def from_stat(cls, st, gfid: bytes) -> "Iatt":
        import os
        return cls(
            gfid, _S_IFMT_TO_IA.get(statmod.S_IFMT(st.st_mode), IA_REG),
            statmod.S_IMODE(st.st_mode), st.st_nlink, st.st_uid, st.st_gid,
            st.st_size, st.st_blocks * 512,
            os.major(st.st_rdev), os.minor(st.st_rdev), st.st_dev,
            gfid_to_ino(gfid), st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns,
        )

    @property
    def is_dir(self) -> bool:
        return self.type == IA_DIR


@dataclass(slots=True)
class SetAttr:
    """What SETATTR changes; None leaves a field alone.

    Times are nanoseconds since the epoch, or `SET_TO_NOW`.
    """

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime: int | None = None
    mtime: int | None = None


SET_TO_NOW = -1


@dataclass(slots=True)
class Dirent:
    """One directory entry; `cookie` resumes the listing after this entry."""

    name: bytes
    cookie: int
    ino: int
    type: int
    iatt: Iatt | None = None  # filled by readdirp


@dataclass(slots=True)
class StatFs:
    total_bytes: int
    free_bytes: int
    avail_bytes: int
    total_files: int
    free_files: int
    avail_files: int
    name_max: int = 255


@dataclass(eq=False)
class Fd:
    """An open file or directory; xlators keep their own state in `ctx`."""

    gfid: bytes
    flags: int
    is_dir: bool = False
    ctx: dict = field(default_factory=dict)


# Every fop of the interface, in GlusterFS's order.  Signatures and results:
#   lookup(caller, parent, name)                 -> Iatt   (name None: by gfid)
#   lookup_with_parent(caller, parent, name)     -> (iatt, postparent)  (iatt None: ENOENT)
#   stat(caller, gfid)                           -> Iatt
#   setattr(caller, gfid, SetAttr)               -> (pre, post)
#   access(caller, gfid, mask)                   -> None or EACCES (mask of os.R_OK|W_OK|X_OK)
#   readlink(caller, gfid)                       -> bytes
#   mknod(caller, parent, name, mode, rdev)      -> (iatt, preparent, postparent)
#   mkdir(caller, parent, name, mode)            -> (iatt, preparent, postparent)
#   unlink(caller, parent, name)                 -> (preparent, postparent)
#   rmdir(caller, parent, name)                  -> (preparent, postparent)
#   symlink(caller, parent, name, target, mode)  -> (iatt, preparent, postparent)
#   rename(caller, oldparent, oldname, newparent, newname)
#                                                -> (preold, postold, prenew, postnew)
#   link(caller, gfid, newparent, newname)       -> (iatt, preparent, postparent)
#   create(caller, parent, name, flags, mode)    -> (Fd, iatt, preparent, postparent)
#   open(caller, gfid, flags)                    -> Fd
#   read(caller, fd, offset, size)               -> (bytes, post)
#   write(caller, fd, offset, data, stable)      -> (count, pre, post)  stable: 0 unstable, 1 data, 2 file sync
#   flush(caller, fd)                            -> None
#   fsync(caller, fd, datasync)                  -> (pre, post)
#   release(fd)                                  -> None  (close; no caller, never fails)
#   opendir(caller, gfid)                        -> Fd
#   readdir(caller, fd, cookie, size)            -> (list[Dirent], eof)
#   readdirp(caller, fd, cookie, size)           -> (list[Dirent] with iatt, eof)
#   statfs(caller, gfid)                         -> StatFs
#   getxattr(caller, gfid, name)                 -> bytes
#   setxattr(caller, gfid, name, value, flags)   -> None
#   removexattr(caller, gfid, name)              -> None
#   listxattr(caller, gfid)                      -> list[bytes]
FOPS = (
    "lookup", "lookup_with_parent", "stat", "setattr", "access", "readlink", "mknod", "mkdir", "unlink",
    "rmdir", "symlink", "rename", "link", "create", "open", "read", "write",
    "flush", "fsync", "release", "opendir", "readdir", "readdirp", "statfs",
    "getxattr", "setxattr", "removexattr", "listxattr",
)

_REGISTRY: dict[str, type["Xlator"]] = {}

# Types seen in glusterd-written volfiles that this project does not implement,
# with what the operator should use instead.
NOT_IMPLEMENTED = {
    "protocol/client": "serving a GlusterFS volume needs the libgfapi xlator, which is not "
                       "available yet; export a local directory with storage/posix",
    "protocol/server": "this daemon is an NFS server, not a brick; run glusterfsd for bricks",
    "mount/fuse": "this daemon serves NFS; mount with a FUSE client instead",
}
for _prefix in ("cluster/", "performance/", "debug/", "features/"):
    NOT_IMPLEMENTED[_prefix] = ("GlusterFS's client-side translators are not implemented here "
                                "(performance/readdir-ahead is); put storage/posix (a local "
                                "directory) under nfs/server")


def register(cls: type["Xlator"]) -> type["Xlator"]:
    """Class decorator: make an xlator type available to volfiles."""
    _REGISTRY[cls.type_name] = cls
    return cls


def lookup_type(type_name: str) -> type["Xlator"]:
    """The class for a volfile `type`, or LookupError saying what to use instead."""
    _load_builtin_types()
    if type_name in _REGISTRY:
        return _REGISTRY[type_name]
    advice = NOT_IMPLEMENTED.get(type_name)
    if advice is None:
        advice = next((text for prefix, text in NOT_IMPLEMENTED.items()
                       if prefix.endswith("/") and type_name.startswith(prefix)), None)
    known = ", ".join(sorted(_REGISTRY))
    if advice:
        raise LookupError(f"xlator type '{type_name}' is not implemented: {advice}")
    raise LookupError(f"unknown xlator type '{type_name}' (known types: {known})")


def known_types() -> dict[str, type["Xlator"]]:
    _load_builtin_types()
    return dict(_REGISTRY)


_BUILTIN_MODULES = ("xlators.storage.posix", "xlators.performance.readdir_ahead", "nfs.server")


def _load_builtin_types():
    """Import the shipped xlators (late: they import this module)."""
    import importlib
    for name in _BUILTIN_MODULES:
        importlib.import_module(name)


class Xlator:
    """Base of every translator.

    Subclasses set `type_name`, `options` (their option table) and override
    the lifecycle methods and the fops they implement.
    """

    type_name: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    # Subvolume count the type accepts: (min, max); max None = any.
    children_range: ClassVar[tuple[int, int | None]] = (0, None)

    def __init__(self, name: str, opts: dict[str, Any], children: list["Xlator"]):
        self.name = name
        self.given = dict(opts)  # only what the volfile set, typed
        self.opts = {**self.option_table().defaults(), **opts}
        self.children = list(children)
        self.parents: list[Xlator] = []
        for child in self.children:
            child.parents.append(self)
        self.log = gflog.get_logger(name)
        self.graph_id = 0

    @classmethod
    def option_table(cls) -> OptionTable:
        table = cls.__dict__.get("_option_table")
        if table is None:
            table = OptionTable(cls.options)
            cls._option_table = table
        return table

    def option(self, key: str, volume: str | None = None) -> Any:
        """A value, looking up `*` keys for one volume: option('nfs3.*.trusted-sync', 'gv0')."""
        if volume is not None:
            concrete = key.replace("*", volume)
            if concrete in self.opts:
                return self.opts[concrete]
            opt = self.option_table().lookup(concrete)
            return opt.default_value() if opt else None
        return self.opts.get(key)

    # --- lifecycle ------------------------------------------------------
    def init(self) -> None:
        """Acquire resources; raise with a clear message if that is impossible."""

    def fini(self) -> None:
        """Release what init acquired.  Must not raise."""

    def notify(self, event: str, data: Any = None) -> None:
        """Events travel up (child-up/down) and down (parent-up) the graph."""
        if event == EVENT_PARENT_UP:
            for child in self.children:
                child.notify(EVENT_PARENT_UP, self)
            if not self.children:
                for parent in self.parents:
                    parent.notify(EVENT_CHILD_UP, self)
        elif event in (EVENT_CHILD_UP, EVENT_CHILD_DOWN):
            for parent in self.parents:
                parent.notify(event, self)

    def reconfigure(self, changed: dict[str, Any]) -> None:
        """Apply changed options (already validated) without a restart."""
        self.opts.update(changed)
        self.given.update(changed)

    def dump_private(self) -> dict[str, Any]:
        """Key/value pairs for this xlator's statedump section."""
        return {}

    # --- helpers --------------------------------------------------------
    @property
    def first_child(self) -> "Xlator":
        if not self.children:
            raise OSError(errno.ENOTCONN, f"{self.name} has no subvolume")
        return self.children[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.type_name})>"


def _make_default_fop(fop: str):
    def default_fop(self, *args, **kwargs):
        return getattr(self.first_child, fop)(*args, **kwargs)
    default_fop.__name__ = fop
    default_fop.__doc__ = f"Pass {fop} to the first subvolume (GlusterFS's default_{fop})."
    return default_fop


for _fop in FOPS:
    setattr(Xlator, _fop, _make_default_fop(_fop))
