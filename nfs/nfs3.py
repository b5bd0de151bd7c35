"""The NFSv3 program (100003 v3): handle resolution, the actor table, and the small procedures.

Every procedure follows one shape (gnfs's `nfs3_*` pairs, without callbacks):
resolve the handle(s), refuse early what the export forbids (ROFS), call the
fops as the caller, and build the reply with attributes.  Failures raise
`NfsError(status, **resfail_fields)`; the actor wrapper turns that (or a bare
OSError, through the errno map) into the procedure's resfail, filling any
attribute field not given with "no attributes" -- so every error reply is a
well-formed RFC 1813 answer, with wcc_data whenever the procedure has it.

Handles are resolved by nfs.resolver (BADHANDLE, STALE, ACCES).  The procedures live in
nfs3_io (READ/WRITE/COMMIT), nfs3_entry (CREATE ... LINK) and nfs3_dir
(READDIR/READDIRPLUS); this module holds the shared state and the rest.
"""
from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass

from glusterfsd import log as gflog
from glusterfsd.xlator import IA_DIR, IA_LNK, Iatt
from nfs.fh import FH_SIZE
from nfs.fdcache import FdCache
from nfs.inode import InodeTables
from nfs.nfs3_attrs import (FATTR3_FORMAT, NO_ATTR, NO_WCC, N, nfstime, sattr3_to_setattr,
                            setattr_is_empty, wcc_resok)
from nfs.nfs3_errors import NfsError, nfsstat3_for_errno, status_name
from nfs.resolver import HandleResolver, Target
from rpcsvc import wire
from rpcsvc.program import Program, Reply, RpcAuthError

logger = gflog.get_logger("nfs3")

NFS3_OK = N.NFS3_OK
NAME_MAX = 255
ACCESS_READ, ACCESS_LOOKUP, ACCESS_MODIFY = 0x01, 0x02, 0x04
ACCESS_EXTEND, ACCESS_DELETE, ACCESS_EXECUTE = 0x08, 0x10, 0x20
_ACCESS_WRITE_BITS = ACCESS_MODIFY | ACCESS_EXTEND | ACCESS_DELETE
FSF3_LINK, FSF3_SYMLINK, FSF3_HOMOGENEOUS, FSF3_CANSETTIME = 0x1, 0x2, 0x8, 0x10
MAX_FILE_SIZE = 1 << 50       # FSINFO maxfilesize: 1 PiB, as gnfs
OFFSET_MAX = (1 << 63) - 1    # the largest file offset the kernel takes (loff_t)
PATHCONF_LINKMAX = 256        # as gnfs
_GONE = (errno.ENOENT, errno.ESTALE)
_AUTH_SYS, _AUTH_NONE = wire.AUTH_SYS, wire.AUTH_NONE
# GETATTR3resok packed by hand (the call clients make most): NFS3_OK and the fattr3.
_GETATTR_OK = struct.Struct(">I" + FATTR3_FORMAT)
# LOOKUP3resok packed by hand (every stat and open of a path is a LOOKUP per component):
# NFS3_OK and the handle's length, the handle, then both post_op_attrs (attributes_follow
# TRUE + fattr3) of the object and of the directory.  A child's handle is its directory's
# (checked to be FH_SIZE bytes) with its gfid, so FH_SIZE too: a multiple of 4, no padding.
_LOOKUP_OK = struct.Struct(f">II{FH_SIZE}sI" + FATTR3_FORMAT + "I" + FATTR3_FORMAT)
# A name that is not there (looked up before every create): NOENT and the directory's
# post_op_attr.
_LOOKUP_NOENT = struct.Struct(">II" + FATTR3_FORMAT)

