"""The export table: which paths clients may mount, from whom, and how.

Every subvolume of `nfs/server` is a volume export `/<vol>` (unless
`nfs3.export-volumes off` or `nfs.<vol>.disable on`), and with
`nfs3.export-dirs on` each directory listed in `nfs3.<vol>.export-dir` is an
export `/<vol>/<dir>` of its own, with its own host list:

    option nfs3.gv0.export-dir /projects(10.0.0.0/8|build1.example.com),/pub

As in gnfs, with export-dirs on a client may also mount any existing directory
below an export (`/gv0/a/b`); the rules of the deepest listed export above it
apply, so a subdirectory never escapes a stricter host list.

Handles name their volume by `exportid` = the volume UUID (gnfs's dynamic-volumes
scheme): `nfs3.<vol>.volume-id`, else the storage's own `volume_id`, else a
UUID derived from the volume name, so every NFS head fronting the same volume
hands out the same handles.  Directory exports share their volume's exportid.

Who may mount (`Export.host_allowed`): the address must match the global
`rpc-auth.addr.allow` and the volume's `rpc-auth.addr.<vol>.allow`, match
neither `rpc-auth.addr.reject` nor `rpc-auth.addr.<vol>.reject` (a reject
always wins), and, for a directory export with a hostspec, match that hostspec.
Rule syntax and the host-name policy are in `nfs.hostrules`.
"""
from __future__ import annotations

import errno
import posixpath
import re
import uuid
from typing import Any, Iterator

from glusterfsd import log as gflog
from glusterfsd.options import Option, OptionError
from glusterfsd.xlator import ROOT_GFID, SERVER_CALLER, Caller
from nfs import fh
from nfs.hostrules import HostRules, check_hostspec

logger = gflog.get_logger("nfs-exports")

MNTPATHLEN = 1024   # RFC 1813 Appendix I: longest dirpath
MNTNAMLEN = 255     # longest name (and path component)
DEFAULT_RMTAB = "/var/lib/glusterd/nfs/rmtab"
# Namespace of the UUIDs derived from volume names when no volume-id is known.
VOLUME_ID_NAMESPACE = uuid.UUID("5b1e7a6e-0c3f-4c52-9d55-6e6673000001")

EXPORT_OPTIONS: tuple[Option, ...] = (
    Option("nfs3.*.volume-id", "uuid", None,
           description="The UUID of the volume, used as the export id in every file handle "
                       "(gnfs's dynamic-volumes scheme). Heads that front one volume must agree "
                       "on it; without it the storage's own id, or one derived from the name, is used."),
    Option("nfs3.*.volume-access", "choice", "read-write", choices=("read-only", "read-write"),
           description="read-only refuses every modifying NFS call on this volume with NFS3ERR_ROFS."),
    Option("nfs3.*.trusted-write", "bool", "off",
           description="On an UNSTABLE write from a client, return the STABLE flag so that it "
                       "does not send a COMMIT request."),
    Option("nfs3.*.trusted-sync", "bool", "off",
           description="All writes and COMMIT requests are treated as async: writes are answered "
                       "as stable without syncing. Implies trusted-write."),
    Option("nfs3.*.export-dir", "str", "",
           description="Directories of the volume to export on their own, as "
                       "<dir>[(hostspec[|hostspec|...])][,...]; a hostspec is an IP address, "
                       "a host name or a CIDR network, and limits who may mount that directory."),
    Option("nfs3.export-dirs", "bool", "on",
           description="Allow mounting directories of a volume (those listed in "
                       "nfs3.<vol>.export-dir and any directory below an export)."),
    Option("nfs3.export-volumes", "bool", "on",
           description="Export whole volumes as /<volume>; off leaves only directory exports."),
    Option("nfs.*.disable", "bool", "off",
           description="Do not export this volume at all."),
    Option("rpc-auth.addr.allow", "client-auth-addr", "all",
           description="Comma list of addresses, CIDR networks, host names or patterns allowed "
                       "to mount any export; all or * for everyone."),
    Option("rpc-auth.addr.reject", "client-auth-addr", "none",
           description="Comma list of addresses, networks, names or patterns refused on every "
                       "export; a reject always wins over an allow."),
    Option("rpc-auth.addr.*.allow", "client-auth-addr", "all",
           description="Who may mount this volume's exports (same syntax as rpc-auth.addr.allow)."),
    Option("rpc-auth.addr.*.reject", "client-auth-addr", "none",
           description="Who may not mount this volume's exports; wins over any allow."),
    Option("rpc-auth.addr.namelookup", "bool", "off",
           description="Reverse-resolve client addresses so that host-name rules can match; "
                       "off (the default) matches addresses, networks and address patterns only."),
    Option("nfs.mount-rmtab", "path", DEFAULT_RMTAB,
           description="File that keeps the list of mounts (showmount -a) across restarts; "
                       "/- keeps it in memory only."),
)

