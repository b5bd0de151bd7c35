"""The MOUNT program (100005), versions 3 and 1: how a client gets its first handle.

MOUNT is where an NFSv3 client turns a path (`server:/gv0/dir`) into the
root file handle of its mount, and where `showmount` learns what is exported
(EXPORT) and who has mounted what (DUMP).  Procedures (RFC 1813 Appendix I):

    0 NULL     1 MNT(dirpath) -> mountres3    2 DUMP -> mountlist
    3 UMNT(dirpath)           4 UMNTALL       5 EXPORT -> exports

MNT checks, in this order: the path (too long or a too-long component ->
MNT3ERR_NAMETOOLONG; the XDR limit of 1024 already makes longer strings
GARBAGE_ARGS), the export that governs it (none -> MNT3ERR_NOENT), the
client's address against that export's rules (MNT3ERR_ACCES, before any
storage access), then LOOKUPs down to the directory (MNT3ERR_NOENT,
MNT3ERR_NOTDIR, MNT3ERR_ACCES from storage).  The handle carries the volume
UUID, the directory's gfid and the mount id of the export whose rules
govern it (nfs.fh), so NFS calls on it are checked against the same rules.
UMNT and UMNTALL are advisory in v3 and always succeed.

Version 1 answers NULL, DUMP, UMNT, UMNTALL and EXPORT from the same data;
its MNT would have to return a fixed 32-byte NFSv2 handle, which cannot hold
gnfs's 52-byte handle, so MNT v1 has no actor and is PROC_UNAVAIL, as in gnfs.
"""
from __future__ import annotations

import errno
from typing import Callable

from glusterfsd import log as gflog
from mount.rmtab import Rmtab
from nfs import fh
from nfs.exports import ExportTable, MNTNAMLEN, normalize_mount_path
from rpcsvc import xdr
from rpcsvc.program import Program

logger = gflog.get_logger("mount3")

MOUNT = xdr.load("mount3")

PROC_NULL, PROC_MNT, PROC_DUMP, PROC_UMNT, PROC_UMNTALL, PROC_EXPORT = range(6)

AUTH_NULL, AUTH_UNIX = 0, 1
# The nfs/server options that say which flavours NFS calls may use.
_FLAVOR_OPTIONS = (("rpc-auth.auth-unix", AUTH_UNIX), ("rpc-auth.auth-null", AUTH_NULL))

_ERRNO_TO_MNTSTAT = {
    errno.EPERM: "MNT3ERR_PERM",
    errno.ENOENT: "MNT3ERR_NOENT",
    errno.EIO: "MNT3ERR_IO",
    errno.EACCES: "MNT3ERR_ACCES",
    errno.ENOTDIR: "MNT3ERR_NOTDIR",
    errno.EINVAL: "MNT3ERR_INVAL",
    errno.ENAMETOOLONG: "MNT3ERR_NAMETOOLONG",
    errno.ENOSYS: "MNT3ERR_NOTSUPP",
    errno.ENOTSUP: "MNT3ERR_NOTSUPP",
}


def errno_to_mountstat(code: int | None) -> int:
    """mountstat3 for an errno (gnfs's mnt3svc_errno_to_mnterr, plus NAMETOOLONG)."""
    return getattr(MOUNT, _ERRNO_TO_MNTSTAT.get(code, "MNT3ERR_SERVERFAULT"))


def _peer_host(req) -> str:
    peer = req.peer
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return str(peer or "")


def offered_flavors(options: Callable[[str], object] | None) -> list[int]:
    """The auth_flavors a MNT reply offers, strongest first.

    Why: RFC 1813 Appendix I has the server list the flavours the client may
    use on the mounted file system, and Linux clients pick the first of them
    they support.  Offering AUTH_UNIX while `rpc-auth.auth-unix` is off (or
    AUTH_NULL while `rpc-auth.auth-null` is off) sends the client to a flavour
    every NFS call will then refuse with AUTH_ERROR.  `options` reads an
    nfs/server option; without one (a MOUNT service not under nfs/server)
    both are offered, which are that server's defaults.
    """
    if options is None:
        return [AUTH_UNIX, AUTH_NULL]
    return [flavor for key, flavor in _FLAVOR_OPTIONS if options(key)]


def _server_options_of(export) -> Callable[[str], object] | None:
    """The option reader of the nfs/server above an export's volume: the
    parent xlator that declares the rpc-auth flavour options."""
    for parent in getattr(export.xlator, "parents", ()):
        table = parent.option_table()
        if all(table.lookup(key) is not None for key, _ in _FLAVOR_OPTIONS):
            return parent.option
    return None


def _text(value: str | bytes) -> bytes:
    """A rmtab/export string as the XDR `name`/`dirpath` bytes."""
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)


