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
"""
from __future__ import annotations

import errno
import hashlib
from contextlib import closing

from glusterfsd.xlator import IA_DIR, gfid_to_ino
from nfs.nfs3_attrs import N
from nfs.nfs3_errors import NfsError, nfsstat3_for_errno

NFS3_OK = N.NFS3_OK
# The value classes themselves (skipping the codec's constructor indirection):
# one or two are built per listed entry.
_ENTRY3 = N.entry3.cls
_ENTRYPLUS3 = N.entryplus3.cls
_NFS_FH3 = N.nfs_fh3.cls
# status + post_op_attr(dir, with attributes) + cookieverf + end-of-list + eof
FIXED_REPLY = 4 + (4 + 84) + 8 + 4 + 4
ENTRY_FIXED = 4 + 8 + 4 + 8          # list marker, fileid, name length, cookie
PLUS_ATTRS = 4 + 84                  # post_op_attr with attributes
PLUS_HANDLE = 4 + 4 + 52             # post_op_fh3 with a 52-byte handle
PLUS_NOTHING = 4 + 4                 # both FALSE
DIR_INFO_FIXED = 8 + 4 + 8           # what dircount counts per entry
MAX_BATCHES = 64                     # storage calls per reply, a bound on one call's work
UDP_REPLY_MAX = 32768
ZERO_VERIFIER = bytes(8)             # what a client sends when it has no verifier


def cookie_verifier(gfid: bytes) -> bytes:
    return hashlib.blake2b(gfid, digest_size=8, person=b"nfs3-cvf").digest()


def _reply_limit(nfs, req) -> int:
    """The largest listing reply: nfs3.readdir-size, and one datagram over UDP."""
    limit = nfs.config.readdir_size
    return min(limit, UDP_REPLY_MAX) if req.transport == "udp" else limit


def _padded(name: bytes) -> int:
    return (len(name) + 3) & ~3


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
    at_root = directory.gfid == directory.export.root_gfid
    self_attrs = nfs.stat_or_none(req, directory)
    used, dir_used, admitted = FIXED_REPLY, 0, 0

    def admit(dirent):
        nonlocal used, dir_used, admitted
        name = dirent.name
        if name == b"." or (name == b".." and at_root):
            iatt, gfid = self_attrs, directory.gfid   # never a handle above the export
        else:
            iatt = dirent.iatt
            gfid = iatt.gfid if iatt is not None else None
        cost = ENTRY_FIXED + _padded(name) + (PLUS_ATTRS if iatt is not None else 4) + \
            (PLUS_HANDLE if gfid is not None else 4)
        dir_cost = DIR_INFO_FIXED + _padded(name)
        if used + cost > maxcount or (admitted and dir_used + dir_cost > dircount):
            return None
        used += cost
        dir_used += dir_cost
        admitted += 1
        if iatt is not None and name not in (b".", b".."):
            seen.append((iatt, name))
        handle = (True, _NFS_FH3(data=directory.child_fh(gfid))) if gfid is not None \
            else (False, None)
        return _ENTRYPLUS3(fileid=_fileid(directory, dirent), name=name, cookie=dirent.cookie,
                           name_attributes=mapper.post_op(iatt), name_handle=handle)

    def room():
        return max(maxcount - used, 1)

    def has_room():
        # an entry with attributes and a handle (what nearly every entry has)
        # and, past the first, the directory part within dircount
        return (maxcount - used >= ENTRY_FIXED + 4 + PLUS_ATTRS + PLUS_HANDLE
                and dir_used + DIR_INFO_FIXED + 4 <= dircount)

    seen: list = []     # (iatt, name) of the entries sent, for the inode table
    try:
        with closing(_batches(nfs, req, directory, args.cookie, room, True)) as batches:
            out, eof = _collect(batches, admit, has_room)
    finally:
        directory.inodes.link_children(directory.gfid, seen)
    if not out and not eof:
        raise nfs.fail(N.NFS3ERR_TOOSMALL, req, directory, "dir_attributes",
                       f"maxcount {args.maxcount} cannot hold the next entry")
    attrs = mapper.post_op(nfs.stat_or_none(req, directory))
    return (NFS3_OK, N.READDIRPLUS3resok(dir_attributes=attrs, cookieverf=verf,
                                         reply=N.dirlistplus3(entries=out, eof=eof)))


PROCS = {"READDIR": proc_readdir, "READDIRPLUS": proc_readdirplus}
