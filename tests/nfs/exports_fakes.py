"""A tiny in-memory subvolume and an nfs/server stand-in for export and MOUNT tests."""
from __future__ import annotations

import errno
import hashlib

from glusterfsd.options import Option, OptionTable
from glusterfsd.xlator import IA_DIR, IA_LNK, IA_REG, ROOT_GFID, Iatt, Xlator
from nfs.exports import EXPORT_OPTIONS


def _iatt(gfid: bytes, kind: int, mode: int) -> Iatt:
    return Iatt(gfid, kind, mode, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0)


class TreeVolume(Xlator):
    """A subvolume whose namespace is a dict; only LOOKUP is implemented.

    `paths` lists what exists: "a/b/" is a directory, "a/f" a regular file,
    "a/l@" a symlink.  `private` names directories whose entries only root
    may look up (to see EACCES from storage).
    """

    type_name = "test/tree"

    def __init__(self, name, paths=(), private=(), volume_id=None):
        super().__init__(name, {}, [])
        if volume_id is not None:
            self.volume_id = volume_id
        self.lookups = 0
        self.nodes = {ROOT_GFID: (_iatt(ROOT_GFID, IA_DIR, 0o755), {})}
        self.private = set()
        for spec in paths:
            self.add(spec)
        for spec in private:
            self.private.add(self.gfid_of(spec))

    def add(self, spec: str) -> bytes:
        """Create `spec` (see the class doc) and any missing parents; its gfid."""
        kind = IA_DIR if spec.endswith("/") else IA_LNK if spec.endswith("@") else IA_REG
        parent = ROOT_GFID
        parts = spec.rstrip("/@").split("/")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            children = self.nodes[parent][1]
            if part not in children:
                digest = hashlib.md5(f"{self.name}:{'/'.join(parts[:depth + 1])}".encode())
                gfid = digest.digest()
                self.nodes[gfid] = (_iatt(gfid, kind if last else IA_DIR, 0o755), {})
                children[part] = gfid
            parent = children[part]
        return parent

    def gfid_of(self, path: str) -> bytes:
        gfid = ROOT_GFID
        for part in [p for p in path.split("/") if p]:
            gfid = self.nodes[gfid][1][part]
        return gfid

    def lookup(self, caller, parent, name):
        self.lookups += 1
        if parent not in self.nodes:
            raise OSError(errno.ESTALE, "no such parent")
        node, children = self.nodes[parent]
        if node.type != IA_DIR:
            raise OSError(errno.ENOTDIR, "parent is not a directory")
        if parent in self.private and caller.uid != 0:
            raise OSError(errno.EACCES, "permission denied")
        gfid = children.get(name.decode("utf-8", "surrogateescape"))
        if gfid is None:
            raise OSError(errno.ENOENT, "no such entry")
        return self.nodes[gfid][0]


class FakeServer(Xlator):
    """Stands in for nfs/server: its option table holds the export rows."""

    type_name = "test/nfs-server"
    options = EXPORT_OPTIONS + (Option("nfs.port", "int", "2049"),)


def make_server(children, **given_text) -> FakeServer:
    """An nfs/server stand-in given volfile-style option text, typed as the graph would."""
    typed = OptionTable(FakeServer.options).validate(given_text)
    return FakeServer("nfs-server", typed, list(children))
