"""Procedures that make or remove names: CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK.

All of them answer with the directory's wcc_data, on success and failure:
on success the storage's own before/after attributes of the directory
(taken around the change), on failure no "before" (we did not take one
atomically) and the directory's current attributes.

CREATE modes (RFC 1813 §3.3.8):
- GUARDED: EXIST if the name exists;
- UNCHECKED: an existing regular file is used as is, except that a size of
  0 in the attributes truncates it (knfsd's rule; other attributes of an
  existing file are left alone);
- EXCLUSIVE: the 8-byte verifier is kept in stable storage, in the new
  file's atime (first 4 bytes, seconds) and mtime (last 4 bytes, seconds), as
  gnfs does.  A retransmission finds the file with the same times and gets
  OK with its handle; any other verifier gets EXIST.  The client then sends
  SETATTR with the real mode and times.
"""
from __future__ import annotations

import errno
import os
import struct

from glusterfsd.xlator import IA_DIR, IA_REG, IA_TO_S_IFMT, SetAttr
from nfs.nfs3_attrs import (FATTR3_FORMAT, WCC_DATA_FORMAT, N, sattr3_to_setattr, wcc_resok,
                            without_mode)
from nfs.nfs3_errors import NfsError, nfsstat3_for_errno
from rpcsvc.xdr.gen_common import ZPAD
from rpcsvc.program import Reply

NFS3_OK = N.NFS3_OK
NAME_MAX = 255
_NS = 1_000_000_000
DEFAULT_FILE_MODE = 0o644
DEFAULT_EXCLUSIVE_MODE = 0o600   # until the client's SETATTR that follows an EXCLUSIVE create
DEFAULT_DIR_MODE = 0o755
_GONE = (errno.ENOENT, errno.ESTALE)
_VERF = struct.Struct(">II")
# CREATE3resok (MKDIR's, SYMLINK's, MKNOD's are the same) packed by hand: NFS3_OK,
# post_op_fh3 TRUE + the handle's length, the handle and its padding, post_op_attr
# TRUE + fattr3 of the new object, the directory's wcc_data with both sides.
_NEW_HEAD = struct.Struct(">III")
_NEW_TAIL = struct.Struct(">I" + FATTR3_FORMAT + WCC_DATA_FORMAT)


def _dir_failure(nfs, req, directory, err: OSError, field: str = "dir_wcc") -> NfsError:
    """The NfsError for a failed entry fop: STALE if the directory itself is gone."""
    if err.errno == errno.ESTALE:
        return nfs.gone(directory)
    return nfs.fail(nfsstat3_for_errno(err.errno), req, directory, field, str(err))


def _where(nfs, req, diropargs, field: str = "dir_wcc"):
    """Resolve diropargs3 to (directory Target, name), refusing what cannot be a new name."""
    directory = nfs.resolve_dir(req, diropargs.dir, field)
    name = bytes(diropargs.name)
    nfs.refuse_bad_name(req, directory, name, field)
    return directory, name


def _created(nfs, req, directory, name, iatt, pre, post, resok):
    directory.inodes.link(iatt, directory.gfid, name)
    mapper = directory.mapper
    fh = directory.child_fh(iatt.gfid)
    if pre is not None and post is not None:      # always, but for a retransmitted EXCLUSIVE
        return Reply(_NEW_HEAD.pack(NFS3_OK, 1, len(fh)) + fh + ZPAD[len(fh) & 3]
                     + _NEW_TAIL.pack(1, *mapper.fattr3_fields(iatt),
                                      *mapper.wcc_fields(pre, post)))
    return (NFS3_OK, resok(obj=(True, N.nfs_fh3(data=fh)), obj_attributes=mapper.post_op(iatt),
                           dir_wcc=mapper.wcc(pre, post)))


def _apply_rest(req, xl, iatt, change: SetAttr):
    """Attributes beyond the mode (owner, size, times) of a new object; returns its attributes.
    The usual CREATE/MKDIR asks only for a mode (applied when the object was
    made): tested field by field, before building the SetAttr without it."""
    if (change.uid is None and change.gid is None and change.size is None
            and change.atime is None and change.mtime is None):
        return iatt
    _pre, post = xl.setattr(req.caller, iatt.gfid, without_mode(change))
    return post