_PER_VOLUME_PATTERNS = tuple(
    (re.compile("^" + re.escape(opt.key).replace(r"\*", r"([^.]+)") + "$"), opt.key)
    for opt in EXPORT_OPTIONS if "*" in opt.key
)


# --- export-dir values ------------------------------------------------------
_EXPORT_DIR_ENTRY = re.compile(r"\s*([^(),|]+?)\s*(?:\(([^()]*)\))?\s*")


def parse_export_dirs(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """`/a(h1|h2),/b` -> [("/a", ("h1", "h2")), ("/b", ())]; ValueError says what is wrong."""
    result: list[tuple[str, tuple[str, ...]]] = []
    if not text.strip():
        return result
    # Split on commas outside parentheses, refusing unbalanced ones.
    entries, depth, start = [], 0, 0
    for pos, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth > 1:
                raise ValueError(f"nested '(' at position {pos}")
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"')' without '(' at position {pos}")
        elif ch == "," and depth == 0:
            entries.append(text[start:pos])
            start = pos + 1
    if depth:
        raise ValueError("'(' is never closed")
    entries.append(text[start:])
    seen = set()
    for entry in entries:
        match = _EXPORT_DIR_ENTRY.fullmatch(entry)
        if match is None:
            raise ValueError(f"'{entry.strip()}' is not <dir>[(hostspec|...)]")
        directory = normalize_subdir(match.group(1))
        hosts: tuple[str, ...] = ()
        if match.group(2) is not None:
            hosts = tuple(check_hostspec(h) for h in match.group(2).split("|"))
        if directory in seen:
            raise ValueError(f"directory {directory} is listed twice")
        seen.add(directory)
        result.append((directory, hosts))
    return result


def normalize_subdir(text: str) -> str:
    """An export-dir directory as '/a/b', or ValueError (relative, '..', the root itself)."""
    if not text.startswith("/"):
        raise ValueError(f"'{text}' is not an absolute directory (start it with /)")
    parts = [p for p in text.split("/") if p and p != "."]
    if ".." in parts:
        raise ValueError(f"'{text}' contains '..'")
    if not parts:
        raise ValueError("'/' is the volume itself; use nfs3.export-volumes for it")
    if any(len(p.encode()) > MNTNAMLEN for p in parts):
        raise ValueError(f"'{text}' has a component longer than {MNTNAMLEN} bytes")
    return "/" + "/".join(parts)


def normalize_mount_path(path: bytes | str) -> str:
    """A MNT dirpath as '/vol/a/b': '//' collapsed, '.' dropped, '..' applied, no trailing '/'.

    Raises OSError(ENAMETOOLONG) above MNTPATHLEN or for a component above
    MNTNAMLEN, OSError(EINVAL) for an empty path or a NUL byte.  The lexical
    '..' is safe: the walk later never follows symlinks (a symlink component is
    not a directory, so it is refused with ENOTDIR).
    """
    if isinstance(path, (bytes, bytearray, memoryview)):
        raw = bytes(path)
        text = raw.decode("utf-8", "surrogateescape")
    else:
        text = path
        raw = text.encode("utf-8", "surrogateescape")
    if len(raw) > MNTPATHLEN:
        raise OSError(errno.ENAMETOOLONG, f"mount path longer than {MNTPATHLEN} bytes")
    if not text:
        raise OSError(errno.EINVAL, "empty mount path")
    if "\0" in text:
        raise OSError(errno.EINVAL, "NUL byte in mount path")
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if len(part.encode("utf-8", "surrogateescape")) > MNTNAMLEN:
            raise OSError(errno.ENAMETOOLONG, f"path component longer than {MNTNAMLEN} bytes")
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