class MountService:
    """The state behind both MOUNT versions: the export table and the mount list.

    `exports` is an ExportTable, or a callable returning the current one, so
    that nfs/server can rebuild its table on reconfigure without re-registering
    the programs (or call `set_exports`).
    """

    def __init__(self, exports: ExportTable | Callable[[], ExportTable], rmtab: Rmtab,
                 server_options: Callable[[str], object] | None = None):
        self._exports = exports if callable(exports) else (lambda: exports)
        self.rmtab = rmtab
        # Reads nfs/server options (rpc-auth.auth-unix/-null); None: found
        # through the mounted export's volume, whose parent is the server.
        self._server_options = server_options

    def auth_flavors(self, export) -> list[int]:
        """What a MNT of `export` offers (see `offered_flavors`), read per call
        so that a reconfigured server answers with its new options."""
        return offered_flavors(self._server_options or _server_options_of(export))

    @property
    def exports(self) -> ExportTable:
        return self._exports()

    def set_exports(self, exports: ExportTable) -> None:
        self._exports = lambda: exports

    # --- actors ---------------------------------------------------------
    def null(self, req):
        return None

    def mnt(self, req):
        host = _peer_host(req)
        dirpath = req.args
        shown = bytes(dirpath).decode("utf-8", "backslashreplace")
        try:
            path = normalize_mount_path(dirpath)
            export, gfid = self.exports.resolve_mount_path(path, req.caller, address=host)
        except OSError as err:
            status = errno_to_mountstat(err.errno)
            logger.info("MNT of %s from %s refused: %s (%s)", shown, host,
                        _MNTSTAT_NAMES.get(status, status), err.strerror or err)
            return (status, None)
        except Exception:
            logger.exception("MNT of %s from %s failed", shown, host)
            return (MOUNT.MNT3ERR_SERVERFAULT, None)
        # The mount id is the governing export's, also for a directory below it:
        # nfs/server finds that export (and its host rules) from the handle.
        handle = fh.build(export.volume_id, gfid, export.mountid)
        try:
            self.rmtab.add(host, path)
        except ValueError as err:   # a path the rmtab format cannot hold; the mount still works
            logger.warning("not recording the mount of %s by %s: %s", shown, host, err)
        logger.info("MNT of %s from %s (export %s)", path, host, export.path)
        return (MOUNT.MNT3_OK, MOUNT.mountres3_ok(fhandle=handle,
                                                  auth_flavors=self.auth_flavors(export)))

    def dump(self, req):
        return [MOUNT.mountbody(ml_hostname=_text(host)[:MNTNAMLEN], ml_directory=_text(path))
                for host, path in self.rmtab.entries()]

    def umnt(self, req):
        host = _peer_host(req)
        try:
            path = normalize_mount_path(req.args)
        except OSError:
            return None   # nothing that long was ever recorded; UMNT has no error reply
        self.rmtab.remove(host, path)
        logger.info("UMNT of %s from %s", path, host)
        return None

    def umntall(self, req):
        host = _peer_host(req)
        self.rmtab.remove_host(host)
        logger.info("UMNTALL from %s", host)
        return None

    def export(self, req):
        nodes = []
        for export in self.exports:
            groups = [MOUNT.groupnode(gr_name=_text(g)[:MNTNAMLEN]) for g in export.groups()]
            nodes.append(MOUNT.exportnode(ex_dir=_text(export.path), ex_groups=groups))
        return nodes

    # --- programs -------------------------------------------------------
    def programs(self) -> list[Program]:
        spec = MOUNT.programs["MOUNT_PROGRAM"]
        v3 = Program(spec_program=spec, version=3, actors={
            PROC_NULL: self.null, PROC_MNT: self.mnt, PROC_DUMP: self.dump,
            PROC_UMNT: self.umnt, PROC_UMNTALL: self.umntall, PROC_EXPORT: self.export,
        }, min_auth=AUTH_NULL, unprivileged=True, name="MOUNT3")
        v1 = Program(spec_program=spec, version=1, actors={
            PROC_NULL: self.null, PROC_DUMP: self.dump, PROC_UMNT: self.umnt,
            PROC_UMNTALL: self.umntall, PROC_EXPORT: self.export,
        }, min_auth=AUTH_NULL, unprivileged=True, name="MOUNT1")
        return [v3, v1]


def mount_programs(exports: ExportTable | Callable[[], ExportTable], rmtab: Rmtab,
                   server_options: Callable[[str], object] | None = None) -> list[Program]:
    """MOUNT v3 and v1 programs over one export table and mount list."""
    return MountService(exports, rmtab, server_options).programs()


_MNTSTAT_NAMES = {getattr(MOUNT, name): name for name in
                  (*set(_ERRNO_TO_MNTSTAT.values()), "MNT3_OK", "MNT3ERR_SERVERFAULT")}
