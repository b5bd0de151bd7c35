"""The `ctime_gfids` snapshot: a restarted store lists files it vouched for
before without reading their gfid xattrs, and trusts nothing that changed
since (ctime), nothing of another file system, no directory, and no damaged
or future-dated snapshot."""
from __future__ import annotations

import logging
import os
import shutil
import time

import pytest

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID
from xlators.storage import ctime_gfids, gfid_snapshot
from xlators.storage.ctime_gfids import CtimeGfids
from xlators.storage.gfid_snapshot import SNAPSHOT_NAME, decode, encode
from xlators.storage.identity import reset_thread

from storage_listing import listing, make_files

NS = 1_000_000_000
LOG = logging.getLogger("test-gfid-snapshot")


class Stat:
    def __init__(self, ino, ctime, dev=7):
        self.st_ino, self.st_ctime_ns, self.st_dev = ino, ctime, dev


@pytest.fixture
def settled_at_once(monkeypatch):
    """Every ctime counts as settled, and one new entry makes a save due."""
    monkeypatch.setattr(ctime_gfids, "SETTLED_NS", 0)
    monkeypatch.setattr(gfid_snapshot, "MIN_NEW", 1)


def snapshot_path(store) -> bytes:
    return os.path.join(store.directory.encode(), b".glusterfs", SNAPSHOT_NAME)


def list_and_save(store, gfid) -> dict:
    entries = listing(store, gfid)
    store.gfid_snapshots.wait(10)
    assert store.gfid_snapshots.saves == 1
    return entries


def watch_gfid_reads(store, monkeypatch) -> list:
    """Names whose gfid the store reads from the index (not from its cache)."""
    read = []
    real = store.index.vouched_gfid_at
    monkeypatch.setattr(store.index, "vouched_gfid_at",
                        lambda dir_fd, name, st, parent: read.append(name) or
                        real(dir_fd, name, st, parent))
    return read


# --- the file format ----------------------------------------------------------
def records(count, ctime=10 * NS):
    return [(ino, ctime_gfids.STAMP.pack(ctime, 7) + ino.to_bytes(16, "big"))
            for ino in range(1, count + 1)]


def test_a_snapshot_reads_back_as_written():
    assert decode(encode(records(100), 1234, 7), capacity=100) == (1234, 7, records(100))


@pytest.mark.parametrize("damage", ["magic", "truncated", "flipped", "too many", "empty"])
def test_a_damaged_snapshot_is_refused(damage):
    data = bytearray(encode(records(10), 1234, 7))
    if damage == "magic":
        data[0:8] = b"GNFSCTG0"
    elif damage == "truncated":
        del data[-7:]
    elif damage == "flipped":
        data[40] ^= 1
    elif damage == "empty":
        data = bytearray()
    with pytest.raises(ValueError):
        decode(bytes(data), capacity=5 if damage == "too many" else 100)


def test_only_entries_of_the_given_file_system_are_kept():
    cache = CtimeGfids()
    now = time.time_ns()
    cache.remember(Stat(1, now - 5 * NS, dev=7), b"a" * 16, b"p", b"n", False, now)
    cache.remember(Stat(2, now - 5 * NS, dev=8), b"b" * 16, b"p", b"n", False, now)
    cache.remember(Stat(3, now - 5 * NS, dev=7), b"c" * 16, b"p", b"d", True, now)  # a dir
    assert [ino for ino, _ in cache.records(7)] == [1]
    assert [ino for ino, _ in cache.records(8)] == [2]
    again = CtimeGfids()
    assert again.restore(cache.records(7)) == 1
    assert again.gfid(Stat(1, now - 5 * NS, dev=7), b"x", b"y") == b"a" * 16
    assert again.gfid(Stat(3, now - 5 * NS, dev=7), b"p", b"d") is None