# The fields of each procedure's resfail: those ending in _wcc are wcc_data,
# the others post_op_attr.  GETATTR's failure carries nothing.
RESFAIL_FIELDS = {
    "SETATTR": ("obj_wcc",), "LOOKUP": ("dir_attributes",), "ACCESS": ("obj_attributes",),
    "READLINK": ("symlink_attributes",), "READ": ("file_attributes",),
    "WRITE": ("file_wcc",), "CREATE": ("dir_wcc",), "MKDIR": ("dir_wcc",),
    "SYMLINK": ("dir_wcc",), "MKNOD": ("dir_wcc",), "REMOVE": ("dir_wcc",),
    "RMDIR": ("dir_wcc",), "RENAME": ("fromdir_wcc", "todir_wcc"),
    "LINK": ("file_attributes", "linkdir_wcc"), "READDIR": ("dir_attributes",),
    "READDIRPLUS": ("dir_attributes",), "FSSTAT": ("obj_attributes",),
    "FSINFO": ("obj_attributes",), "PATHCONF": ("obj_attributes",), "COMMIT": ("file_wcc",),
}
# Procedures run on the event thread (see rpcsvc.program.Program): those that do not wait
# on the disk beyond a page-cache read or write.  COMMIT and the entry operations fsync
# (RFC 1813 stable storage), so they go to the stage threads; so does a WRITE, whose
# stability is only known from its arguments: an UNSTABLE one is as quick as a READ and
# runs inline too (nfs3_io.INLINE_IF), FILE_SYNC ones would hold an event thread for a
# whole fsync.  (A page-cache write can still wait while the kernel throttles dirty pages;
# the event thread's other connections wait with it, as they do in gnfs.)
INLINE = ("NULL", "GETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "READDIR", "READDIRPLUS",
          "FSSTAT", "FSINFO", "PATHCONF")
# Procedures whose replies the duplicate request cache keeps (gnfs: DRC_NON_IDEMPOTENT).
NON_IDEMPOTENT = ("SETATTR", "CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR",
                  "RENAME", "LINK")


@dataclass
class Nfs3Config:
    """The nfs/server options the procedures need (sizes already rounded to 4 KiB)."""

    read_size: int = 1 << 20
    write_size: int = 1 << 20
    readdir_size: int = 1 << 20
    enable_ino32: bool = False
    rdirplus: bool = True
    auth_unix: bool = True
    auth_null: bool = True


