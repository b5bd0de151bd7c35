"""READ, WRITE and COMMIT: file data, through the fd cache.

Permissions: the cached fd was opened by the server and is anonymous
(nfs.fdcache), so storage checks each READ and WRITE against the caller on
an fstat it takes in the same call: the owner of a regular file may always
read and write it (knfsd's owner override: NFS has no open state, and a
client that created a 0444 file must still be able to write what it holds
open), anybody else needs the kernel's verdict as the caller; READ also
passes with execute permission only, as knfsd does.  The check is not made
here on the inode table's attributes: they may be stale (a chown on another
head), and the old owner would keep writing.  Storage answers EACCES, which
becomes NFS3ERR_ACCES with the file's attributes.

Stability (RFC 1813 §3.3.7 and gnfs's matrix, anchors §1.4): the reply's
`committed` is never weaker than asked.  trusted-write answers UNSTABLE
writes as FILE_SYNC without syncing them; trusted-sync writes everything
unstable, answers FILE_SYNC, and makes COMMIT a GETATTR.

Offsets and sizes (knfsd's rules, checked here so the storage only ever sees
what the kernel takes): READ at an offset past OFFSET_MAX (2**63 - 1) is
clamped there and answers OK, 0 bytes, eof -- nothing can lie beyond --
and its count is clamped so offset + count stays a valid offset; WRITE
that would end past FSINFO's maxfilesize answers NFS3ERR_FBIG; COMMIT
flushes the whole file whatever its offset and count, so any range is OK
(RFC 1813 gives COMMIT no INVAL, and knfsd stopped answering one).

READ replies are encoded by hand as [header, data, padding] so the data
read from the file is never copied into an XDR buffer (and the header in
one struct pack: READ is the hottest call; a test holds it byte-equal to
the codec's encoding; so is a WRITE's reply, the hottest after it).
"""
from __future__ import annotations

import errno
import struct

from glusterfsd.xlator import IA_DIR, IA_REG
from nfs.nfs3 import MAX_FILE_SIZE, OFFSET_MAX
from nfs.nfs3_attrs import FATTR3_FORMAT, N
from nfs.nfs3_errors import NfsError, nfsstat3_for_errno
from rpcsvc.program import Reply
from rpcsvc.xdr.gen_common import ZPAD

NFS3_OK = N.NFS3_OK
UNSTABLE, DATA_SYNC, FILE_SYNC = N.UNSTABLE, N.DATA_SYNC, N.FILE_SYNC
_GONE = (errno.ENOENT, errno.ESTALE)
# Writeback errors after which acknowledged UNSTABLE data may be lost.
_DATA_LOSS = (errno.EIO, errno.ENOSPC, errno.EDQUOT)
# READ3res up to the data: NFS3_OK, post_op_attr TRUE + fattr3, count, eof, data's length.
_READ_HEAD = struct.Struct(">II" + FATTR3_FORMAT + "III")
# WRITE3res that worked: NFS3_OK, wcc_data (pre_op_attr TRUE + size, mtime, ctime;
# post_op_attr TRUE + fattr3), count, committed, verifier.
_WRITE_REPLY = struct.Struct(">IIQIIIII" + FATTR3_FORMAT + "II8s")
_NS = 1_000_000_000
_U32 = 0xFFFFFFFF
UDP_READ_MAX = 32768   # a READ reply over UDP must fit one datagram


def _require_file(nfs, req, target, field: str) -> None:
    if target.type == IA_REG:
        return
    status = N.NFS3ERR_ISDIR if target.type == IA_DIR else N.NFS3ERR_INVAL
    raise nfs.fail(status, req, target, field, "not a regular file")


def proc_read(nfs, req, args):
    target = nfs.resolver.resolve(req, args.file)     # Nfs3.resolve, one call less
    if target.type != IA_REG:
        _require_file(nfs, req, target, "file_attributes")
    count = min(args.count, nfs.config.read_size)
    if req.transport == "udp":
        count = min(count, UDP_READ_MAX)
    offset = min(args.offset, OFFSET_MAX)
    count = min(count, OFFSET_MAX - offset)
    mapper = target.mapper
    fds = nfs.fds
    try:
        held = fds.acquire(target.xl, target.gfid, writable=False)   # not `use`: see fdcache
        try:
            data, post = target.xl.read(req.caller, held.fd, offset, count)
        finally:
            fds.release(held)
    except OSError as err:
        if err.errno in _GONE:
            raise nfs.gone(target) from None
        raise NfsError(nfsstat3_for_errno(err.errno), str(err),
                       file_attributes=mapper.post_op(nfs.stat_or_none(req, target))) from None
    if post.nlink == 0:
        raise nfs.gone(target)
    size = len(data)
    head = _READ_HEAD.pack(NFS3_OK, 1, *mapper.fattr3_fields(post), size,
                           offset + size >= post.size, size)
    if size & 3:
        return Reply(head, data, ZPAD[size & 3])
    return Reply(head, data)


_WORD = struct.Struct(">I")
_FH_MAX = 64          # NFS3_FHSIZE


