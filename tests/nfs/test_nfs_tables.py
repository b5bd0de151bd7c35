"""The inode table (LRU, pinning, dentries) and the fd cache (reuse, refcounts, eviction)."""
import errno
import os
import threading

import pytest

from glusterfsd.xlator import IA_DIR, IA_LNK, IA_REG, Fd, Iatt
from nfs.fdcache import FdCache
from nfs.inode import InodeTable


def iatt(n: int, kind=IA_REG) -> Iatt:
    gfid = n.to_bytes(16, "big")
    return Iatt(gfid, kind, 0o644, 1, 0, 0, 0, 0, 0, 0, 1, n, 0, 0, 0)


def gfid(n: int) -> bytes:
    return n.to_bytes(16, "big")


# --- inode table --------------------------------------------------------------------
def test_lru_evicts_the_least_recently_used():
    table = InodeTable(3)
    for n in (1, 2, 3):
        table.link(iatt(n))
    table.get(gfid(1))                  # 1 is now the youngest
    table.link(iatt(4))
    assert gfid(2) not in table and gfid(1) in table and len(table) == 3
    assert table.stats()["evictions"] == 1


def test_pinned_inodes_are_never_evicted():
    table = InodeTable(2)
    table.link(iatt(1, IA_DIR), pin=True)
    for n in range(2, 50):
        table.link(iatt(n))
    assert gfid(1) in table and len(table) == 2
    table.forget(gfid(1))
    assert gfid(1) in table


def test_dentries_follow_link_unlink_rename():
    table = InodeTable(100)
    table.link(iatt(1, IA_DIR))
    table.link(iatt(2, IA_DIR))
    table.link(iatt(10), gfid(1), b"a")
    assert table.child(gfid(1), b"a") == gfid(10)
    assert table.parent_of(gfid(10)) == gfid(1)
    table.rename(gfid(1), b"a", gfid(2), b"b", None)
    assert table.child(gfid(1), b"a") is None and table.child(gfid(2), b"b") == gfid(10)
    assert table.parent_of(gfid(10)) == gfid(2)
    assert table.unlink(gfid(2), b"b") == gfid(10)
    assert table.parent_of(gfid(10)) is None


def test_rename_over_an_existing_name_detaches_the_old_inode():
    table = InodeTable(100)
    table.link(iatt(10), gfid(1), b"a")
    table.link(iatt(11), gfid(1), b"b")
    table.rename(gfid(1), b"a", gfid(1), b"b", gfid(10))
    assert table.child(gfid(1), b"b") == gfid(10)
    assert table.parent_of(gfid(11)) is None


def test_ancestors_and_eviction_drop_dentries():
    table = InodeTable(3)
    table.link(iatt(1, IA_DIR))
    table.link(iatt(2, IA_DIR), gfid(1), b"d")
    table.link(iatt(3), gfid(2), b"f")
    assert table.ancestors(gfid(3)) == [gfid(2), gfid(1)]
    table.link(iatt(4))                 # evicts 1: the chain breaks
    assert table.ancestors(gfid(3)) is None
    table.forget(gfid(2))
    assert table.child(gfid(1), b"d") is None


def _state(table: InodeTable) -> tuple:
    def fields(g, i):           # an Inode, or link_children's light record (type, parent, name)
        return (g, *i) if isinstance(i, tuple) else (g, i.type, i.parent, i.name)
    return [fields(g, i) for g, i in table._inodes.items()], dict(table._dentries)


@pytest.mark.parametrize("limit", [100, 6])
def test_link_children_records_what_link_would(limit):
    """link_children spells out the usual cases (new entry, same entry again); the
    table must end as one link() per child leaves it, also when it has to evict."""
    d, other = iatt(50, IA_DIR), iatt(51, IA_DIR)
    batches = [
        [(iatt(1), b"a"), (iatt(2), b"b"), (d, b"."), (iatt(60, IA_DIR), b"..")],
        [(iatt(2), b"b"), (iatt(1), b"a"), (iatt(3), b"c")],          # seen again
        [(iatt(1), b"renamed"), (iatt(4), b"d"), (iatt(5), b"e"), (iatt(6), b"f")],
    ]
    one_by_one, together = InodeTable(limit), InodeTable(limit)
    for table in (one_by_one, together):
        table.link(d, pin=True)
        table.link(other)
        table.link(iatt(3), other.gfid, b"c")      # known elsewhere: its dentry moves
    for batch in batches:
        for child, name in batch:
            one_by_one.link(child, d.gfid, name)
        together.link_children(d.gfid, [(child.gfid, child.type, name) for child, name in batch])
        if limit >= 100:
            assert _state(together) == _state(one_by_one)
    if limit < 100:      # trimmed once per batch: the limit holds, the pinned and the
        assert len(together) == limit                   # batch's own entries stay
        assert d.gfid in together
        for child, name in batches[-1]:
            assert together.child(d.gfid, name) == child.gfid
    assert together.child(d.gfid, b"renamed") == gfid(1)
    assert together.child(d.gfid, b"a") is None and together.child(other.gfid, b"c") is None


