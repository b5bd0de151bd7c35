"""Attributes between the graph and NFSv3: iatt -> fattr3 / wcc_data, sattr3 -> SetAttr.

Why a module of its own: every reply carries attributes, and the RFC 1813
rules about them are easy to get subtly wrong in each procedure separately:
- post_op_attr is optional; send it whenever the attributes are at hand,
  also in failures, because clients use it to keep their caches valid;
- pre_op_attr (size, mtime, ctime) is sent only when it was really taken
  just before the change (otherwise FALSE: a guessed "before" would let a
  client believe its cache is current when it is not);
- fileid is the gfid's 64-bit inode number, or with nfs.enable-ino32 a
  32-bit fold of it (old 32-bit clients and applications);
- fsid is per export so a client never mixes up fileids of two volumes.
"""
from __future__ import annotations

import struct

from glusterfsd.xlator import SET_TO_NOW, Iatt, SetAttr
from rpcsvc import xdr
from rpcsvc.program import Reply

N = xdr.load("nfs3")

# The value classes themselves: every reply builds several, so skip the codec's
# constructor indirection on this path.
_FATTR3 = N.fattr3.cls
_NFSTIME3 = N.nfstime3.cls
_SPECDATA3 = N.specdata3.cls
_WCC_ATTR = N.wcc_attr.cls
_WCC_DATA = N.wcc_data.cls

# fattr3 as struct fields (RFC 1813 §2.6: type mode nlink uid gid size used rdev
# fsid fileid atime mtime ctime): replies encoded by hand on the hot paths
# (READ, READDIRPLUS entries) pack `fattr3_fields` with it.
FATTR3_FORMAT = "IIIIIQQIIQQIIIIII"
# wcc_data with both sides present: pre_op_attr TRUE + wcc_attr (size, mtime, ctime),
# post_op_attr TRUE + fattr3; packs `wcc_fields`.
WCC_DATA_FORMAT = "IQIIII" + "I" + FATTR3_FORMAT
# A reply that is NFS3_OK and one wcc_data (SETATTR, REMOVE, RMDIR), packed by hand.
_WCC_OK = struct.Struct(">I" + WCC_DATA_FORMAT)
NO_ATTR = (False, None)
NO_WCC = _WCC_DATA(before=NO_ATTR, after=NO_ATTR)
_NS = 1_000_000_000


def ino32(ino: int) -> int:
    """A 32-bit fileid: the 64-bit inode number's two halves XORed (root stays 1).

    gnfs folds all four words of the gfid; we fold the inode number (the
    gfid's last 8 bytes) instead, because READDIR entries carry only the
    inode number and must report the same fileid as GETATTR.
    """
    folded = (ino >> 32) ^ (ino & 0xFFFFFFFF)
    return folded or 1


def fsid_for(volume_id: bytes) -> int:
    """The fsid of an export: its volume UUID folded to 64 bits."""
    return int.from_bytes(volume_id[:8], "big") ^ int.from_bytes(volume_id[8:], "big")


def nfstime(ns: int):
    seconds, nseconds = divmod(ns, _NS)
    return _NFSTIME3(seconds & 0xFFFFFFFF, nseconds)     # (seconds, nseconds)


def nfstime_ns(value) -> int:
    return value.seconds * _NS + value.nseconds


