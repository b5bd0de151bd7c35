"""READDIR and READDIRPLUS: listings that resume at any cookie.

Cookies are the storage's entry cookies (the kernel's d_off for
storage/posix), valid for any open of the directory and across restarts, so
the server keeps no per-client listing state.

Cookie verifier (our choice, documented): a constant per directory, derived
from its gfid (the same on every server head, which derive it alike).
Because the cookies stay valid while the directory changes, the verifier
never has to change, so a client that kept it (Linux keeps one per
directory, VMware sends one after EOF) is never refused.  A listing resumed
with cookie != 0 is accepted with that verifier or with an all-zero one:
the Linux client zeroes its verifier when it drops a directory's cached
attributes (nfs_zap_caches) yet keeps resuming at its cookies, and since
every cookie here is valid (a storage d_off) refusing it would only force
the client to restart the listing -- gnfs's BAD_COOKIE for verifier 0 made
`ls` of a large directory fail with EBADCOOKIE/EIO after attribute
changes.  A non-zero verifier that is not this directory's still gets
NFS3ERR_BAD_COOKIE: the client mixed up its state (another directory's
verifier, a forged one), and restarting the listing is the safe answer.
(knfsd accepts any verifier; we keep this one check because it costs
nothing and can only ever fire on a confused client.)

Sizes (RFC 1813 §3.3.16-17), counted exactly as the XDR encoding:
- READDIR `count` bounds the whole READDIR3resok;
- READDIRPLUS `maxcount` bounds the whole READDIRPLUS3resok, `dircount`
  only the directory part of the entries (fileid, name, cookie).  dircount
  never stops the first entry (knfsd ignores dircount entirely; an entry
  that cannot be returned at all would make no progress);
- if not even one entry fits in count/maxcount: NFS3ERR_TOOSMALL;
- both are also capped by nfs3.readdir-size, and by 32 KiB over UDP (the
  server may send less than asked);
- eof is set only when the storage reported the end and every entry it
  gave was sent.

READDIRPLUS replies are encoded by hand (`plus_entry`, `plus_reply`), byte
for byte what the XDR codec makes of entryplus3 objects: an `ls -l` of
50 000 entries is 50 000 entries, and building five value objects per entry
for the codec to take apart again cost more than listing them.  For the same
reason an entry the storage gives as a `StatDirent` (nearly all of them) is
packed straight from its lstat, without the Iatt in between (see
glusterfsd.stat_dirent; tests/nfs/test_nfs3_readdirplus_wire.py holds both
packings to the codec's bytes and GETATTR's attributes).
"""
from __future__ import annotations

import errno
import hashlib
import struct
from contextlib import closing
from os import major as os_major, minor as os_minor

from glusterfsd import after_reply
from glusterfsd.stat_dirent import StatDirent
from glusterfsd.xlator import IA_DIR, gfid_to_ino
from nfs.nfs3_attrs import FATTR3_FORMAT, N, ino32
from nfs.nfs3_errors import NfsError, nfsstat3_for_errno
from rpcsvc.program import Reply

NFS3_OK = N.NFS3_OK
# The value classes themselves (skipping the codec's constructor indirection):
# one or two are built per listed entry.
_ENTRY3 = N.entry3.cls
# status + post_op_attr(dir, with attributes) + cookieverf + end-of-list + eof
FIXED_REPLY = 4 + (4 + 84) + 8 + 4 + 4
ENTRY_FIXED = 4 + 8 + 4 + 8          # list marker, fileid, name length, cookie
PLUS_ATTRS = 4 + 84                  # post_op_attr with attributes
PLUS_HANDLE = 4 + 4 + 52             # post_op_fh3 with a 52-byte handle
PLUS_NOTHING = 4 + 4                 # both FALSE
FULL_ENTRY_FIXED = ENTRY_FIXED + PLUS_ATTRS + PLUS_HANDLE
DIR_INFO_FIXED = 8 + 4 + 8           # what dircount counts per entry
MAX_BATCHES = 64                     # storage calls per reply, a bound on one call's work
UDP_REPLY_MAX = 32768
ZERO_VERIFIER = bytes(8)             # what a client sends when it has no verifier