def test_limit_must_be_positive():
    with pytest.raises(ValueError):
        InodeTable(0)


# --- fd cache -------------------------------------------------------------------------
class FakeVolume:
    """Counts opens and releases; `refuse_rw` makes O_RDWR fail like a read-only store."""

    def __init__(self, refuse_rw=False):
        self.opened, self.released = [], []
        self.refuse_rw = refuse_rw
        self.lock = threading.Lock()

    def open(self, caller, gfid, flags):
        if self.refuse_rw and flags & os.O_ACCMODE == os.O_RDWR:
            raise OSError(errno.EROFS, "read-only")
        with self.lock:
            fd = Fd(gfid, flags)
            self.opened.append(fd)
            return fd

    def release(self, fd):
        with self.lock:
            self.released.append(fd)


def test_fds_are_reused_across_calls():
    vol, cache = FakeVolume(), FdCache(8)
    with cache.use(vol, gfid(1), writable=False) as first:
        pass
    with cache.use(vol, gfid(1), writable=True) as second:
        pass
    assert first is second and len(vol.opened) == 1 and first.flags & os.O_ACCMODE == os.O_RDWR
    assert cache.stats()["hits"] == 1


def test_read_only_storage_falls_back_to_rdonly_and_write_fails():
    vol, cache = FakeVolume(refuse_rw=True), FdCache(8)
    with cache.use(vol, gfid(1), writable=False) as fd:
        assert fd.flags == os.O_RDONLY
    with pytest.raises(OSError) as err:
        with cache.use(vol, gfid(1), writable=True):
            pass
    assert err.value.errno == errno.EROFS


def test_eviction_and_drop_release_only_idle_fds():
    vol, cache = FakeVolume(), FdCache(2)
    with cache.use(vol, gfid(1), writable=False) as busy:
        cache.drop(vol, gfid(1))
        assert busy not in vol.released         # still in use
    assert busy in vol.released                 # released when handed back
    for n in (2, 3, 4):
        with cache.use(vol, gfid(n), writable=False):
            pass
    assert len(cache) == 2 and len(vol.released) == 2


def test_adopt_and_close_all():
    vol, cache = FakeVolume(), FdCache(8)
    adopted = Fd(gfid(9), os.O_RDWR)
    cache.adopt(vol, gfid(9), adopted, writable=True)
    with cache.use(vol, gfid(9), writable=True) as fd:
        assert fd is adopted
    cache.close_all()
    assert adopted in vol.released and len(cache) == 0


def test_idle_fds_are_closed_after_the_timeout(monkeypatch):
    vol, cache = FakeVolume(), FdCache(8, idle_seconds=10)
    clock = [1000.0]
    monkeypatch.setattr("nfs.fdcache.time.monotonic", lambda: clock[0])
    cache._last_sweep = clock[0]
    with cache.use(vol, gfid(1), writable=False):
        pass
    clock[0] += 30
    with cache.use(vol, gfid(2), writable=False):
        pass
    assert len(vol.released) == 1 and vol.released[0].gfid == gfid(1)


def test_each_volume_has_its_own_table():
    from nfs.inode import InodeTables
    tables = InodeTables(10)
    tables.table("gv0").link(iatt(1, IA_DIR))
    assert gfid(1) in tables.table("gv0") and gfid(1) not in tables.table("gv1")
    assert tables.table("gv0") is tables.table("gv0")
    stats = tables.stats()
    assert stats["inodes"] == 1 and stats["volumes"] == 2 and stats["limit_per_volume"] == 10