# --- one export ---------------------------------------------------------
def _volume_id_of(server, child) -> bytes:
    configured = server.option("nfs3.*.volume-id", child.name)
    if isinstance(configured, uuid.UUID):
        return configured.bytes
    own = getattr(child, "volume_id", None)
    if isinstance(own, uuid.UUID):
        return own.bytes
    if isinstance(own, (bytes, bytearray)) and len(own) == 16:
        return bytes(own)
    if isinstance(own, str) and own:
        try:
            return uuid.UUID(own).bytes
        except ValueError:
            pass
    return uuid.uuid5(VOLUME_ID_NAMESPACE, child.name).bytes


class Export:
    """One mountable path: a whole volume or a directory of it."""

    def __init__(self, xlator, volume_id: bytes, subdir: str, *, read_only: bool,
                 trusted_write: bool, trusted_sync: bool, rules: "_AccessRules",
                 hostspec: tuple[str, ...] = (), listed: bool = True):
        self.name = xlator.name
        self.xlator = xlator
        self.volume_id = volume_id
        self.subdir = subdir                  # "" for the volume itself, else "/a/b"
        self.path = "/" + xlator.name + subdir
        self.read_only = read_only
        self.trusted_sync = trusted_sync
        self.trusted_write = trusted_write or trusted_sync
        self.hostspec = hostspec
        self.listed = listed                  # shown by EXPORT and mountable by its path
        self._rules = rules
        self._hostspec_rules = HostRules(hostspec, rules.namelookup) if hostspec else None
        self._root_gfid = ROOT_GFID if not subdir else None
        self.mountid = fh.mountid_for_path(self.path)

    @property
    def is_volume(self) -> bool:
        return not self.subdir

    @property
    def root_gfid(self) -> bytes | None:
        """The gfid of the export's root (a directory export resolves it on first use).

        None while a directory export's directory cannot be found: the NFS
        layer compares gfids with it (to stop '..' at the export root), and a
        missing directory has no objects below it to compare.
        """
        if self._root_gfid is None:
            try:
                self.resolve_root()
            except OSError as err:
                logger.warning("export %s: cannot resolve its directory: %s", self.path,
                               err.strerror or err)
        return self._root_gfid

    def resolve_root(self, caller: Caller | None = None) -> bytes:
        """Walk LOOKUPs from the volume root to this export's directory (fresh every call).

        OSError(ENOENT/ENOTDIR/EACCES...) when the directory is gone or unreachable.
        """
        self._root_gfid = walk(self.xlator, self.subdir, caller or SERVER_CALLER)
        return self._root_gfid

    def host_allowed(self, address: str) -> bool:
        """May this client address mount (or use) this export?  See the module docstring."""
        if not self._rules.allows(address):
            return False
        if self._hostspec_rules is not None and not self._hostspec_rules.matches(address):
            return False
        return True

    def groups(self) -> list[str]:
        """The hosts shown by EXPORT (showmount -e); empty means everyone."""
        if self.hostspec:
            return list(self.hostspec)
        return self._rules.shown_groups()

    def root_fh(self) -> bytes:
        """The handle MNT gives for this export's own path (OSError if its directory is gone)."""
        gfid = self.root_gfid if self.is_volume else self.resolve_root()
        return fh.build(self.volume_id, gfid, self.mountid)

    def __repr__(self) -> str:
        mode = "ro" if self.read_only else "rw"
        return f"<Export {self.path} {mode}>"


