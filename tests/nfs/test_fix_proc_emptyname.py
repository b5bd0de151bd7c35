"""An empty name is refused (ACCES, as knfsd) and never becomes a dentry (review finding 5).

/tmp/review/exp_emptyname.py: LOOKUP(dir, "") linked the directory under
itself in the inode table, and in a directory export its handle then
resolved STALE for every client.
"""
from __future__ import annotations

import pytest

from glusterfsd.xlator import IA_DIR, Iatt
from nfs3_harness import OK, N, NfsTestServer, fh3, sattr
from nfs import fh
from nfs.inode import InodeTable


@pytest.fixture
def dir_export(tmp_path):
    (tmp_path / "bricks" / "gv0" / "proj" / "sub").mkdir(parents=True)
    options = {"nfs3.gv0.export-dir": "/proj", "nfs3.export-volumes": "off"}
    with NfsTestServer(tmp_path, server_options=options) as srv:
        yield srv


def test_lookup_of_an_empty_name_is_acces_and_harms_nothing(dir_export):
    root = dir_export.mount("/gv0/proj")
    with dir_export.client() as nfs:
        status, res = nfs.lookup(root, b"sub")
        assert status == OK
        sub = bytes(res.object.data)
        status, res = nfs.lookup(sub, b"")
        assert status == N.NFS3ERR_ACCES and res.dir_attributes[0]      # with attributes
        assert nfs.getattr(sub)[0] == OK
        assert nfs.readdir(sub)[0] == OK
        assert nfs.lookup(sub, b".")[0] == OK                           # "." still works
    with dir_export.client(uid=1000, gid=1000) as other:
        assert other.getattr(sub)[0] == OK
    table = dir_export.xlator.inodes.table("gv0")
    gfid = fh.parse(sub)[1]
    assert table.child(gfid, b"") is None and table.parent_of(gfid) != gfid


def test_entry_procedures_refuse_an_empty_name(server, root, nfs):
    handle = nfs.new_file(root, b"f")
    sub = nfs.new_dir(root, b"d")
    where = N.diropargs3(dir=fh3(root), name=b"")
    assert nfs.create(root, b"")[0] == N.NFS3ERR_ACCES
    assert nfs.mkdir(root, b"")[0] == N.NFS3ERR_ACCES
    assert nfs.call("SYMLINK", where=where, symlink=N.symlinkdata3(
        symlink_attributes=sattr(), symlink_data=b"f"))[0] == N.NFS3ERR_ACCES
    assert nfs.remove(root, b"")[0] == N.NFS3ERR_ACCES
    assert nfs.call("RMDIR", object=where)[0] == N.NFS3ERR_ACCES
    status, res = nfs.call("RENAME", from_=N.diropargs3(dir=fh3(root), name=b"f"),
                           to=N.diropargs3(dir=fh3(sub), name=b""))
    assert status == N.NFS3ERR_ACCES and res.fromdir_wcc.after[0]
    assert nfs.call("RENAME", from_=where, to=N.diropargs3(dir=fh3(sub), name=b"g"))[0] == \
        N.NFS3ERR_ACCES
    assert nfs.call("LINK", file=fh3(handle), link=where)[0] == N.NFS3ERR_ACCES
    assert nfs.lookup(root, b"x" * 256)[0] == N.NFS3ERR_NAMETOOLONG    # the other bound
    assert sorted(p.name for p in server.brick().iterdir() if p.name[0] != ".") == ["d", "f"]


def _dir(n: int) -> Iatt:
    return Iatt(bytes([n]) * 16, IA_DIR, 0o755, 2, 0, 0, 0, 0, 0, 0, 1, n, 0, 0, 0)


def test_inode_table_refuses_self_parent_and_non_names():
    table = InodeTable(16)
    top, sub = _dir(1), _dir(2)
    table.link(top)
    table.link(sub, top.gfid, b"sub")
    for name in (b"", b".", b".."):
        table.link(sub, sub.gfid, name)
        table.link(sub, top.gfid, name)
    table.link(sub, sub.gfid, b"loop")                  # a real name, but itself as parent
    assert table.parent_of(sub.gfid) == top.gfid
    assert table.child(sub.gfid, b"") is None and table.child(sub.gfid, b"loop") is None
    assert table.child(top.gfid, b"") is None
    assert table.ancestors(sub.gfid) == [top.gfid]
    table.set_parent(sub.gfid, sub.gfid)                # a root's '..' is itself
    assert table.parent_of(sub.gfid) == top.gfid
    table.rename(top.gfid, b"sub", sub.gfid, b"again", sub.gfid)
    assert table.parent_of(sub.gfid) is None and table.child(sub.gfid, b"again") is None
    assert table.stats()["dentries"] == 0
