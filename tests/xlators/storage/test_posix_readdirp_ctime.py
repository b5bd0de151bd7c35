"""READDIRPLUS takes an entry's gfid from `ctime_gfids` when the server vouched
for that inode before and its ctime has not moved since: no xattr read.  Any
change of the object (its gfid xattr, its links, a rename) moves its ctime and
sends it through the full check again; objects changed within the last
SETTLED_NS are never remembered (coarse timestamps could repeat)."""
from __future__ import annotations

import os
import time
from types import SimpleNamespace

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID
from xlators.storage import ctime_gfids
from xlators.storage.ctime_gfids import CtimeGfids

from storage_listing import listing as read_all

NS = 1_000_000_000


def st(ino, ctime, dev=1):
    return SimpleNamespace(st_ino=ino, st_ctime_ns=ctime, st_dev=dev)


def test_remembers_only_settled_ctimes():
    cache = CtimeGfids()
    now = time.time_ns()
    cache.remember(st(1, now - ctime_gfids.SETTLED_NS + NS // 10), b"g" * 16, b"p", b"n", False, now)
    assert cache.gfid(st(1, now - ctime_gfids.SETTLED_NS + NS // 10), b"p", b"n") is None
    old = now - 2 * ctime_gfids.SETTLED_NS
    cache.remember(st(2, old), b"h" * 16, b"p", b"n", False, now)
    assert cache.gfid(st(2, old), b"other-parent", b"other-name") == b"h" * 16  # a file: any name
    assert cache.gfid(st(2, old + 1), b"p", b"n") is None          # changed since
    assert cache.gfid(st(2, old, dev=2), b"p", b"n") is None       # another file system
    assert cache.gfid(st(3, old), b"p", b"n") is None


def test_a_directory_is_remembered_under_its_parent_and_name():
    cache = CtimeGfids()
    now = time.time_ns()
    old = now - 2 * ctime_gfids.SETTLED_NS
    cache.remember(st(5, old), b"d" * 16, b"parent", b"name", True, now)
    assert cache.gfid(st(5, old), b"parent", b"name") == b"d" * 16
    assert cache.gfid(st(5, old), b"parent", b"renamed") is None
    assert cache.gfid(st(5, old), b"elsewhere", b"name") is None


def test_the_cache_is_bounded():
    cache = CtimeGfids(capacity=64)
    now = time.time_ns()
    for ino in range(1000):
        cache.remember(st(ino, 1), ino.to_bytes(16, "big"), b"p", b"n", False, now)
        assert len(cache) <= 64
    assert cache.gfid(st(999, 1), b"p", b"n") == (999).to_bytes(16, "big")


def listing(store, gfid):
    return read_all(store, gfid, size=2048)   # small replies: several per listing


def test_an_unchanged_entry_costs_no_gfid_read_and_a_changed_one_does(make_store, export,
                                                                     monkeypatch):
    monkeypatch.setattr(ctime_gfids, "SETTLED_NS", 0)   # every ctime counts as settled
    store = make_store()
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    for i in range(40):
        fd, _, _, _ = store.create(ROOT, d.gfid, b"f%02d" % i, os.O_RDWR, 0o640)
        store.release(fd)
    store.mkdir(ROOT, d.gfid, b"sub", 0o755)
    first = listing(store, d.gfid)
    checked = []
    real = store.index.vouched_gfid_at
    monkeypatch.setattr(store.index, "vouched_gfid_at",
                        lambda dir_fd, name, st, parent: checked.append(name) or
                        real(dir_fd, name, st, parent))
    second = listing(store, d.gfid)
    assert checked == []
    assert {n: e.iatt.gfid for n, e in second.items() if e.iatt} == \
        {n: e.iatt.gfid for n, e in first.items() if e.iatt}
    assert second[b"f07"].iatt == store.stat(ROOT, first[b"f07"].iatt.gfid)
    os.chmod(os.path.join(export, "d", "f07"), 0o600)           # behind the server's back
    os.rename(os.path.join(export, "d", "f08"), os.path.join(export, "d", "g08"))
    third = listing(store, d.gfid)
    assert sorted(checked) == [b"f07", b"g08"]                  # their ctimes moved
    assert third[b"f07"].iatt.mode == 0o600
    assert third[b"g08"].iatt.gfid == first[b"f08"].iatt.gfid


def test_a_copy_with_a_remembered_gfid_still_gets_its_own(make_store, export, monkeypatch):
    """The remembered gfid belongs to an inode: a copy carrying the same xattr
    is another inode, so it takes the full path (and heal gives it a new gfid)."""
    import shutil
    monkeypatch.setattr(ctime_gfids, "SETTLED_NS", 0)
    store = make_store()
    fd, original, _, _ = store.create(ROOT, ROOT_GFID, b"orig", os.O_RDWR, 0o644)
    store.release(fd)
    listing(store, ROOT_GFID)                                    # remembered now
    shutil.copy2(os.path.join(export, "orig"), os.path.join(export, "copy"))  # xattrs too
    entries = listing(store, ROOT_GFID)
    assert entries[b"orig"].iatt.gfid == original.gfid
    assert entries[b"copy"].iatt.gfid not in (None, original.gfid)


def test_a_file_with_its_index_link_is_vouched_without_reading_the_index(make_store, export,
                                                                         monkeypatch):
    """After a restart (nothing remembered): a regular file with two or more links
    (its name and its index hard link) costs no lookup in .glusterfs; a file with
    one link (a copy made on the brick, xattrs and all) is still checked, and healed."""
    import shutil
    store = make_store()
    fd, original, _, _ = store.create(ROOT, ROOT_GFID, b"orig", os.O_RDWR, 0o644)
    store.release(fd)
    shutil.copy2(os.path.join(export, "orig"), os.path.join(export, "copy"))  # one link
    restarted = make_store(directory=export)
    looked = []
    real = restarted.index._entry_is
    monkeypatch.setattr(restarted.index, "_entry_is",
                        lambda gfid, key: looked.append(gfid) or real(gfid, key))
    entries = listing(restarted, ROOT_GFID)
    assert entries[b"orig"].iatt.gfid == original.gfid
    assert looked == [original.gfid]                 # only for the copy, which carries it
    assert entries[b"copy"].iatt.gfid not in (None, original.gfid)
