"""READDIRPLUS asks the storage only for what the reply can still hold, and
records the listed entries in the inode table (one lock acquisition per reply)."""
from glusterfsd.xlator import IA_REG, Iatt
from nfs.inode import InodeTable
from nfs3_harness import OK, fh3


def fill(server, root, count):
    with server.client() as nfs:
        d = nfs.new_dir(root, b"many")
    for i in range(count):
        (server.brick() / "many" / f"entry-{i:05d}").touch()
    return d


def test_each_reply_costs_one_storage_batch(server, root, nfs, monkeypatch):
    d = fill(server, root, 600)
    posix = server.xlator.children[0]
    calls = []
    real = posix.readdirp
    monkeypatch.setattr(posix, "readdirp",
                        lambda caller, fd, cookie, size: calls.append(size) or real(caller, fd, cookie, size))
    names, cookie, verf, replies = set(), 0, bytes(8), 0
    for _ in range(1000):
        status, res = nfs.call("READDIRPLUS", dir=fh3(d), cookie=cookie, cookieverf=verf,
                               dircount=8192, maxcount=8192)
        assert status == OK
        replies += 1
        entries = res.reply.entries
        names.update(bytes(e.name) for e in entries)
        assert all(e.name_attributes[0] and e.name_handle[0] for e in entries)
        if res.reply.eof:
            break
        assert entries
        cookie, verf = entries[-1].cookie, bytes(res.cookieverf)
    assert len(names) == 602 and replies > 10
    assert len(calls) == replies        # no batch fetched and then thrown away


def test_listed_entries_are_in_the_inode_table(server, root, nfs):
    d = fill(server, root, 50)
    status, res = nfs.call("READDIRPLUS", dir=fh3(d), cookie=0, cookieverf=bytes(8),
                           dircount=65536, maxcount=65536)
    assert status == OK and res.reply.eof
    table = server.xlator.inodes.table(server.xlator.children[0].name)
    for entry in res.reply.entries:
        name = bytes(entry.name)
        if name in (b".", b".."):
            continue
        gfid = bytes(entry.name_handle[1].data)[20:36]
        assert table.child(bytes(d)[20:36], name) == gfid
        status, attrs = nfs.getattr(bytes(entry.name_handle[1].data))
        assert status == OK and attrs.obj_attributes.fileid == entry.fileid


def _iatt(n: int) -> Iatt:
    return Iatt(bytes([n]) * 16, IA_REG, 0o644, 1, 0, 0, n, 0, 0, 0, 1, n, 0, 0, 0)


def test_link_children_is_link_per_child():
    one, many = InodeTable(8), InodeTable(8)
    parent = b"\x09" * 16
    children = [(_iatt(n), b"c%d" % n) for n in range(1, 12)]   # more than the limit
    for iatt, name in children:
        one.link(iatt, parent, name)
    many.link_children(parent, [(iatt.gfid, iatt.type, name) for iatt, name in children])
    assert len(one) == len(many) == 8
    for iatt, name in children:
        assert one.child(parent, name) == many.child(parent, name)
        assert (iatt.gfid in one) == (iatt.gfid in many)
    many.link_children(parent, [])
    assert len(many) == 8