# --- CREATE -------------------------------------------------------------------
def proc_create(nfs, req, args):
    directory, name = _where(nfs, req, args.where)
    nfs.refuse_read_only(req, directory, "dir_wcc")
    mode, how = args.how
    if mode == N.EXCLUSIVE:
        return _create_exclusive(nfs, req, directory, name, bytes(how))
    change = sattr3_to_setattr(how)
    nfs.refuse_too_big(req, directory, change.size, "dir_wcc")
    perm = DEFAULT_FILE_MODE if change.mode is None else change.mode
    xl = directory.xl
    flags = os.O_CREAT | os.O_RDWR | (os.O_EXCL if mode == N.GUARDED else 0)
    try:
        try:
            fd, iatt, pre, post = xl.create(req.caller, directory.gfid, name,
                                            flags | os.O_EXCL, perm)
        except FileExistsError:
            if mode == N.GUARDED:
                raise
            fd, iatt, pre, post = xl.create(req.caller, directory.gfid, name, flags, perm)
            nfs.fds.adopt(xl, iatt.gfid, fd, writable=True)
            if change.size == 0 and iatt.size != 0:   # UNCHECKED on an existing file
                _pre, iatt = xl.setattr(req.caller, iatt.gfid, SetAttr(size=0))
        else:
            nfs.fds.adopt(xl, iatt.gfid, fd, writable=True)
            if change.size == 0:
                change.size = None            # a new file is empty already
            iatt = _apply_rest(req, xl, iatt, change)
    except OSError as err:
        raise _dir_failure(nfs, req, directory, err) from None
    return _created(nfs, req, directory, name, iatt, pre, post, N.CREATE3resok)


def _create_exclusive(nfs, req, directory, name: bytes, verf: bytes):
    xl = directory.xl
    atime_s, mtime_s = _VERF.unpack(verf)
    try:
        try:
            fd, iatt, pre, post = xl.create(req.caller, directory.gfid, name,
                                            os.O_CREAT | os.O_EXCL | os.O_RDWR,
                                            DEFAULT_EXCLUSIVE_MODE)
        except FileExistsError:
            existing = xl.lookup(req.caller, directory.gfid, name)
            if (existing.type == IA_REG and existing.atime == atime_s * _NS
                    and existing.mtime == mtime_s * _NS):
                # The retransmission of a create that succeeded: same answer.
                dir_now = nfs.stat_or_none(req, directory)
                return _created(nfs, req, directory, name, existing, None, dir_now,
                                N.CREATE3resok)
            raise
        nfs.fds.adopt(xl, iatt.gfid, fd, writable=True)
        _pre, iatt = xl.setattr(req.caller, iatt.gfid,
                                SetAttr(atime=atime_s * _NS, mtime=mtime_s * _NS))
    except OSError as err:
        raise _dir_failure(nfs, req, directory, err) from None
    return _created(nfs, req, directory, name, iatt, pre, post, N.CREATE3resok)


# --- MKDIR, SYMLINK, MKNOD ------------------------------------------------------
def proc_mkdir(nfs, req, args):
    directory, name = _where(nfs, req, args.where)
    nfs.refuse_read_only(req, directory, "dir_wcc")
    change = sattr3_to_setattr(args.attributes)
    perm = DEFAULT_DIR_MODE if change.mode is None else change.mode
    xl = directory.xl
    try:
        iatt, pre, post = xl.mkdir(req.caller, directory.gfid, name, perm)
        iatt = _apply_rest(req, xl, iatt, change)
    except OSError as err:
        raise _dir_failure(nfs, req, directory, err) from None
    return _created(nfs, req, directory, name, iatt, pre, post, N.MKDIR3resok)


def proc_symlink(nfs, req, args):
    directory, name = _where(nfs, req, args.where)
    nfs.refuse_read_only(req, directory, "dir_wcc")
    change = sattr3_to_setattr(args.symlink.symlink_attributes)
    target = bytes(args.symlink.symlink_data)
    xl = directory.xl
    try:
        iatt, pre, post = xl.symlink(req.caller, directory.gfid, name, target, 0o777)
        rest = without_mode(change)
        if rest.uid is not None or rest.gid is not None:
            _pre, iatt = xl.setattr(req.caller, iatt.gfid, SetAttr(uid=rest.uid, gid=rest.gid))
    except OSError as err:
        raise _dir_failure(nfs, req, directory, err) from None
    return _created(nfs, req, directory, name, iatt, pre, post, N.SYMLINK3resok)