def test_listed_children_answer_as_inodes():
    """link_children keeps new children as light records: every reader and
    writer must see them as the Inodes link() would have made, in the same
    LRU place."""
    d = iatt(50, IA_DIR)
    table = InodeTable(5)
    table.link(d, pin=True)
    table.link_children(d.gfid, [(gfid(n), IA_REG, b"c%d" % n) for n in (1, 2, 3)]
                        + [(gfid(4), IA_DIR, b"sub")])
    assert len(table) == 5 and gfid(2) in table
    assert table.parent_of(gfid(1)) == d.gfid and table.ancestors(gfid(4)) == [d.gfid]
    inode = table.get(gfid(2))
    assert (inode.gfid, inode.type, inode.parent, inode.name) == (gfid(2), IA_REG, d.gfid, b"c2")
    assert table.get(gfid(2)) is inode                      # made once
    table.link_children(d.gfid, [(gfid(3), IA_LNK, b"c3")])  # a type change is kept
    assert table.get(gfid(3)).type == IA_LNK
    assert table.unlink(d.gfid, b"c1") == gfid(1) and table.parent_of(gfid(1)) is None
    table.link_children(d.gfid, [(gfid(6), IA_REG, b"c6")])
    table.rename(d.gfid, b"c6", d.gfid, b"moved", None)
    assert table.child(d.gfid, b"moved") == gfid(6) and table.get(gfid(6)).name == b"moved"
    table.forget(gfid(4))
    assert gfid(4) not in table and table.child(d.gfid, b"sub") is None
    # the oldest go first, light or not; the pinned directory stays
    table.link_children(d.gfid, [(gfid(n), IA_REG, b"c%d" % n) for n in (7, 8, 9, 10)])
    assert len(table) == 5 and d.gfid in table
    assert [g in table for g in (gfid(1), gfid(2), gfid(3), gfid(6))] == [False] * 4
    assert table.child(d.gfid, b"c2") is None and table.child(d.gfid, b"c10") == gfid(10)
    assert table.set_parent(gfid(7), gfid(8)) is None and table.parent_of(gfid(7)) == gfid(8)
    assert table.child(d.gfid, b"c7") is None


@pytest.mark.parametrize("limit", [100, 5])
def test_link_child_records_what_link_would(limit):
    """LOOKUP's link_child spells out the name-seen-again case; the table must end
    as link() leaves it after every step (light records and Inodes alike)."""
    d, other = iatt(50, IA_DIR), iatt(51, IA_DIR)
    steps = [(iatt(1), d, b"a"), (iatt(1), d, b"a"), (iatt(1, IA_DIR), d, b"a"),
             (iatt(2), d, b"a"), (iatt(1), d, b"a"), (iatt(1), other, b"a"),
             (iatt(3), d, b"."), (iatt(3), d, b".."), (d, d, b"x"), (iatt(4), d, b"b"),
             (iatt(5), d, b"c"), (iatt(6), d, b"listed"), (iatt(6, IA_LNK), d, b"listed"),
             (iatt(2), d, b"a"), (iatt(7), d, b"g")]
    by_link, by_child = InodeTable(limit), InodeTable(limit)
    for table in (by_link, by_child):
        table.link(d, pin=True)
        table.link(other)
        table.link_children(d.gfid, [(gfid(6), IA_REG, b"listed"), (gfid(2), IA_REG, b"l2")])
    for child, parent, name in steps:
        by_link.link(child, parent.gfid, name)
        by_child.link_child(parent.gfid, child.gfid, child.type, name)
        assert _state(by_child) == _state(by_link), (child.gfid, name)


def test_type_of_answers_without_making_an_inode():
    d = iatt(50, IA_DIR)
    table = InodeTable(10)
    table.link(d)
    table.link_children(d.gfid, [(gfid(1), IA_LNK, b"l"), (gfid(2), IA_REG, b"r")])
    assert table.type_of(gfid(1)) == IA_LNK
    assert table._inodes[gfid(1)].__class__ is tuple          # still a light record
    assert list(table._inodes)[-1] == gfid(1)                 # and the youngest now
    assert table.type_of(d.gfid) == IA_DIR
    assert table.type_of(gfid(9)) is None
    stats = table.stats()
    assert (stats["hits"], stats["misses"]) == (2, 1)