class Nfs3:
    """State shared by all NFSv3 procedures of one nfs/server."""

    def __init__(self, exports, config: Nfs3Config, inodes: InodeTables, fds: FdCache,
                 verifier):
        self.config = config
        self.inodes = inodes
        self.fds = fds
        self.verifier = verifier          # nfs.writeverf: current(), data_may_be_lost()
        self.resolver = HandleResolver(exports, inodes, config.enable_ino32)
        self.exports = exports

    def set_exports(self, exports) -> None:
        """Use a (re)built ExportTable (and config); handles stay valid."""
        self.exports = exports
        self.resolver.set_exports(exports, self.config.enable_ino32)

    # --- handles -----------------------------------------------------------
    def resolve(self, req, nfs_fh) -> Target:
        """The object a handle names; NfsError BADHANDLE / STALE / ACCES otherwise."""
        return self.resolver.resolve(req, nfs_fh)

    def resolve_dir(self, req, nfs_fh, failure_field: str = "dir_attributes") -> Target:
        """resolve(), and NOTDIR (with the object's attributes) unless it is a directory."""
        target = self.resolve(req, nfs_fh)
        if target.type != IA_DIR:
            raise self.fail(N.NFS3ERR_NOTDIR, req, target, failure_field)
        return target

    def gone(self, target: Target) -> NfsError:
        """The object vanished under a fop: forget it, answer STALE."""
        target.inodes.forget(target.gfid)
        self.fds.drop(target.xl, target.gfid)
        return NfsError(N.NFS3ERR_STALE, "object removed")

    def stat(self, req, target: Target) -> Iatt:
        """Current attributes (STALE if the object is gone)."""
        if target.looked_up is not None:
            iatt, target.looked_up = target.looked_up, None
            return iatt
        try:
            iatt = target.xl.stat(req.caller, target.gfid)
        except OSError as err:
            if err.errno in _GONE:
                raise self.gone(target) from None
            raise
        return iatt

    def stat_or_none(self, req, target: Target) -> Iatt | None:
        """Attributes for a failure reply, if they can be had."""
        try:
            return target.xl.stat(req.caller, target.gfid)
        except OSError:
            return None

    def fail(self, status: int, req, target: Target, field: str, message: str = "") -> NfsError:
        """An NfsError whose resfail `field` carries the object's attributes (if obtainable)."""
        iatt = self.stat_or_none(req, target)
        if field.endswith("_wcc"):
            return NfsError(status, message, **{field: target.mapper.wcc(None, iatt)})
        return NfsError(status, message, **{field: target.mapper.post_op(iatt)})

    def refuse_bad_name(self, req, directory: Target, name: bytes, field: str) -> None:
        """ACCES for an empty name, NAMETOOLONG above NAME_MAX (before any fop).

        An empty name is ACCES as knfsd answers it (lookup_one_len refuses a
        zero length with EACCES).  It must never reach the storage as "this
        directory": LOOKUP would then hand out the directory as its own child."""
        if not name:
            raise self.fail(N.NFS3ERR_ACCES, req, directory, field, "empty name")
        if len(name) > NAME_MAX:
            raise self.fail(N.NFS3ERR_NAMETOOLONG, req, directory, field)

    def refuse_too_big(self, req, target: Target, size: int | None, field: str) -> None:
        """FBIG for a file size above FSINFO's maxfilesize, before the storage sees it.

        The storage could not even take some (>= 2**63 is no loff_t), and a
        client that honours maxfilesize never asks for more."""
        if size is not None and size > MAX_FILE_SIZE:
            raise self.fail(N.NFS3ERR_FBIG, req, target, field,
                            f"size {size} above the maximum file size {MAX_FILE_SIZE}")

    def refuse_read_only(self, req, target: Target, field: str) -> None:
        """ROFS for a modifying procedure on a read-only export (before touching anything)."""
        if target.export.read_only:
            raise self.fail(N.NFS3ERR_ROFS, req, target, field, f"{target.export.path} is read-only")

    # --- the program -------------------------------------------------------
    def program(self, allow_insecure: bool = True) -> Program:
        """The NFS v3 Program; allow_insecure False refuses calls from ports >= 1024."""
        from nfs import nfs3_dir, nfs3_entry, nfs3_io
        handlers = {**PROCS, **nfs3_io.PROCS, **nfs3_entry.PROCS, **nfs3_dir.PROCS}
        spec = N.programs["NFS_PROGRAM"]
        procs = spec.versions[3].procs
        actors, non_idempotent, inline, inline_if = {}, [], [], {}
        for number, proc in procs.items():
            short = proc.name.removeprefix("NFSPROC3_")
            actors[number] = self._actor(short, handlers[short])
            if short in NON_IDEMPOTENT:
                non_idempotent.append(number)
            if short in INLINE:
                inline.append(number)
            elif short in nfs3_io.INLINE_IF:
                inline_if[number] = nfs3_io.INLINE_IF[short]
        return Program(spec_program=spec, version=3, actors=actors, min_auth=wire.AUTH_NONE,
                       non_idempotent=non_idempotent, unprivileged=allow_insecure,
                       name="NFS3", inline=inline, inline_if=inline_if)

    def _actor(self, short: str, handler):
        fields = RESFAIL_FIELDS.get(short)
        resfail = getattr(N, f"{short}3resfail", None) if fields else None
        needs_auth_check = short != "NULL"

        def actor(req):
            if needs_auth_check:
                config = self.config      # read per call: reconfigure replaces it
                flavor = req.cred_flavor
                if (flavor == _AUTH_SYS and not config.auth_unix) or \
                        (flavor == _AUTH_NONE and not config.auth_null):
                    raise RpcAuthError(wire.AUTH_REJECTEDCRED, "flavour disabled by rpc-auth")
            try:
                return handler(self, req, req.args)
            except NfsError as err:
                status, given = err.status, err.fields
                why = err
            except OSError as err:
                status, given = nfsstat3_for_errno(err.errno), {}
                why = err
            if status == N.NFS3ERR_SERVERFAULT:
                logger.warning("%s from %s: %s", short, req.peer[0], why)
            else:
                logger.debug("%s from %s: %s (%s)", short, req.peer[0], status_name(status), why)
            if resfail is None:
                return (status, None)
            values = {f: given.get(f, NO_WCC if f.endswith("_wcc") else NO_ATTR) for f in fields}
            return (status, resfail(**values))

        actor.__name__ = f"nfs3_{short.lower()}"
        return actor