def proc_mknod(nfs, req, args):
    directory, name = _where(nfs, req, args.where)
    nfs.refuse_read_only(req, directory, "dir_wcc")
    kind, what = args.what
    if kind in (N.NF3CHR, N.NF3BLK):
        change = sattr3_to_setattr(what.dev_attributes)
        rdev = os.makedev(what.spec.specdata1, what.spec.specdata2)
    elif kind in (N.NF3SOCK, N.NF3FIFO):
        change = sattr3_to_setattr(what)
        rdev = 0
    else:
        raise nfs.fail(N.NFS3ERR_BADTYPE, req, directory, "dir_wcc",
                       f"MKNOD makes devices, sockets and fifos, not type {kind}")
    perm = 0o644 if change.mode is None else change.mode
    xl = directory.xl
    try:
        iatt, pre, post = xl.mknod(req.caller, directory.gfid, name, IA_TO_S_IFMT[kind] | perm, rdev)
        iatt = _apply_rest(req, xl, iatt, change)
    except OSError as err:
        raise _dir_failure(nfs, req, directory, err) from None
    return _created(nfs, req, directory, name, iatt, pre, post, N.MKNOD3resok)


# --- REMOVE, RMDIR ------------------------------------------------------------------
def _forget_removed(nfs, directory, name: bytes, victim) -> None:
    """After a name went away: drop what we cached for an object that is now gone."""
    directory.inodes.unlink(directory.gfid, name)
    if victim is None:
        return
    if victim.type == IA_DIR or victim.nlink <= 1:
        directory.inodes.forget(victim.gfid)
        nfs.fds.drop(directory.xl, victim.gfid)


def _peek(req, directory, name: bytes):
    """What a name holds now (None if nothing or unknowable); used to clean caches."""
    if name in (b".", b".."):
        return None
    try:
        return directory.xl.lookup(req.caller, directory.gfid, name)
    except OSError:
        return None


class _KnownFile:
    """A non-directory the inode table knows a name for; its link count is not
    known, so it counts as the last one (dropping the caches of a file that has
    other names only costs a reopen)."""

    __slots__ = ("gfid", "type", "nlink")

    def __init__(self, gfid: bytes, type_: int):
        self.gfid, self.type, self.nlink = gfid, type_, 1


def _remove_victim(req, directory, name: bytes):
    """What REMOVE is about to take away, for cleaning caches after.

    Clients look a name up before they remove it, so the inode table usually
    knows which object it is: no storage lookup then (it was a full resolution
    per REMOVE).  A name the table does not know is looked up (_peek).  If the
    name was meanwhile given to another object behind the table's back (another
    worker's RENAME), that object's descriptors here are closed by the fd
    cache's LRU instead; the storage forgets its own when the file is gone."""
    gfid = directory.inodes.child(directory.gfid, name)
    inode = directory.inodes.get(gfid) if gfid is not None else None
    if inode is not None and inode.type != IA_DIR:
        return _KnownFile(gfid, inode.type)
    return _peek(req, directory, name)


def proc_remove(nfs, req, args):
    directory, name = _where(nfs, req, args.object)
    nfs.refuse_read_only(req, directory, "dir_wcc")
    victim = _remove_victim(req, directory, name)
    try:
        pre, post = directory.xl.unlink(req.caller, directory.gfid, name)
    except OSError as err:
        raise _dir_failure(nfs, req, directory, err) from None
    _forget_removed(nfs, directory, name, victim)
    return wcc_resok(directory.mapper, pre, post, N.REMOVE3resok)


def proc_rmdir(nfs, req, args):
    directory, name = _where(nfs, req, args.object)
    nfs.refuse_read_only(req, directory, "dir_wcc")
    victim = _peek(req, directory, name)
    if victim is not None and victim.gfid == directory.export.root_gfid:
        raise nfs.fail(N.NFS3ERR_ACCES, req, directory, "dir_wcc", "the export's root")
    try:
        pre, post = directory.xl.rmdir(req.caller, directory.gfid, name)
    except OSError as err:
        raise _dir_failure(nfs, req, directory, err) from None
    _forget_removed(nfs, directory, name, victim)
    return wcc_resok(directory.mapper, pre, post, N.RMDIR3resok)


# --- RENAME, LINK ---------------------------------------------------------------------
def _wcc_now(nfs, req, target):
    return target.mapper.wcc(None, nfs.stat_or_none(req, target))


