"""Review findings 10 and 11: entry ops are committed to stable storage before
they return (option metadata-sync), and their wcc pre/post attributes are
taken atomically with the change (per-directory locks)."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from glusterfsd.options import OptionError, OptionTable
from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Caller
from xlators.storage.dir_locks import DirLocks
from xlators.storage.gfid_layout import entry_path
from xlators.storage.metadata_sync import mode_of
from storage_threads import run_in_threads
from xlators.storage.identity import reset_thread
from xlators.storage.posix import PosixXlator

USER = Caller(1000, 1000, (1000,))


def bucket(store, gfid: bytes) -> str:
    return os.path.join(store.directory, ".glusterfs", entry_path(gfid).decode().rsplit("/", 1)[0])


def pub_dir(store, name=b"pub"):
    iatt, _, _ = store.mkdir(ROOT, ROOT_GFID, name, 0o777)
    return iatt


# --- finding 10: metadata-sync -------------------------------------------------------
def test_create_and_mkdir_commit_the_object_its_index_entry_and_the_parent(store, synced):
    pub = pub_dir(store)
    top = store.directory
    if entry_path(pub.gfid)[:5] != b"00/00":  # a fresh store has only the root's xx/yy
        # the new xx/yy is committed in its xx; xx itself was made (and synced) at init
        assert os.path.join(top, ".glusterfs", entry_path(pub.gfid)[:2].decode()) in synced
        assert os.path.join(top, ".glusterfs") not in synced
    assert {os.path.join(top, "pub"), bucket(store, pub.gfid), top} <= synced
    synced.clear()
    fd, f, _, _ = store.create(USER, pub.gfid, b"file", os.O_RDWR, 0o600)
    store.release(fd)
    assert {os.path.join(top, "pub", "file"), bucket(store, f.gfid),
            os.path.join(top, "pub")} <= synced


def test_create_of_an_existing_file_syncs_no_directory(store, synced):
    pub = pub_dir(store)
    fd, f, _, _ = store.create(ROOT, pub.gfid, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    synced.clear()
    fd, again, _, _ = store.create(ROOT, pub.gfid, b"f", os.O_RDWR, 0o644)   # UNCHECKED
    store.release(fd)
    assert again.gfid == f.gfid and synced == set()
    fd, _, _, _ = store.create(ROOT, pub.gfid, b"f", os.O_RDWR | os.O_TRUNC, 0o644)
    store.release(fd)
    assert synced == {os.path.join(store.directory, "pub", "f")}   # only the truncated file


def test_every_entry_op_commits_its_directories(store, synced):
    top = store.directory
    pub, other = pub_dir(store), pub_dir(store, b"other")
    fd, f, _, _ = store.create(ROOT, pub.gfid, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    cases = [
        (lambda: store.symlink(ROOT, pub.gfid, b"ln", b"f"), {"pub"}),
        (lambda: store.mknod(ROOT, pub.gfid, b"fifo", stat.S_IFIFO | 0o600, 0), {"pub"}),
        (lambda: store.link(ROOT, f.gfid, other.gfid, b"f2"), {"other"}),
        (lambda: store.rename(ROOT, pub.gfid, b"f", other.gfid, b"f3"), {"pub", "other"}),
        (lambda: store.unlink(ROOT, other.gfid, b"f2"), {"other"}),
        (lambda: store.unlink(ROOT, other.gfid, b"f3"), {"other"}),
        (lambda: store.rmdir(ROOT, ROOT_GFID, b"other"), {""}),
    ]
    for op, dirs in cases:
        synced.clear()
        result = op()
        expected = {os.path.join(top, d) if d else top for d in dirs}
        assert expected <= synced, (result, synced)
        if op is cases[0][0]:
            assert bucket(store, result[0].gfid) in synced   # the symlink's index entry
        if op is cases[5][0]:   # the last name went: its removed index entry is not synced
            assert bucket(store, f.gfid) not in synced
    synced.clear()
    store.mkdir(ROOT, pub.gfid, b"d", 0o755)
    d = store.lookup(ROOT, pub.gfid, b"d")
    synced.clear()
    store.rename(ROOT, pub.gfid, b"d", ROOT_GFID, b"moved")   # a directory's entry is rewritten
    assert {bucket(store, d.gfid), os.path.join(top, "pub"), top} <= synced
    synced.clear()
    store.rmdir(ROOT, ROOT_GFID, b"moved")
    assert top in synced and bucket(store, d.gfid) not in synced   # a removal: see above


def test_metadata_sync_off_syncs_nothing_and_can_be_turned_on(make_store, synced):
    store = make_store({"metadata-sync": False})
    synced.clear()  # init may have made the index
    pub = pub_dir(store)
    fd, f, _, _ = store.create(ROOT, pub.gfid, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    store.rename(ROOT, pub.gfid, b"f", ROOT_GFID, b"g")
    store.unlink(ROOT, ROOT_GFID, b"g")
    assert synced == set()
    assert store.dump_private()["metadata-sync"] == "off"
    store.reconfigure({"metadata-sync": "on"})
    store.mkdir(ROOT, pub.gfid, b"now", 0o755)
    assert os.path.join(store.directory, "pub") in synced


def test_metadata_sync_option_takes_on_journal_off_and_bool_words():
    table = OptionTable(PosixXlator.options)
    assert table.validate({"metadata-sync": "Journal"})["metadata-sync"] == "journal"
    assert mode_of(table.validate({"metadata-sync": "no"})["metadata-sync"]) == "off"
    assert mode_of(table.validate({"metadata-sync": "true"})["metadata-sync"]) == "on"
    assert mode_of(True) == "on" and mode_of(False) == "off"
    with pytest.raises(OptionError):
        table.validate({"metadata-sync": "sometimes"})


def test_a_failed_op_syncs_nothing_and_a_failed_sync_fails_the_op(store, monkeypatch, synced):
    pub = pub_dir(store)
    synced.clear()
    with pytest.raises(FileExistsError):
        store.mkdir(ROOT, ROOT_GFID, b"pub", 0o755)
    assert synced == set()

    def broken(fd):
        raise OSError(5, "EIO from the disk")
    store.stat(ROOT, pub.gfid)  # its descriptor is cached now, not during the count
    monkeypatch.setattr(os, "fsync", broken)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError) as info:
        store.create(ROOT, pub.gfid, b"lost", os.O_RDWR, 0o644)
    assert info.value.errno == 5
    assert len(os.listdir("/proc/self/fd")) == before  # the new file's fd was closed


# --- finding 11: wcc is atomic with the change ----------------------------------------
def _parallel(count, work):
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index):
        try:
            barrier.wait(5)
            work(index)
        except BaseException as err:  # reported below
            errors.append(err)
        finally:
            reset_thread()

    run_in_threads(run, [(i,) for i in range(count)])
    assert errors == []


def test_concurrent_mkdirs_and_rmdirs_have_exact_pre_and_post(make_store):
    store = make_store({"metadata-sync": False})  # speed: this is about the locks
    pub = pub_dir(store)
    results: list[tuple[int, int]] = []
    per_thread = 40

    def make(index):
        for i in range(per_thread):
            _, pre, post = store.mkdir(ROOT, pub.gfid, b"d-%d-%d" % (index, i), 0o755)
            results.append((pre.nlink, post.nlink))

    _parallel(4, make)
    # each mkdir adds exactly one link to the parent: its own pre -> post
    assert all(post == pre + 1 for pre, post in results), results
    assert sorted(pre for pre, _ in results) == list(range(2, 2 + 4 * per_thread))
    results.clear()

    def remove(index):
        for i in range(per_thread):
            pre, post = store.rmdir(ROOT, pub.gfid, b"d-%d-%d" % (index, i))
            results.append((pre.nlink, post.nlink))

    _parallel(4, remove)
    assert all(post == pre - 1 for pre, post in results), results


def test_dir_locks_take_each_stripe_once_in_order():
    locks = DirLocks(stripes=4)
    a, b = b"\0" * 15 + b"\1", b"\0" * 15 + b"\5"   # the same stripe (1 and 5 mod 4)
    assert locks.stripe(a) == locks.stripe(b)
    with locks.held(a, b, a):          # a rename within one directory: no self-deadlock
        pass
    done = threading.Event()

    def other():
        with locks.held(b"\0" * 15 + b"\2", a):
            done.set()
    with locks.held(a):
        thread = threading.Thread(target=other)
        thread.start()
        assert not done.wait(0.1)      # waits for the stripe we hold
    thread.join(5)
    assert done.is_set()
