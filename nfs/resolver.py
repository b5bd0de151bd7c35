"""From a file handle to the object and the export whose rules apply (gnfs's nfs3_fh_resolve_*).

Answers, in this order:
- not 52 bytes or no ":OGL" ident -> NFS3ERR_BADHANDLE;
- an exportid naming no exported volume -> NFS3ERR_STALE;
- a client address no candidate export allows -> NFS3ERR_ACCES;
- an object outside every directory export the handle may belong to -> STALE;
- a gfid the storage does not know (deleted, forged) -> NFS3ERR_STALE.

Which exports a handle may belong to: the mount id names the listed export
it was mounted through.  A handle of a directory mounted *below* a listed
export carries the hash of that deeper path, which names no export; it may
then belong to any listed export of its volume.

Containment, for handles that only directory exports allow: the volume root
(the one gfid anyone can guess) is refused, and a directory must have one of
those exports' roots among its ancestors (walked through '..', cached in the
inode table).  Other objects are not walked -- storage keeps no parent for
them -- and are protected by their random 128-bit gfids, which the server
never reveals outside the export ('..' of an export root is the root itself,
in LOOKUP and READDIRPLUS alike).
"""
from __future__ import annotations

import errno
import threading
import time

from glusterfsd.xlator import IA_DIR, ROOT_GFID, SERVER_CALLER, Iatt
from nfs import fh
from nfs.inode import MAX_DEPTH, InodeTable, InodeTables
from nfs.nfs3_attrs import N, AttrMapper
from nfs.nfs3_errors import NfsError

_GONE = (errno.ENOENT, errno.ESTALE)


class Target:
    """What a handle resolved to: the object, its export, and how to describe it."""

    __slots__ = ("export", "xl", "gfid", "fh", "type", "mapper", "looked_up", "inodes")

    def __init__(self, export, gfid: bytes, handle: bytes, type_: int, mapper: AttrMapper,
                 looked_up: Iatt | None, inodes: InodeTable):
        self.export = export
        self.xl = export.xlator
        self.inodes = inodes         # the inode table of the object's volume
        self.gfid = gfid
        self.fh = handle
        self.type = type_
        self.mapper = mapper
        self.looked_up = looked_up   # attributes fetched while resolving, if any

    def child_fh(self, gfid: bytes) -> bytes:
        return fh.with_gfid(self.fh, gfid)


class HandleResolver:
    HOST_CACHE_SECONDS = 30.0
    HOST_CACHE_SIZE = 4096

    def __init__(self, exports, inodes: InodeTables, enable_ino32: bool):
        self.tables = inodes
        self._host_cache: dict = {}
        self._lock = threading.Lock()
        self.set_exports(exports, enable_ino32)

    def set_exports(self, exports, enable_ino32: bool) -> None:
        """Use a (re)built ExportTable; handles stay valid (they carry volume ids)."""
        by_mount, by_volume, mappers = {}, {}, {}
        for export in exports:
            by_mount[(export.volume_id, export.mountid)] = export
            by_volume.setdefault(export.volume_id, []).append(export)
            mappers[export.volume_id] = AttrMapper(export.volume_id, enable_ino32)
        self.exports = exports
        self._by_mount = by_mount
        self._by_volume = by_volume
        self._mappers = mappers
        with self._lock:
            self._host_cache.clear()

    # --- the answer -------------------------------------------------------
    def resolve(self, req, nfs_fh) -> Target:
        data = nfs_fh.data
        try:
            exportid, gfid, mountid = fh.parse(data)
        except fh.BadHandle as err:
            raise NfsError(N.NFS3ERR_BADHANDLE, str(err)) from None
        export = self._by_mount.get((exportid, mountid))
        candidates = (export,) if export is not None else self._by_volume.get(exportid)
        if not candidates:
            raise NfsError(N.NFS3ERR_STALE, "handle of an export that is not exported")
        address = req.peer[0]
        if len(candidates) == 1:     # the usual case: no list to build
            allowed = candidates if self._host_ok(candidates[0], address) else ()
        else:
            allowed = self._allowed(candidates, address)
        if not allowed:
            raise NfsError(N.NFS3ERR_ACCES, f"{req.peer[0]} may not use {candidates[0].path}")
        looked_up = None
        xl = allowed[0].xlator
        inodes = self.tables.table(xl.name)
        inode = inodes.get(gfid)
        if inode is not None:
            kind = inode.type
        else:
            try:
                looked_up = xl.lookup(req.caller, gfid, None)
            except OSError as err:
                if err.errno in _GONE:
                    raise NfsError(N.NFS3ERR_STALE, "no object with that gfid") from None
                raise
            inodes.link(looked_up)
            kind = looked_up.type
        export = self._containing(allowed, gfid, kind, inodes)
        return Target(export, gfid, bytes(data), kind, self._mappers[exportid], looked_up,
                      inodes)

    # --- host rules ---------------------------------------------------------
    def _allowed(self, candidates, address: str) -> list:
        return [e for e in candidates if self._host_ok(e, address)]

    def _host_ok(self, export, address: str) -> bool:
        key = (id(export), address)
        now = time.monotonic()
        cached = self._host_cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        allowed = export.host_allowed(address)
        with self._lock:
            if len(self._host_cache) >= self.HOST_CACHE_SIZE:
                self._host_cache.clear()
            self._host_cache[key] = (allowed, now + self.HOST_CACHE_SECONDS)
        return allowed

    # --- containment ----------------------------------------------------------
    def _containing(self, allowed: list, gfid: bytes, kind: int, inodes: InodeTable):
        """The allowed export the object lies in (see the module doc), or STALE."""
        for export in allowed:
            if export.is_volume:
                return export
        roots = {}
        for export in allowed:
            try:
                roots[export.root_gfid] = export
            except OSError:
                continue   # the export's directory is gone: it contains nothing
        if gfid in roots:
            return roots[gfid]
        if gfid == ROOT_GFID or not roots:
            raise NfsError(N.NFS3ERR_STALE, "object outside the export")
        if kind != IA_DIR:
            return next(iter(roots.values()))
        found = self._ancestor_in(allowed[0].xlator, gfid, roots, inodes)
        if found is None:
            raise NfsError(N.NFS3ERR_STALE, "directory outside the export")
        return found

    @staticmethod
    def _ancestor_in(xl, gfid: bytes, roots: dict, inodes: InodeTable):
        current = gfid
        for _ in range(MAX_DEPTH):
            parent = inodes.parent_of(current)
            if parent is None:
                try:
                    iatt = xl.lookup(SERVER_CALLER, current, b"..")
                except OSError:
                    return None
                parent = iatt.gfid
                if parent == current:   # the volume root
                    return None
                inodes.link(iatt)
                inodes.set_parent(current, parent)
            if parent in roots:
                return roots[parent]
            if parent == ROOT_GFID:
                return None
            current = parent
        return None

    def mapper_for(self, volume_id: bytes) -> AttrMapper:
        return self._mappers[volume_id]