def is_unstable_write(record, offset: int) -> bool:
    """Whether a WRITE call's undecoded arguments ask for an UNSTABLE write.

    WRITE3args start with the handle (a length word and up to 64 bytes,
    padded to 4), then offset (8), count (4) and stable_how (4).  An
    UNSTABLE write only copies into the page cache, so it runs on the event
    thread like a READ (rpcsvc.program.Program's inline_if); anything this
    cannot read (a short or malformed call) goes to the stage, where the
    decoder answers it."""
    try:
        (fh_len,) = _WORD.unpack_from(record, offset)
        if fh_len > _FH_MAX:
            return False
        (stable,) = _WORD.unpack_from(record, offset + 4 + ((fh_len + 3) & ~3) + 12)
    except struct.error:
        return False
    return stable == UNSTABLE


def _stability(export, asked: int) -> tuple[int, int]:
    """(how to write, what to answer) for a WRITE asking `asked`."""
    if export.trusted_sync:
        return UNSTABLE, FILE_SYNC
    if export.trusted_write and asked == UNSTABLE:
        return UNSTABLE, FILE_SYNC
    return asked, asked


def proc_write(nfs, req, args):
    target = nfs.resolver.resolve(req, args.file)     # Nfs3.resolve, one call less
    if target.export.read_only:
        nfs.refuse_read_only(req, target, "file_wcc")
    if target.type != IA_REG:
        _require_file(nfs, req, target, "file_wcc")
    data = args.data
    count = args.count
    if len(data) < count:
        raise nfs.fail(N.NFS3ERR_INVAL, req, target, "file_wcc",
                       f"count {count} but {len(data)} bytes of data")
    if args.stable not in (UNSTABLE, DATA_SYNC, FILE_SYNC):
        raise nfs.fail(N.NFS3ERR_INVAL, req, target, "file_wcc", f"stable_how {args.stable}")
    count = min(count, nfs.config.write_size)   # a short write: the client sends the rest
    if count != len(data):
        data = memoryview(data)[:count]
    if args.offset + count > MAX_FILE_SIZE:
        raise nfs.fail(N.NFS3ERR_FBIG, req, target, "file_wcc",
                       f"{count} bytes at {args.offset} end past {MAX_FILE_SIZE}")
    export = target.export
    if export.trusted_sync or export.trusted_write:
        how, committed = _stability(export, args.stable)
    else:
        how = committed = args.stable           # what _stability answers then
    fds = nfs.fds
    try:
        held = fds.acquire(target.xl, target.gfid, writable=True)
        try:
            written, pre, post = target.xl.write(req.caller, held.fd, args.offset, data, how)
        finally:
            fds.release(held)
    except OSError as err:
        raise _sync_failed(nfs, req, target, err, data_at_risk=how != UNSTABLE) from None
    if post.nlink == 0:
        _still_there(nfs, target, post)         # raises STALE
    mtime, ctime = pre.mtime, pre.ctime
    return Reply(_WRITE_REPLY.pack(
        NFS3_OK, 1, pre.size, (mtime // _NS) & _U32, mtime % _NS, (ctime // _NS) & _U32,
        ctime % _NS, 1, *target.mapper.fattr3_fields(post), written, committed,
        nfs.verifier.current()))


def proc_commit(nfs, req, args):
    target = nfs.resolve(req, args.file)
    _require_file(nfs, req, target, "file_wcc")
    mapper = target.mapper
    if target.export.trusted_sync:
        iatt = nfs.stat(req, target)
        return (NFS3_OK, N.COMMIT3resok(file_wcc=mapper.wcc(iatt, iatt),
                                        verf=nfs.verifier.current()))
    try:
        with nfs.fds.use(target.xl, target.gfid, writable=False) as fd:
            pre, post = target.xl.fsync(req.caller, fd, False)
    except OSError as err:
        raise _sync_failed(nfs, req, target, err, data_at_risk=True) from None
    _still_there(nfs, target, post)
    return (NFS3_OK, N.COMMIT3resok(file_wcc=mapper.wcc(pre, post),
                                    verf=nfs.verifier.current()))


def _sync_failed(nfs, req, target, err: OSError, data_at_risk: bool) -> NfsError:
    """The error of a failed WRITE or COMMIT.  A write-back error (EIO, ENOSPC,
    EDQUOT) from a sync means unstable data may be gone: the verifier changes,
    so clients resend what they have not seen committed."""
    if err.errno in _GONE:
        return nfs.gone(target)
    if data_at_risk and err.errno in _DATA_LOSS:
        nfs.verifier.data_may_be_lost()
    return NfsError(nfsstat3_for_errno(err.errno), str(err),
                    file_wcc=target.mapper.wcc(None, nfs.stat_or_none(req, target)))


def _still_there(nfs, target, post) -> None:
    """After a WRITE or COMMIT worked: STALE if the file was unlinked meanwhile."""
    if post.nlink == 0:
        raise nfs.gone(target)


PROCS = {"READ": proc_read, "WRITE": proc_write, "COMMIT": proc_commit}
# Run on the event thread when their arguments say they are quick (see nfs.nfs3.INLINE).
INLINE_IF = {"WRITE": is_unstable_write}