# The XDR of one entryplus3 in a list: value-follows TRUE, fileid, name (length,
# bytes, padding), cookie; then name_attributes (TRUE + fattr3, or FALSE) and
# name_handle (TRUE + length 52 + the handle, or FALSE).
_NS = 1_000_000_000
_U32 = 0xFFFFFFFF
_FATTR3 = FATTR3_FORMAT              # type mode nlink uid gid size used rdev fsid fileid a/m/ctime
_HANDLE = "II20s16s16s"              # TRUE, 52, the parent handle's exportid, gfid, mountid
_FULL_TAIL = "I" + _FATTR3 + _HANDLE
_FALSE = b"\0\0\0\0"
_FULL: dict = {}    # name length -> Struct(...).pack of an entry with attributes and handle
_HEAD: dict = {}    # name length -> Struct(...).pack of an entry's directory part
_FATTR3_FOLLOWS = struct.Struct(">I" + _FATTR3)
# READDIRPLUS3res up to its entries: status, post_op_attr (TRUE + fattr3, or FALSE), cookieverf
_PLUS_HEAD = struct.Struct(">II" + _FATTR3 + "8s")
_PLUS_HEAD_NO_ATTRS = struct.Struct(">II8s")
_EOF = struct.pack(">II", 0, 1)         # after the entries: end of list, eof
_NOT_EOF = struct.pack(">II", 0, 0)
_HANDLE_FOLLOWS = struct.Struct(">" + _HANDLE)


def cookie_verifier(gfid: bytes) -> bytes:
    return hashlib.blake2b(gfid, digest_size=8, person=b"nfs3-cvf").digest()


def _reply_limit(nfs, req) -> int:
    """The largest listing reply: nfs3.readdir-size, and one datagram over UDP."""
    limit = nfs.config.readdir_size
    return min(limit, UDP_REPLY_MAX) if req.transport == "udp" else limit


def _padded(name: bytes) -> int:
    return (len(name) + 3) & ~3


def _packer(cache: dict, length: int, tail: str):
    """The pack of an entry whose name has `length` bytes ('s' pads it with NULs),
    kept bound: fetching `.pack` anew would allocate a method object per entry."""
    made = cache.get(length)
    if made is None:
        made = cache[length] = struct.Struct(f">IQI{(length + 3) & ~3}sQ{tail}").pack
    return made


def plus_entry(mapper, fh: bytes, fileid: int, name: bytes, cookie: int, iatt,
               gfid: bytes | None) -> bytes:
    """One entryplus3 as the codec encodes it in a list (see the module doc);
    iatt None or gfid None: that part is FALSE.  `fh` is the directory's
    handle: a child's handle is it with the child's gfid (fh.with_gfid).
    (proc_readdirplus inlines the common case, attributes and handle.)"""
    n = len(name)
    if iatt is None or gfid is None:
        parts = [_packer(_HEAD, n, "")(1, fileid, n, name, cookie)]
        parts.append(_FALSE if iatt is None else
                     _FATTR3_FOLLOWS.pack(1, *mapper.fattr3_fields(iatt)))
        parts.append(_FALSE if gfid is None else
                     _HANDLE_FOLLOWS.pack(1, 52, fh[:20], gfid, fh[36:52]))
        return b"".join(parts)
    pack = _FULL.get(n) or _packer(_FULL, n, _FULL_TAIL)
    return pack(1, fileid, n, name, cookie, 1, *mapper.fattr3_fields(iatt),
                1, 52, fh[:20], gfid, fh[36:52])


def plus_reply(mapper, dir_iatt, verf: bytes, entries: list[bytes], eof: bool) -> Reply:
    """READDIRPLUS3res (NFS3_OK) around entries made by `plus_entry`, packed by
    hand as the codec encodes it (one per call of a listing: building the
    fattr3 value objects for the codec cost more than the packing): status,
    dir_attributes (post_op_attr of `dir_iatt`, None: FALSE), cookieverf, the
    entries, the end-of-list FALSE and eof."""
    if dir_iatt is None:
        head = _PLUS_HEAD_NO_ATTRS.pack(NFS3_OK, 0, verf)
    else:
        head = _PLUS_HEAD.pack(NFS3_OK, 1, *mapper.fattr3_fields(dir_iatt), verf)
    return Reply(head, b"".join(entries), _EOF if eof else _NOT_EOF)


def _open_listing(nfs, req, args):
    directory = nfs.resolve(req, args.dir)
    if directory.type != IA_DIR:
        raise nfs.fail(N.NFS3ERR_NOTDIR, req, directory, "dir_attributes")
    verf = cookie_verifier(directory.gfid)
    given = bytes(args.cookieverf)
    if args.cookie != 0 and given != verf and given != ZERO_VERIFIER:
        raise nfs.fail(N.NFS3ERR_BAD_COOKIE, req, directory, "dir_attributes",
                       "cookie verifier does not match")
    return directory, verf


