"""The gfid index under load: deep trees, restarts, concurrent fops, no leaks."""
from __future__ import annotations

import errno
import os

import pytest

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, SetAttr
from storage_threads import run_in_threads
from xlators.storage.identity import reset_thread


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_deep_tree_resolves_after_restart(make_store):
    store = make_store({"dir-fd-cache-size": 8})
    parent = ROOT_GFID
    chain = []
    for depth in range(60):  # deeper than the kernel's 40 nested symlinks
        iatt, _, _ = store.mkdir(ROOT, parent, b"level-%02d" % depth, 0o755)
        chain.append(iatt.gfid)
        parent = iatt.gfid
    fd, leaf, _, _ = store.create(ROOT, parent, b"leaf", os.O_RDWR, 0o644)
    store.release(fd)
    fresh = make_store({"dir-fd-cache-size": 0})  # no descriptor cache: full walks
    assert fresh.stat(ROOT, chain[-1]).gfid == chain[-1]
    assert fresh.lookup(ROOT, chain[-1], b"leaf").gfid == leaf.gfid
    assert fresh.lookup(ROOT, chain[30], b"..").gfid == chain[29]
    # renaming a directory near the top keeps everything below resolvable
    fresh.rename(ROOT, chain[0], b"level-01", ROOT_GFID, b"lifted")
    again = make_store()
    assert again.stat(ROOT, chain[-1]).gfid == chain[-1]
    assert again.lookup(ROOT, chain[1], b"..").gfid == ROOT_GFID


def test_orphans_are_dropped_and_counted(store, export):
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    os.unlink(os.path.join(export, "f"))  # behind our back: only the index link is left
    with pytest.raises(OSError) as info:
        store.stat(ROOT, f.gfid)
    assert info.value.errno == errno.ESTALE
    assert store.dump_private()["index-orphans-removed"] == 1


def test_concurrent_lookups_of_a_new_file_agree_on_its_gfid(store, export):
    for i in range(20):
        with open(os.path.join(export, f"new-{i}"), "wb"):
            pass
    results: dict[int, list[bytes]] = {i: [] for i in range(20)}
    errors = []

    def look():
        try:
            for i in range(20):
                results[i].append(store.lookup(ROOT, ROOT_GFID, b"new-%d" % i).gfid)
        except Exception as err:
            errors.append(repr(err))
        finally:
            reset_thread()

    run_in_threads(look, [()] * 4, timeout=30)
    assert not errors
    assert all(len(set(gfids)) == 1 and len(gfids) == 4 for gfids in results.values())


def test_mixed_fops_from_many_threads(store):
    errors = []

    def worker(n: int):
        try:
            home, _, _ = store.mkdir(ROOT, ROOT_GFID, b"w%d" % n, 0o755)
            for i in range(40):
                name = b"f%d" % i
                fd, iatt, _, _ = store.create(ROOT, home.gfid, name, os.O_RDWR, 0o644)
                store.write(ROOT, fd, 0, name * 10, i % 3)
                assert store.read(ROOT, fd, 0, 100)[0] == name * 10
                store.release(fd)
                store.link(ROOT, iatt.gfid, home.gfid, name + b".link")
                store.rename(ROOT, home.gfid, name, home.gfid, name + b".moved")
                store.setattr(ROOT, iatt.gfid, SetAttr(mode=0o600))
                if i % 2:
                    store.unlink(ROOT, home.gfid, name + b".moved")
                    store.unlink(ROOT, home.gfid, name + b".link")
                    with pytest.raises(OSError):
                        store.stat(ROOT, iatt.gfid)
            listing, cookie = [], 0
            dfd = store.opendir(ROOT, home.gfid)
            while True:
                entries, eof = store.readdirp(ROOT, dfd, cookie, 1024)
                listing += entries
                if eof:
                    break
                cookie = entries[-1].cookie
            store.release(dfd)
            assert len(listing) == 2 + 40  # 20 files kept, two names each
        except Exception as err:
            errors.append(f"worker {n}: {err!r}")
        finally:
            reset_thread()

    run_in_threads(worker, [(n,) for n in range(4)])
    assert errors == []


def test_no_descriptor_leaks_on_success_or_error(make_store, tmp_path):
    before = open_descriptors()
    store = make_store(directory=str(tmp_path / "leaks"))
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    for i in range(30):
        fd, f, _, _ = store.create(ROOT, d.gfid, b"f%d" % i, os.O_RDWR, 0o644)
        store.release(fd)
        for call, args in ((store.lookup, (ROOT, d.gfid, b"missing")),
                           (store.mkdir, (ROOT, d.gfid, b"f%d" % i, 0o755)),
                           (store.unlink, (ROOT, ROOT_GFID, b"d")),
                           (store.open, (ROOT, d.gfid, os.O_RDONLY)),
                           (store.readlink, (ROOT, f.gfid)),
                           (store.stat, (ROOT, b"\x77" * 16))):
            with pytest.raises(OSError):
                call(*args)
        dfd = store.opendir(ROOT, d.gfid)
        store.readdirp(ROOT, dfd, 0, 4096)
        store.release(dfd)
        store.unlink(ROOT, d.gfid, b"f%d" % i)
    unreleased = store.opendir(ROOT, d.gfid)  # never released: fini closes it
    store.open(ROOT, store.create(ROOT, d.gfid, b"kept", os.O_RDWR, 0o644)[0].gfid, os.O_RDONLY)
    store.fini()
    assert open_descriptors() == before
    assert unreleased.ctx["stream"].fd == -1