def test_restore_keeps_what_was_remembered_since_and_the_capacity():
    cache = CtimeGfids(capacity=3)
    now = time.time_ns()
    cache.remember(Stat(1, now - 9 * NS), b"n" * 16, b"p", b"n", False, now)
    old = ctime_gfids.STAMP.pack(now - 5 * NS, 7) + b"o" * 16
    taken = cache.restore([(ino, old) for ino in range(1, 10)])
    assert taken == 2 and len(cache) == 3
    assert cache.gfid(Stat(1, now - 9 * NS), b"p", b"n") == b"n" * 16
    empty = CtimeGfids(capacity=3)
    assert empty.restore([(ino, old) for ino in range(1, 10)]) == 3


# --- a restarted store ------------------------------------------------------------
def test_a_restarted_store_lists_without_reading_gfids(make_store, settled_at_once, monkeypatch):
    store = make_store()
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    made = make_files(store, d.gfid, 30)
    list_and_save(store, d.gfid)
    assert os.path.exists(snapshot_path(store))
    store.fini()
    again = make_store(directory=store.directory)
    read = watch_gfid_reads(again, monkeypatch)
    entries = listing(again, d.gfid)
    assert read == []
    for name, iatt in made.items():
        assert entries[name].iatt.gfid == iatt.gfid
        assert entries[name].iatt == again.stat(ROOT, iatt.gfid)


def test_what_changed_while_no_server_ran_is_checked_again(make_store, settled_at_once,
                                                           monkeypatch):
    store = make_store()
    made = make_files(store, ROOT_GFID, 5)
    list_and_save(store, ROOT_GFID)
    store.fini()
    export = store.directory
    os.chmod(os.path.join(export, "f001"), 0o600)                       # ctime moves
    shutil.copy2(os.path.join(export, "f002"), os.path.join(export, "copy"))  # xattrs too
    os.rename(os.path.join(export, "copy"), os.path.join(export, "f002"))     # a new inode
    shutil.copy2(os.path.join(export, "f003"), os.path.join(export, "copy3"))  # f003's gfid
    again = make_store(directory=export)
    read = watch_gfid_reads(again, monkeypatch)
    entries = listing(again, ROOT_GFID)
    assert sorted(read) == [b"copy3", b"f001", b"f002"]
    assert entries[b"f001"].iatt.gfid == made[b"f001"].gfid
    assert entries[b"f001"].iatt.mode == 0o600
    # the copy took over the name (heal decides which gfid it carries on with):
    # whatever the listing hands out resolves to the copy
    assert again.stat(ROOT, entries[b"f002"].iatt.gfid).ino == entries[b"f002"].iatt.ino
    assert entries[b"f003"].iatt.gfid == made[b"f003"].gfid
    assert entries[b"copy3"].iatt.gfid not in (None, made[b"f003"].gfid)


def test_directories_are_not_kept(make_store, settled_at_once, monkeypatch):
    store = make_store()
    sub, _, _ = store.mkdir(ROOT, ROOT_GFID, b"sub", 0o755)
    make_files(store, ROOT_GFID, 2)
    list_and_save(store, ROOT_GFID)
    store.fini()
    again = make_store(directory=store.directory)
    read = watch_gfid_reads(again, monkeypatch)
    entries = listing(again, ROOT_GFID)
    assert read == [b"sub"]
    assert entries[b"sub"].iatt.gfid == sub.gfid