class _AccessRules:
    """The global and per-volume allow/reject lists of one volume."""

    def __init__(self, server, volume: str, namelookup: bool):
        def rules(key, vol=None):
            value = server.option(key, vol) if vol else server.option(key)
            if value is None:
                value = ("none",) if key.endswith("reject") else ("all",)
            return HostRules(value, namelookup)
        self.namelookup = namelookup
        self.allow_global = rules("rpc-auth.addr.allow")
        self.reject_global = rules("rpc-auth.addr.reject")
        self.allow_volume = rules("rpc-auth.addr.*.allow", volume)
        self.reject_volume = rules("rpc-auth.addr.*.reject", volume)

    def allows(self, address: str) -> bool:
        if self.reject_global.matches(address) or self.reject_volume.matches(address):
            return False
        return self.allow_global.matches(address) and self.allow_volume.matches(address)

    def shown_groups(self) -> list[str]:
        if not self.allow_volume.everyone:
            return list(self.allow_volume.items)
        if not self.allow_global.everyone:
            return list(self.allow_global.items)
        return []


def walk(xlator, subdir: str, caller: Caller) -> bytes:
    """The gfid of directory `subdir` ('/a/b', '' = root) by LOOKUPs from the volume root."""
    gfid = ROOT_GFID
    if not subdir:
        return gfid
    for name in subdir.strip("/").split("/"):
        iatt = xlator.lookup(caller, gfid, name.encode("utf-8", "surrogateescape"))
        if not iatt.is_dir:
            raise OSError(errno.ENOTDIR, f"{name} in {subdir} is not a directory")
        gfid = iatt.gfid
    return gfid


# --- the table ----------------------------------------------------------
def _given_keys(server) -> dict[str, Any]:
    given = getattr(server, "given", None)
    return dict(given if given is not None else server.opts)


def validate_export_options(server) -> None:
    """Raise OptionError for export options that cannot work (for nfs/server's check()).

    Catches what the option types alone cannot: a malformed export-dir, a
    per-volume key naming no subvolume (a typo there would silently drop a
    host restriction), and two volumes claiming the same volume-id (their
    handles would be indistinguishable).
    """
    names = {child.name for child in server.children}
    for key in _given_keys(server):
        for pattern, template in _PER_VOLUME_PATTERNS:
            match = pattern.match(key)
            if match and match.group(1) not in names:
                raise OptionError(key, f"option {key} names '{match.group(1)}', which is not "
                                       f"a subvolume of {server.name} "
                                       f"(subvolumes: {', '.join(sorted(names)) or 'none'})")
    owners: dict[bytes, str] = {}
    for child in server.children:
        text = server.option("nfs3.*.export-dir", child.name) or ""
        try:
            dirs = parse_export_dirs(text)
        except ValueError as err:
            raise OptionError(f"nfs3.{child.name}.export-dir", str(err)) from None
        for directory, _hosts in dirs:
            if len(("/" + child.name + directory).encode()) > MNTPATHLEN:
                raise OptionError(f"nfs3.{child.name}.export-dir",
                                  f"/{child.name}{directory} is longer than {MNTPATHLEN} bytes")
        volume_id = _volume_id_of(server, child)
        if volume_id in owners:
            raise OptionError(f"nfs3.{child.name}.volume-id",
                              f"volumes {owners[volume_id]} and {child.name} have the same "
                              f"volume id {uuid.UUID(bytes=volume_id)}")
        owners[volume_id] = child.name