def _batches(nfs, req, directory, cookie: int, budget, plus: bool):
    """Yield (entries, eof) from the storage, resuming after the last entry of each batch.

    `budget()` is the room left in the reply: each batch asks the storage for
    only that much, so the storage does not build entries (a stat and gfid
    each, for READDIRPLUS) that the reply then has no room for."""
    xl = directory.xl
    try:
        fd = xl.opendir(req.caller, directory.gfid)
    except OSError as err:
        raise _listing_error(nfs, req, directory, err) from None
    fetch = xl.readdirp if plus else xl.readdir
    try:
        for _ in range(MAX_BATCHES):
            try:
                entries, eof = fetch(req.caller, fd, cookie, budget())
            except OSError as err:
                raise _listing_error(nfs, req, directory, err) from None
            yield entries, eof
            if eof or not entries:
                return
            cookie = entries[-1].cookie
    finally:
        xl.release(fd)


def _listing_error(nfs, req, directory, err: OSError) -> NfsError:
    if err.errno in (errno.ENOENT, errno.ESTALE):
        return nfs.gone(directory)
    status = N.NFS3ERR_BAD_COOKIE if err.errno == errno.EINVAL else nfsstat3_for_errno(err.errno)
    return nfs.fail(status, req, directory, "dir_attributes", str(err))


def _fileid(directory, dirent) -> int:
    if dirent.name == b".." and directory.gfid == directory.export.root_gfid:
        return directory.mapper.fileid(gfid_to_ino(directory.gfid))
    return directory.mapper.fileid(dirent.ino)


def _collect(batches, admit, has_room) -> tuple[list, bool]:
    """Entries from the storage while `admit(dirent)` returns one (None: it does not fit).

    Returns (entries, eof): eof only if the storage reached the end and every
    entry it gave was admitted.  No further batch is fetched once
    `has_room()` says the smallest likely entry would not fit: the storage
    would build a whole batch for nothing.
    """
    out = []
    for entries, eof in batches:
        for dirent in entries:
            entry = admit(dirent)
            if entry is None:
                return out, False
            out.append(entry)
        if eof:
            return out, True
        if not has_room():
            return out, False
    return out, False


def proc_readdir(nfs, req, args):
    directory, verf = _open_listing(nfs, req, args)
    count = min(args.count, _reply_limit(nfs, req))
    if count < FIXED_REPLY + ENTRY_FIXED + 4:
        raise nfs.fail(N.NFS3ERR_TOOSMALL, req, directory, "dir_attributes",
                       f"count {args.count} cannot hold one entry")
    used = FIXED_REPLY

    def admit(dirent):
        nonlocal used
        cost = ENTRY_FIXED + _padded(dirent.name)
        if used + cost > count:
            return None
        used += cost
        return _ENTRY3(fileid=_fileid(directory, dirent), name=dirent.name, cookie=dirent.cookie)

    def room():
        return max(count - used, 1)

    def has_room():
        return count - used >= ENTRY_FIXED + 4

    with closing(_batches(nfs, req, directory, args.cookie, room, False)) as batches:
        out, eof = _collect(batches, admit, has_room)
    if not out and not eof:
        raise nfs.fail(N.NFS3ERR_TOOSMALL, req, directory, "dir_attributes",
                       f"count {args.count} cannot hold the next entry")
    attrs = directory.mapper.post_op(nfs.stat_or_none(req, directory))
    return (NFS3_OK, N.READDIR3resok(dir_attributes=attrs, cookieverf=verf,
                                     reply=N.dirlist3(entries=out, eof=eof)))