def proc_rename(nfs, req, args):
    src = args.from_
    dst = args.to
    fromdir = nfs.resolve(req, src.dir)
    todir = nfs.resolve(req, dst.dir)

    def failure(status: int, why: str = "") -> NfsError:
        return NfsError(status, why, fromdir_wcc=_wcc_now(nfs, req, fromdir),
                        todir_wcc=_wcc_now(nfs, req, todir))

    if fromdir.type != IA_DIR or todir.type != IA_DIR:
        raise failure(N.NFS3ERR_NOTDIR)
    if fromdir.export.volume_id != todir.export.volume_id:
        raise failure(N.NFS3ERR_XDEV, "rename across exports")
    if fromdir.export.read_only:
        raise failure(N.NFS3ERR_ROFS)
    oldname, newname = bytes(src.name), bytes(dst.name)
    if not oldname or not newname:
        raise failure(N.NFS3ERR_ACCES, "empty name")        # as knfsd (Nfs3.refuse_bad_name)
    if len(oldname) > NAME_MAX or len(newname) > NAME_MAX:
        raise failure(N.NFS3ERR_NAMETOOLONG)
    moved = _peek(req, fromdir, oldname)
    replaced = _peek(req, todir, newname)
    roots = (fromdir.export.root_gfid, todir.export.root_gfid)
    if moved is not None and moved.gfid in roots:
        raise failure(N.NFS3ERR_ACCES, "the export's root cannot be renamed")
    try:
        preold, postold, prenew, postnew = fromdir.xl.rename(
            req.caller, fromdir.gfid, oldname, todir.gfid, newname)
    except OSError as err:
        if err.errno == errno.ESTALE:
            raise failure(N.NFS3ERR_STALE, str(err)) from None
        raise failure(nfsstat3_for_errno(err.errno), str(err)) from None
    fromdir.inodes.rename(fromdir.gfid, oldname, todir.gfid, newname,
                      moved.gfid if moved is not None else None)
    if replaced is not None and (moved is None or replaced.gfid != moved.gfid):
        if replaced.type == IA_DIR or replaced.nlink <= 1:
            todir.inodes.forget(replaced.gfid)
            nfs.fds.drop(todir.xl, replaced.gfid)
    return (NFS3_OK, N.RENAME3resok(fromdir_wcc=fromdir.mapper.wcc(preold, postold),
                                    todir_wcc=todir.mapper.wcc(prenew, postnew)))


def proc_link(nfs, req, args):
    target = nfs.resolve(req, args.file)
    linkdir = nfs.resolve(req, args.link.dir)
    mapper = target.mapper

    def failure(status: int, why: str = "") -> NfsError:
        return NfsError(status, why, file_attributes=mapper.post_op(nfs.stat_or_none(req, target)),
                        linkdir_wcc=_wcc_now(nfs, req, linkdir))

    if linkdir.type != IA_DIR:
        raise failure(N.NFS3ERR_NOTDIR)
    if target.export.volume_id != linkdir.export.volume_id:
        raise failure(N.NFS3ERR_XDEV, "link across exports")
    if linkdir.export.read_only:
        raise failure(N.NFS3ERR_ROFS)
    name = bytes(args.link.name)
    if not name:
        raise failure(N.NFS3ERR_ACCES, "empty name")        # as knfsd (Nfs3.refuse_bad_name)
    if len(name) > NAME_MAX:
        raise failure(N.NFS3ERR_NAMETOOLONG)
    try:
        iatt, pre, post = target.xl.link(req.caller, target.gfid, linkdir.gfid, name)
    except OSError as err:
        if err.errno in _GONE and nfs.stat_or_none(req, target) is None:
            raise nfs.gone(target) from None
        raise failure(nfsstat3_for_errno(err.errno), str(err)) from None
    linkdir.inodes.link(iatt, linkdir.gfid, name)
    return (NFS3_OK, N.LINK3resok(file_attributes=mapper.post_op(iatt),
                                  linkdir_wcc=linkdir.mapper.wcc(pre, post)))


PROCS = {
    "CREATE": proc_create, "MKDIR": proc_mkdir, "SYMLINK": proc_symlink, "MKNOD": proc_mknod,
    "REMOVE": proc_remove, "RMDIR": proc_rmdir, "RENAME": proc_rename, "LINK": proc_link,
}