class AttrMapper:
    """Turns iatts into fattr3 and friends for one export (its fsid, ino32 choice)."""

    __slots__ = ("fsid", "enable_ino32")

    def __init__(self, volume_id: bytes, enable_ino32: bool = False):
        self.fsid = fsid_for(volume_id)
        self.enable_ino32 = enable_ino32

    def fileid(self, ino: int) -> int:
        return ino32(ino) if self.enable_ino32 else ino

    def fattr3(self, iatt: Iatt):
        # nfstime() inlined and every value class called with positional
        # arguments (in field order), about twice as fast as keywords: every
        # reply carries one or two fattr3
        atime, mtime, ctime = iatt.atime, iatt.mtime, iatt.ctime
        return _FATTR3(
            iatt.type, iatt.mode & 0o7777, iatt.nlink, iatt.uid, iatt.gid, iatt.size, iatt.used,
            _SPECDATA3(iatt.rdev_major, iatt.rdev_minor), self.fsid,
            ino32(iatt.ino) if self.enable_ino32 else iatt.ino,
            _NFSTIME3((atime // _NS) & 0xFFFFFFFF, atime % _NS),
            _NFSTIME3((mtime // _NS) & 0xFFFFFFFF, mtime % _NS),
            _NFSTIME3((ctime // _NS) & 0xFFFFFFFF, ctime % _NS))

    def fattr3_fields(self, iatt: Iatt) -> tuple:
        """fattr3's values in FATTR3_FORMAT's order (what `fattr3` encodes to)."""
        atime, mtime, ctime = iatt.atime, iatt.mtime, iatt.ctime
        return (iatt.type, iatt.mode & 0o7777, iatt.nlink, iatt.uid, iatt.gid, iatt.size,
                iatt.used, iatt.rdev_major, iatt.rdev_minor, self.fsid,
                ino32(iatt.ino) if self.enable_ino32 else iatt.ino,
                (atime // _NS) & 0xFFFFFFFF, atime % _NS, (mtime // _NS) & 0xFFFFFFFF,
                mtime % _NS, (ctime // _NS) & 0xFFFFFFFF, ctime % _NS)

    def wcc_fields(self, pre: Iatt, post: Iatt) -> tuple:
        """wcc_data's values in WCC_DATA_FORMAT's order (both attributes known)."""
        mtime, ctime = pre.mtime, pre.ctime
        return (1, pre.size, (mtime // _NS) & 0xFFFFFFFF, mtime % _NS,
                (ctime // _NS) & 0xFFFFFFFF, ctime % _NS, 1, *self.fattr3_fields(post))

    def post_op(self, iatt: Iatt | None):
        """post_op_attr: the attributes if known, else attributes_follow FALSE."""
        return NO_ATTR if iatt is None else (True, self.fattr3(iatt))

    @staticmethod
    def pre_op(iatt: Iatt | None):
        if iatt is None:
            return NO_ATTR
        return (True, _WCC_ATTR(iatt.size, nfstime(iatt.mtime), nfstime(iatt.ctime)))

    def wcc(self, pre: Iatt | None, post: Iatt | None):
        if pre is None and post is None:
            return NO_WCC
        return _WCC_DATA(self.pre_op(pre), self.post_op(post))      # (before, after)


def wcc_resok(mapper: AttrMapper, pre: Iatt | None, post: Iatt | None, resok):
    """The success reply of a procedure whose resok is one wcc_data (SETATTR3resok,
    REMOVE3resok, RMDIR3resok): packed by hand when both sides are known (REMOVE
    is one of the metadata calls users time), else through the codec's `resok`."""
    if pre is not None and post is not None:
        return Reply(_WCC_OK.pack(N.NFS3_OK, *mapper.wcc_fields(pre, post)))
    return (N.NFS3_OK, resok(mapper.wcc(pre, post)))


def sattr3_to_setattr(sattr) -> SetAttr:
    """What a client's sattr3 asks to change, as the graph's SetAttr (None = leave alone)."""
    change = SetAttr()
    set_it, value = sattr.mode
    if set_it:
        change.mode = value & 0o7777
    set_it, value = sattr.uid
    if set_it:
        change.uid = value
    set_it, value = sattr.gid
    if set_it:
        change.gid = value
    set_it, value = sattr.size
    if set_it:
        change.size = value
    change.atime = _time_change(sattr.atime)
    change.mtime = _time_change(sattr.mtime)
    return change


def _time_change(how):
    kind, value = how
    if kind == N.SET_TO_CLIENT_TIME:
        return nfstime_ns(value)
    if kind == N.SET_TO_SERVER_TIME:
        return SET_TO_NOW
    return None


def setattr_is_empty(change: SetAttr) -> bool:
    # spelled out (not a loop over the field names): CREATE asks it twice per call
    return (change.mode is None and change.uid is None and change.gid is None
            and change.size is None and change.atime is None and change.mtime is None)


def without_mode(change: SetAttr) -> SetAttr:
    """The same change minus the mode (already applied when the object was created)."""
    return SetAttr(None, change.uid, change.gid, change.size, change.atime, change.mtime)