class ExportTable:
    """All exports of one nfs/server, built from its options (rebuild on reconfigure)."""

    def __init__(self, exports: list[Export], volume_exports: dict[str, Export], export_dirs: bool):
        self.exports = exports                  # the listed ones, in subvolume order
        self.volume_exports = volume_exports    # one per enabled volume, listed or not
        self.export_dirs = export_dirs
        self._by_path = {e.path: e for e in exports}
        self._by_volume_id = {e.volume_id: e for e in volume_exports.values()}

    @classmethod
    def from_options(cls, server) -> "ExportTable":
        validate_export_options(server)
        namelookup = bool(server.option("rpc-auth.addr.namelookup"))
        export_dirs = _flag(server.option("nfs3.export-dirs"), True)
        export_volumes = _flag(server.option("nfs3.export-volumes"), True)
        exports: list[Export] = []
        volume_exports: dict[str, Export] = {}
        for child in server.children:
            if _flag(server.option("nfs.*.disable", child.name), False):
                logger.info("volume %s is not exported (nfs.%s.disable)", child.name, child.name)
                continue
            rules = _AccessRules(server, child.name, namelookup)
            common = dict(
                read_only=server.option("nfs3.*.volume-access", child.name) == "read-only",
                trusted_write=_flag(server.option("nfs3.*.trusted-write", child.name), False),
                trusted_sync=_flag(server.option("nfs3.*.trusted-sync", child.name), False),
                rules=rules,
            )
            volume_id = _volume_id_of(server, child)
            volume = Export(child, volume_id, "", listed=export_volumes, **common)
            volume_exports[child.name] = volume
            if export_volumes:
                exports.append(volume)
            if export_dirs:
                text = server.option("nfs3.*.export-dir", child.name) or ""
                for directory, hosts in parse_export_dirs(text):
                    exports.append(Export(child, volume_id, directory, hostspec=hosts, **common))
            if not namelookup:
                _warn_name_rules(child.name, rules, exports)
        return cls(exports, volume_exports, export_dirs)

    def __iter__(self) -> Iterator[Export]:
        return iter(self.exports)

    def __len__(self) -> int:
        return len(self.exports)

    def by_volume_id(self, exportid: bytes) -> Export | None:
        """The volume export for a handle's exportid (directory exports share it)."""
        return self._by_volume_id.get(bytes(exportid))

    def by_name(self, volume: str) -> Export | None:
        return self.volume_exports.get(volume)

    def by_path(self, path: bytes | str) -> Export | None:
        """The export whose rules govern a mount path, without touching storage.

        The exact listed export, else (export-dirs on) the deepest listed
        export above it, else None.  Raises OSError for a path too long.
        """
        normalized = normalize_mount_path(path)
        return self._governing(normalized)

    def _governing(self, normalized: str) -> Export | None:
        exact = self._by_path.get(normalized)
        if exact is not None or not self.export_dirs:
            return exact
        probe = normalized
        while probe.count("/") > 1:
            probe = posixpath.dirname(probe)
            found = self._by_path.get(probe)
            if found is not None:
                return found
        return None

    def resolve_mount_path(self, path: bytes | str, caller: Caller,
                           address: str | None = None) -> tuple[Export, bytes]:
        """(governing Export, gfid of the mounted directory) for a MNT.

        Raises OSError: ENAMETOOLONG/EINVAL (bad path), ENOENT (no such export or
        directory), EACCES (`address` given and not allowed; checked before any
        storage access so a refused host learns nothing), ENOTDIR (a component
        or the target is not a directory).
        """
        normalized = normalize_mount_path(path)
        export = self._governing(normalized)
        if export is None:
            raise OSError(errno.ENOENT, f"{normalized} is not exported")
        if address is not None and not export.host_allowed(address):
            raise OSError(errno.EACCES, f"{address} may not mount {normalized}")
        subdir = normalized[len("/" + export.name):]
        if normalized == export.path and export.subdir:
            gfid = export.resolve_root(caller)
        else:
            gfid = walk(export.xlator, subdir, caller)
        return export, gfid


def _flag(value, default: bool) -> bool:
    return default if value is None else bool(value)


def _warn_name_rules(volume: str, rules: _AccessRules, exports: list[Export]) -> None:
    names = set(rules.allow_global.name_rules) | set(rules.allow_volume.name_rules)
    names |= set(rules.reject_global.name_rules) | set(rules.reject_volume.name_rules)
    for export in exports:
        if export.name == volume and export._hostspec_rules is not None:
            names |= set(export._hostspec_rules.name_rules)
    if names:
        logger.warning("volume %s: host-name rules %s only match with rpc-auth.addr.namelookup on",
                       volume, ", ".join(sorted(names)))