@pytest.mark.parametrize("spoil", ["damaged", "future", "other device", "other file"])
def test_a_bad_snapshot_is_ignored_and_replaced(make_store, settled_at_once, monkeypatch, spoil):
    store = make_store()
    made = make_files(store, ROOT_GFID, 4)
    list_and_save(store, ROOT_GFID)
    store.fini()
    path = snapshot_path(store)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if spoil == "damaged":
        data[-1] ^= 0xFF
    elif spoil == "future":
        _, dev, kept = decode(bytes(data), 100)
        data = bytearray(encode(kept, time.time_ns() + 3600 * NS, dev))
    elif spoil == "other device":
        saved_at, dev, kept = decode(bytes(data), 100)
        data = bytearray(encode(kept, saved_at, dev + 1))
    else:
        os.remove(path)
        os.mkdir(path)          # not a file at all
    if spoil != "other file":
        with open(path, "wb") as f:
            f.write(data)
    again = make_store(directory=store.directory)
    read = watch_gfid_reads(again, monkeypatch)
    entries = listing(again, ROOT_GFID)
    assert sorted(read) == sorted(made)
    assert {n: entries[n].iatt.gfid for n in made} == {n: i.gfid for n, i in made.items()}
    again.gfid_snapshots.wait(10)
    if spoil != "other file":
        assert again.gfid_snapshots.saves == 1
        taken = gfid_snapshot.load(CtimeGfids(), again.index.index_fd,
                                   os.stat(again.directory).st_dev, LOG)
        assert taken == len(made)


def test_no_snapshot_is_saved_for_a_read_only_store(make_store, settled_at_once):
    store = make_store()
    make_files(store, ROOT_GFID, 3)
    store.fini()
    ro = make_store({"read-only": "on"}, directory=store.directory)
    listing(ro, ROOT_GFID)
    ro.gfid_snapshots.wait(10)
    assert ro.gfid_snapshots.saves == 0
    assert not os.path.exists(snapshot_path(ro))


def test_saves_wait_for_enough_new_entries(make_store, monkeypatch):
    monkeypatch.setattr(ctime_gfids, "SETTLED_NS", 0)
    monkeypatch.setattr(gfid_snapshot, "MIN_NEW", 10)
    store = make_store()
    make_files(store, ROOT_GFID, 3)
    listing(store, ROOT_GFID)
    store.gfid_snapshots.wait(10)
    assert store.gfid_snapshots.saves == 0       # 3 new entries: not worth a save
    make_files(store, ROOT_GFID, 12)
    listing(store, ROOT_GFID)
    store.gfid_snapshots.wait(10)
    assert store.gfid_snapshots.saves == 1


def index_files(store) -> set:
    return {n for n in os.listdir(os.path.join(store.directory, ".glusterfs")) if len(n) != 2}


@pytest.mark.parametrize("unnamed_files", [True, False])
def test_a_save_leaves_only_the_snapshot(make_store, settled_at_once, monkeypatch, unnamed_files):
    store = make_store()
    made = make_files(store, ROOT_GFID, 4)
    listing(store, ROOT_GFID)
    store.gfid_snapshots.wait(10)       # the save that listing started
    if not unnamed_files:       # a file system without O_TMPFILE: a named temporary file
        real_open = os.open

        def no_tmpfile(path, flags, *args, **kwargs):
            if flags & os.O_TMPFILE == os.O_TMPFILE:
                raise OSError(95, "Operation not supported")
            return real_open(path, flags, *args, **kwargs)
        monkeypatch.setattr(gfid_snapshot.os, "open", no_tmpfile)
    written = gfid_snapshot.save(store.ctime_gfids, store.index.index_fd, store._root_dev)
    assert written == len(made)
    assert index_files(store) == {SNAPSHOT_NAME.decode()}


