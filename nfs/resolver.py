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


_monotonic = time.monotonic
_FH_SIZE = fh.FH_SIZE
_IDENT = fh.IDENT
_split_handle = fh.LAYOUT.unpack


def _why_bad(data) -> str:
    """What is wrong with a handle the resolver refused (fh.parse says it)."""
    try:
        fh.parse(data)
    except fh.BadHandle as err:
        return str(err)
    return "malformed handle"


class _Route:
    """What a handle's (exportid, mountid) means for one client address (see
    HandleResolver); `allowed` empty: the address may use none of them."""

    __slots__ = ("expires", "allowed", "first_path", "volume", "xl", "inodes", "mapper")

    def __init__(self, expires: float, allowed: tuple, first_path: str, volume, xl,
                 inodes: InodeTable | None, mapper: AttrMapper):
        self.expires = expires
        self.allowed = allowed        # the candidate exports the address may use, in order
        self.first_path = first_path  # for the ACCES message
        self.volume = volume          # the first allowed whole-volume export: contains all
        self.xl = xl
        self.inodes = inodes
        self.mapper = mapper


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
    """Handles to Targets.  What a handle's export part and the client's
    address decide (the candidate exports, which of them the address may
    use, the volume's inode table and attribute mapper) is kept per
    (exportid, mountid, address) as a `_Route` for HOST_CACHE_SECONDS: a
    handle then costs one dict lookup before its gfid, instead of a host
    check, a table lookup and a scan of the exports on every call.  The
    cache is emptied by `set_exports` (exports changed) and when full; the
    time bound is for host rules that name hosts, whose addresses may move."""

    HOST_CACHE_SECONDS = 30.0
    HOST_CACHE_SIZE = 4096

    def __init__(self, exports, inodes: InodeTables, enable_ino32: bool):
        self.tables = inodes
        self._routes: dict = {}
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
            self._routes = {}

    # --- the answer -------------------------------------------------------
    def resolve(self, req, nfs_fh) -> Target:
        """The Target of a handle (see the module doc for the answers).

        Every call with a handle starts here, so the usual case is written
        flat: fh.parse's checks inline, the route from the cache, and the
        object's type from the inode table (`type_of`, no Inode made)."""
        data = nfs_fh.data
        ident = None
        if len(data) == _FH_SIZE:
            ident, exportid, gfid, mountid = _split_handle(data)
        if ident != _IDENT:
            raise NfsError(N.NFS3ERR_BADHANDLE, _why_bad(data))
        address = req.peer[0]
        route = self._routes.get((exportid, mountid, address))
        if route is None or route.expires <= _monotonic():
            route = self._route(exportid, mountid, address)
        allowed = route.allowed
        if not allowed:
            raise NfsError(N.NFS3ERR_ACCES, f"{address} may not use {route.first_path}")
        looked_up = None
        inodes = route.inodes
        kind = inodes.type_of(gfid)
        if kind is None:
            try:
                looked_up = route.xl.lookup(req.caller, gfid, None)
            except OSError as err:
                if err.errno in _GONE:
                    raise NfsError(N.NFS3ERR_STALE, "no object with that gfid") from None
                raise
            inodes.link(looked_up)
            kind = looked_up.type
        export = route.volume
        if export is None:
            export = self._containing(allowed, gfid, kind, inodes)
        return Target(export, gfid, bytes(data), kind, route.mapper, looked_up, inodes)

    # --- host rules ---------------------------------------------------------
    def _route(self, exportid: bytes, mountid: bytes, address: str) -> "_Route":
        """Work out (and keep) what a handle's export part means for `address`;
        STALE for an export that is not exported (not kept: nothing to save).
        A route worked out while `set_exports` ran is not kept: the cache it
        was meant for is gone (read first: set_exports replaces it last)."""
        routes = self._routes
        export = self._by_mount.get((exportid, mountid))
        candidates = (export,) if export is not None else self._by_volume.get(exportid)
        if not candidates:
            raise NfsError(N.NFS3ERR_STALE, "handle of an export that is not exported")
        allowed = tuple(e for e in candidates if e.host_allowed(address))
        xl = allowed[0].xlator if allowed else None
        route = _Route(
            _monotonic() + self.HOST_CACHE_SECONDS, allowed, candidates[0].path,
            next((e for e in allowed if e.is_volume), None), xl,
            self.tables.table(xl.name) if xl is not None else None, self._mappers[exportid])
        with self._lock:
            if self._routes is routes:
                if len(routes) >= self.HOST_CACHE_SIZE:
                    routes.clear()
                routes[(exportid, mountid, address)] = route
        return route

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