# --- the small procedures ---------------------------------------------------
def proc_null(nfs: Nfs3, req, args):
    return None


def proc_getattr(nfs: Nfs3, req, args):
    target = nfs.resolve(req, args.object)
    iatt = nfs.stat(req, target)
    return Reply(_GETATTR_OK.pack(NFS3_OK, *target.mapper.fattr3_fields(iatt)))


def proc_setattr(nfs: Nfs3, req, args):
    target = nfs.resolve(req, args.object)
    nfs.refuse_read_only(req, target, "obj_wcc")
    change = sattr3_to_setattr(args.new_attributes)
    check, obj_ctime = args.guard
    mapper = target.mapper
    if check:
        current = nfs.stat(req, target)
        now = nfstime(current.ctime)
        if (now.seconds, now.nseconds) != (obj_ctime.seconds, obj_ctime.nseconds):
            raise NfsError(N.NFS3ERR_NOT_SYNC, "ctime guard does not match",
                           obj_wcc=mapper.wcc(current, current))
    nfs.refuse_too_big(req, target, change.size, "obj_wcc")
    if setattr_is_empty(change):
        current = nfs.stat(req, target)
        return wcc_resok(mapper, current, current, N.SETATTR3resok)
    try:
        pre, post = target.xl.setattr(req.caller, target.gfid, change)
    except OSError as err:
        if err.errno in _GONE:
            raise nfs.gone(target) from None
        raise NfsError(nfsstat3_for_errno(err.errno), str(err),
                       obj_wcc=mapper.wcc(None, nfs.stat_or_none(req, target))) from None
    return wcc_resok(mapper, pre, post, N.SETATTR3resok)


def proc_lookup(nfs: Nfs3, req, args):
    directory = nfs.resolve_dir(req, args.what.dir)
    name = bytes(args.what.name)
    nfs.refuse_bad_name(req, directory, name, "dir_attributes")
    mapper = directory.mapper
    gfid = directory.gfid
    if name == b".." and gfid == directory.export.root_gfid:
        name = b"."          # '..' of the export root is the root itself: no way out
    try:
        obj, dir_iatt = directory.xl.lookup_with_parent(req.caller, gfid, name)
    except OSError as err:
        if err.errno == errno.ESTALE:
            raise nfs.gone(directory) from None
        raise NfsError(nfsstat3_for_errno(err.errno), str(err),
                       dir_attributes=mapper.post_op(nfs.stat_or_none(req, directory))) from None
    if obj is None:
        return Reply(_LOOKUP_NOENT.pack(N.NFS3ERR_NOENT, 1, *mapper.fattr3_fields(dir_iatt)))
    directory.inodes.link_child(gfid, obj.gfid, obj.type, name)
    return Reply(_LOOKUP_OK.pack(NFS3_OK, FH_SIZE, directory.child_fh(obj.gfid),
                                 1, *mapper.fattr3_fields(obj), 1, *mapper.fattr3_fields(dir_iatt)))


