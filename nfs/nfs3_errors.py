"""errno -> nfsstat3, and the exception that carries an NFS status out of a procedure.

The storage answers in errnos (fops raise OSError); NFS clients understand
only nfsstat3.  The map is gnfs's `nfs3_errno_to_nfsstat3` (anchors §1.5),
quirks included (EBADF -> BADTYPE, ENOTCONN -> IO), because clients in the
field were tested against those answers.  ENOENT/ESTALE on the object a
handle names are turned into STALE by the resolver, not here: only the caller
knows whether ENOENT meant "no such name" or "the handle's object is gone".
"""
from __future__ import annotations

import errno

# nfsstat3 values (RFC 1813 §2.6); kept here as numbers so this module does
# not need the codec, and checked against it by the tests.
NFS3_OK = 0
NFS3ERR_PERM = 1
NFS3ERR_NOENT = 2
NFS3ERR_IO = 5
NFS3ERR_NXIO = 6
NFS3ERR_ACCES = 13
NFS3ERR_EXIST = 17
NFS3ERR_XDEV = 18
NFS3ERR_NODEV = 19
NFS3ERR_NOTDIR = 20
NFS3ERR_ISDIR = 21
NFS3ERR_INVAL = 22
NFS3ERR_FBIG = 27
NFS3ERR_NOSPC = 28
NFS3ERR_ROFS = 30
NFS3ERR_MLINK = 31
NFS3ERR_NAMETOOLONG = 63
NFS3ERR_NOTEMPTY = 66
NFS3ERR_DQUOT = 69
NFS3ERR_STALE = 70
NFS3ERR_REMOTE = 71
NFS3ERR_BADHANDLE = 10001
NFS3ERR_NOT_SYNC = 10002
NFS3ERR_BAD_COOKIE = 10003
NFS3ERR_NOTSUPP = 10004
NFS3ERR_TOOSMALL = 10005
NFS3ERR_SERVERFAULT = 10006
NFS3ERR_BADTYPE = 10007
NFS3ERR_JUKEBOX = 10008

ERRNO_TO_NFSSTAT3 = {
    0: NFS3_OK,
    errno.EPERM: NFS3ERR_PERM,
    errno.ENOENT: NFS3ERR_NOENT,
    errno.EACCES: NFS3ERR_ACCES,
    errno.EEXIST: NFS3ERR_EXIST,
    errno.EXDEV: NFS3ERR_XDEV,
    errno.ENODEV: NFS3ERR_NODEV,
    errno.EIO: NFS3ERR_IO,
    errno.ENXIO: NFS3ERR_NXIO,
    errno.ENOTDIR: NFS3ERR_NOTDIR,
    errno.EISDIR: NFS3ERR_ISDIR,
    errno.EINVAL: NFS3ERR_INVAL,
    errno.ENOSPC: NFS3ERR_NOSPC,
    errno.EROFS: NFS3ERR_ROFS,
    errno.EFBIG: NFS3ERR_FBIG,
    errno.EMLINK: NFS3ERR_MLINK,
    errno.ENAMETOOLONG: NFS3ERR_NAMETOOLONG,
    errno.ENOTEMPTY: NFS3ERR_NOTEMPTY,
    errno.EFAULT: NFS3ERR_SERVERFAULT,
    errno.ENOTSUP: NFS3ERR_NOTSUPP,
    errno.ENOSYS: NFS3ERR_NOTSUPP,
    errno.EBADF: NFS3ERR_BADTYPE,
    errno.ESTALE: NFS3ERR_STALE,
    errno.ENOTCONN: NFS3ERR_IO,
    errno.EDQUOT: NFS3ERR_DQUOT,
}

NAMES = {value: name for name, value in globals().items()
         if name.startswith("NFS3") and isinstance(value, int)}


def nfsstat3_for_errno(code: int | None) -> int:
    """The nfsstat3 for an errno; unknown or missing errnos are SERVERFAULT (as gnfs)."""
    if not code:
        return NFS3ERR_SERVERFAULT
    return ERRNO_TO_NFSSTAT3.get(code, NFS3ERR_SERVERFAULT)


def status_name(status: int) -> str:
    return NAMES.get(status, str(status))


class NfsError(Exception):
    """A procedure's failure with the nfsstat3 to answer.

    Keyword arguments are fields of the procedure's resfail (`obj_wcc=...`,
    `dir_attributes=...`), so a failing procedure hands over the attributes it
    has and the reply carries them (RFC 1813: wcc_data on failure too).
    """

    def __init__(self, status: int, message: str = "", **fields):
        super().__init__(message or status_name(status))
        self.status = status
        self.fields = fields

    @classmethod
    def from_oserror(cls, err: OSError) -> "NfsError":
        return cls(nfsstat3_for_errno(err.errno), str(err))