@pytest.mark.parametrize("unnamed_files", [True, False])
def test_a_failed_save_keeps_the_old_snapshot_and_no_temporary(make_store, settled_at_once,
                                                               monkeypatch, unnamed_files):
    store = make_store()
    make_files(store, ROOT_GFID, 4)
    list_and_save(store, ROOT_GFID)
    with open(snapshot_path(store), "rb") as f:
        before = f.read()
    real_open = os.open
    if not unnamed_files:
        def no_tmpfile(path, flags, *args, **kwargs):
            if flags & os.O_TMPFILE == os.O_TMPFILE:
                raise OSError(95, "Operation not supported")
            return real_open(path, flags, *args, **kwargs)
        monkeypatch.setattr(gfid_snapshot.os, "open", no_tmpfile)

    def full(fd, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(gfid_snapshot.os, "write", full)
    with pytest.raises(OSError):
        gfid_snapshot.save(store.ctime_gfids, store.index.index_fd, store._root_dev)
    assert index_files(store) == {SNAPSHOT_NAME.decode()}
    with open(snapshot_path(store), "rb") as f:
        assert f.read() == before


def test_a_save_started_by_a_users_listing_is_made_as_the_server(make_store, settled_at_once):
    """The save thread starts with the identity of the stage thread that
    started it (Linux threads inherit fsuid): it must act as the server."""
    from glusterfsd.xlator import Caller
    user = Caller(1000, 1000, (1000,))
    store = make_store()
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"pub", 0o755)
    made = make_files(store, d.gfid, 3)
    entries = listing(store, d.gfid, caller=user)
    assert {n: entries[n].iatt.gfid for n in made} == {n: i.gfid for n, i in made.items()}
    store.gfid_snapshots.wait(10)
    assert store.gfid_snapshots.saves == 1
    reset_thread()              # the listing left the user's identity on this thread
    assert os.path.exists(snapshot_path(store))


def test_finish_listings_saves_what_is_new_and_closes_parked_streams(make_store, monkeypatch):
    monkeypatch.setattr(ctime_gfids, "SETTLED_NS", 0)
    monkeypatch.setattr(gfid_snapshot, "MIN_NEW", 3)
    store = make_store()
    made = make_files(store, ROOT_GFID, 40)
    listing(store, ROOT_GFID)
    store.gfid_snapshots.wait(10)
    assert store.gfid_snapshots.saves == 1
    fd, extra, _, _ = store.create(ROOT, ROOT_GFID, b"later", os.O_RDWR, 0o644)
    store.release(fd)
    os.utime(os.path.join(store.directory, "f001"))       # remembered anew after this
    os.utime(os.path.join(store.directory, "f002"))
    listing(store, ROOT_GFID)
    assert store.gfid_snapshots.saves == 1                  # too soon after the first
    d = store.opendir(ROOT, ROOT_GFID)
    store.readdirp(ROOT, d, 0, 600)                         # leaves a stream parked
    store.release(d)
    assert len(store.parked_streams) == 1
    store.finish_listings()
    assert len(store.parked_streams) == 0
    assert store.gfid_snapshots.saves == 2
    taken = CtimeGfids()
    gfid_snapshot.load(taken, store.index.index_fd, store._root_dev, LOG)
    assert len(taken) == len(made) + 1


def test_finish_listings_of_a_store_that_never_listed_makes_nothing(make_store):
    store = make_store()
    store.finish_listings()
    assert "gfid_snapshots" not in store.__dict__ and "parked_streams" not in store.__dict__
    assert not os.path.exists(snapshot_path(store))


def test_fini_brings_the_snapshot_up_to_date(make_store, monkeypatch):
    """A worker leaves with os._exit after fini: the save of its last listing must
    be made there, not left to a thread that dies with it."""
    monkeypatch.setattr(ctime_gfids, "SETTLED_NS", 0)
    monkeypatch.setattr(gfid_snapshot, "MIN_NEW", 3)
    store = make_store()
    made = make_files(store, ROOT_GFID, 10)
    listing(store, ROOT_GFID)
    store.gfid_snapshots.wait(10)
    for name in (b"late1", b"late2", b"late3"):
        fd, _, _, _ = store.create(ROOT, ROOT_GFID, name, os.O_RDWR, 0o644)
        store.release(fd)
    listing(store, ROOT_GFID)
    assert store.gfid_snapshots.saves == 1                  # too soon after the first
    dev = store._root_dev
    store.fini()
    index_fd = os.open(os.path.join(store.directory, ".glusterfs"), os.O_RDONLY)
    try:
        taken = CtimeGfids()
        gfid_snapshot.load(taken, index_fd, dev, LOG)
    finally:
        os.close(index_fd)
    assert len(taken) == len(made) + 3