def proc_access(nfs: Nfs3, req, args):
    target = nfs.resolve(req, args.object)
    wanted = args.access
    iatt = nfs.stat(req, target)
    granted = 0
    if target.type == IA_LNK:
        # Symlink permissions are not used by Linux (always 0777), and the access
        # check must never follow the link: reading it is all that is allowed.
        granted = wanted & ACCESS_READ
    else:
        is_dir = target.type == IA_DIR
        per_right = [(mask, bits) for mask, bits in (
            (os.R_OK, ACCESS_READ),
            (os.W_OK, ACCESS_MODIFY | ACCESS_EXTEND | (ACCESS_DELETE if is_dir else 0)),
            (os.X_OK, ACCESS_LOOKUP if is_dir else ACCESS_EXECUTE),
        ) if wanted & bits and (is_dir or mask != os.X_OK or iatt.mode & 0o111)]
        # (a file with no execute bit at all is executable by nobody, root included)
        if len(per_right) > 1 and _may(nfs, req, target, sum(m for m, _ in per_right)):
            for _mask, bits in per_right:   # all of them at once: the usual answer, one check
                granted |= wanted & bits
            per_right = []
        for mask, bits in per_right:
            if _may(nfs, req, target, mask):
                granted |= wanted & bits
    if target.export.read_only:
        granted &= ~_ACCESS_WRITE_BITS
    return (NFS3_OK, N.ACCESS3resok(obj_attributes=target.mapper.post_op(iatt), access=granted))


def _may(nfs: Nfs3, req, target, mask: int) -> bool:
    """Whether the caller has every right in the access(2) `mask` on target."""
    try:
        target.xl.access(req.caller, target.gfid, mask)
    except OSError as err:
        if err.errno in _GONE:
            raise nfs.gone(target) from None
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return False
    return True


def proc_readlink(nfs: Nfs3, req, args):
    target = nfs.resolve(req, args.symlink)
    if target.type != IA_LNK:
        raise nfs.fail(N.NFS3ERR_INVAL, req, target, "symlink_attributes")
    try:
        data = target.xl.readlink(req.caller, target.gfid)
    except OSError as err:
        if err.errno in _GONE:
            raise nfs.gone(target) from None
        raise
    iatt = nfs.stat_or_none(req, target)
    return (NFS3_OK, N.READLINK3resok(symlink_attributes=target.mapper.post_op(iatt), data=data))


def proc_fsstat(nfs: Nfs3, req, args):
    target = nfs.resolve(req, args.fsroot)
    iatt = nfs.stat(req, target)
    fs = target.xl.statfs(req.caller, target.gfid)
    return (NFS3_OK, N.FSSTAT3resok(
        obj_attributes=target.mapper.post_op(iatt), tbytes=fs.total_bytes,
        fbytes=fs.free_bytes, abytes=fs.avail_bytes, tfiles=fs.total_files,
        ffiles=fs.free_files, afiles=fs.avail_files, invarsec=0))


def proc_fsinfo(nfs: Nfs3, req, args):
    target = nfs.resolve(req, args.fsroot)
    iatt = nfs.stat(req, target)
    config = nfs.config
    return (NFS3_OK, N.FSINFO3resok(
        obj_attributes=target.mapper.post_op(iatt),
        rtmax=config.read_size, rtpref=config.read_size, rtmult=4096,
        wtmax=config.write_size, wtpref=config.write_size, wtmult=4096,
        dtpref=config.readdir_size, maxfilesize=MAX_FILE_SIZE,
        # The storage keeps nanoseconds (utimensat), so that is the granularity.
        time_delta=N.nfstime3(seconds=0, nseconds=1),
        properties=FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME))


def proc_pathconf(nfs: Nfs3, req, args):
    target = nfs.resolve(req, args.object)
    iatt = nfs.stat(req, target)
    return (NFS3_OK, N.PATHCONF3resok(
        obj_attributes=target.mapper.post_op(iatt), linkmax=PATHCONF_LINKMAX,
        name_max=NAME_MAX, no_trunc=True, chown_restricted=False,
        case_insensitive=False, case_preserving=True))


PROCS = {
    "NULL": proc_null, "GETATTR": proc_getattr, "SETATTR": proc_setattr,
    "LOOKUP": proc_lookup, "ACCESS": proc_access, "READLINK": proc_readlink,
    "FSSTAT": proc_fsstat, "FSINFO": proc_fsinfo, "PATHCONF": proc_pathconf,
}