def proc_readdirplus(nfs, req, args):
    if not nfs.config.rdirplus:
        # nfs.rdirplus off: clients fall back to READDIR, as with gnfs.
        raise NfsError(N.NFS3ERR_NOTSUPP, "READDIRPLUS is disabled (nfs.rdirplus off)")
    directory, verf = _open_listing(nfs, req, args)
    maxcount = min(args.maxcount, _reply_limit(nfs, req))
    dircount = args.dircount
    if maxcount < FIXED_REPLY + ENTRY_FIXED + 4 + PLUS_NOTHING:
        raise nfs.fail(N.NFS3ERR_TOOSMALL, req, directory, "dir_attributes",
                       f"maxcount {args.maxcount} cannot hold one entry")
    mapper = directory.mapper
    fsid, enable_ino32, fh = mapper.fsid, mapper.enable_ino32, directory.fh
    fh_export, fh_mount = fh[:20], fh[36:52]     # a child's handle: these around its gfid
    full_packs = _FULL
    stat_dirent = StatDirent
    at_root = directory.gfid == directory.export.root_gfid
    own: list = []      # the directory's own attributes, for '.' (and '..' at the root)
    used, dir_used, admitted = FIXED_REPLY, 0, 0

    def admit_other(dirent):
        """An entry without its lstat ('.', '..', one whose attributes or handle
        could not be had), or None if it does not fit."""
        nonlocal used, dir_used, admitted
        name = dirent.name
        padded = (len(name) + 3) & ~3
        iatt = dirent.iatt
        if name == b"." or (name == b".." and at_root):
            if not own:
                own.append(nfs.stat_or_none(req, directory))
            iatt, gfid = own[0], directory.gfid   # never a handle above the export
        else:
            gfid = iatt.gfid if iatt is not None else None
        cost = ENTRY_FIXED + padded + (PLUS_ATTRS if iatt is not None else 4) + \
            (PLUS_HANDLE if gfid is not None else 4)
        dir_cost = DIR_INFO_FIXED + padded
        if used + cost > maxcount or (admitted and dir_used + dir_cost > dircount):
            return None
        used += cost
        dir_used += dir_cost
        admitted += 1
        if iatt is not None and name not in (b".", b".."):
            seen_append((iatt.gfid, iatt.type, name))
        return plus_entry(mapper, fh, _fileid(directory, dirent), name, dirent.cookie, iatt,
                          gfid)

    def room():
        return max(maxcount - used, 1)

    seen: list = []     # (gfid, type, name) of the entries sent, for the inode table
    seen_append = seen.append
    out: list = []
    out_append = out.append
    eof = False
    # _collect, with the common case of admit inlined (see plus_entry): this
    # loop runs once per listed entry
    try:
        with closing(_batches(nfs, req, directory, args.cookie, room, True)) as batches:
            full = False
            for entries, storage_eof in batches:
                for dirent in entries:
                    name = dirent.name
                    if dirent.__class__ is not stat_dirent or name == b"." or name == b"..":
                        entry = admit_other(dirent)
                        if entry is None:
                            full = True
                            break
                        out_append(entry)
                        continue
                    # attributes (from its lstat, see glusterfsd.stat_dirent) and a handle
                    n = len(name)
                    padded = (n + 3) & ~3
                    cost = FULL_ENTRY_FIXED + padded
                    dir_cost = DIR_INFO_FIXED + padded
                    if used + cost > maxcount or (admitted and dir_used + dir_cost > dircount):
                        full = True
                        break
                    used += cost
                    dir_used += dir_cost
                    admitted += 1
                    gfid, kind, st = dirent.gfid, dirent.type, dirent.st
                    seen_append((gfid, kind, name))
                    pack = full_packs.get(n) or _packer(_FULL, n, _FULL_TAIL)
                    fileid = ino32(dirent.ino) if enable_ino32 else dirent.ino
                    rdev = st.st_rdev
                    atime, mtime, ctime = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
                    out_append(pack(
                        1, fileid, n, name, dirent.cookie, 1, kind, st.st_mode & 0o7777,
                        dirent.nlink, st.st_uid, st.st_gid, st.st_size, st.st_blocks * 512,
                        os_major(rdev) if rdev else 0, os_minor(rdev) if rdev else 0, fsid,
                        fileid, (atime // _NS) & _U32, atime % _NS, (mtime // _NS) & _U32,
                        mtime % _NS, (ctime // _NS) & _U32, ctime % _NS,
                        1, 52, fh_export, gfid, fh_mount))
                if full:
                    break
                if storage_eof:
                    eof = True
                    break
                # no further batch once the smallest likely entry (attributes and a
                # handle, and past the first the directory part within dircount)
                # would not fit: the storage would build a whole batch for nothing
                if (maxcount - used < ENTRY_FIXED + 4 + PLUS_ATTRS + PLUS_HANDLE
                        or dir_used + DIR_INFO_FIXED + 4 > dircount):
                    break
    finally:
        _link_after_reply(directory.inodes, directory.gfid, seen)
    if not out and not eof:
        raise nfs.fail(N.NFS3ERR_TOOSMALL, req, directory, "dir_attributes",
                       f"maxcount {args.maxcount} cannot hold the next entry")
    return plus_reply(mapper, nfs.stat_or_none(req, directory), verf, out, eof)


def _link_after_reply(inodes, parent: bytes, seen: list) -> None:
    """Record a reply's entries in the inode table once the reply is out
    (glusterfsd.after_reply): ~2 µs an entry, ~80 µs of every 8 KiB reply, that
    the client need not wait for.  Nothing depends on it being there sooner:
    the client cannot use a handle before it has the reply, and a handle the
    table does not know yet is resolved through the storage."""
    if not after_reply.defer(lambda: inodes.link_children(parent, seen)):
        inodes.link_children(parent, seen)


PROCS = {"READDIR": proc_readdir, "READDIRPLUS": proc_readdirplus}
