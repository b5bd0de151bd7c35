"""metadata-sync modes: which fsyncs each entry op issues (counted by
replacing os.fsync), the journal mode's one anchor per op, its refusal on a
file system not verified, the index's pre-made xx directories, and why a
removed index entry needs no sync (a crash that keeps it is harmless)."""
from __future__ import annotations

import os
import stat

import pytest

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Caller
from xlators.storage import fs_journal, index_dirs
from xlators.storage.gfid_layout import entry_path

USER = Caller(1000, 1000, (1000,))


def _journal_fs(monkeypatch, verified: bool):
    why = "pretend xfs" if verified else "pretend ext4 without a journal"
    monkeypatch.setattr(fs_journal, "check", lambda path: (verified, why))


def bucket(store, gfid: bytes) -> str:
    return os.path.join(store.directory, ".glusterfs", entry_path(gfid).decode().rsplit("/", 1)[0])


def test_journal_mode_issues_one_fsync_per_op_of_what_changed_last(make_store, monkeypatch,
                                                                   fsyncs):
    _journal_fs(monkeypatch, True)
    store = make_store({"metadata-sync": "journal"})
    assert store.dump_private()["metadata-sync"] == "journal"
    top = store.directory
    at = lambda *parts: os.path.join(top, *parts)  # noqa: E731
    fsyncs.clear()
    pub, _, _ = store.mkdir(ROOT, ROOT_GFID, b"pub", 0o777)
    assert fsyncs == [bucket(store, pub.gfid)]          # the index entry is made last
    other, _, _ = store.mkdir(ROOT, ROOT_GFID, b"other", 0o777)

    def one(op):
        fsyncs.clear()
        result = op()
        assert len(fsyncs) == 1, fsyncs
        return result, fsyncs[0]

    (fd, f, _, _), path = one(lambda: store.create(USER, pub.gfid, b"f", os.O_RDWR, 0o640))
    store.release(fd)
    assert path == at("pub", "f")                        # the index link changed it last
    (ln, _, _), path = one(lambda: store.symlink(ROOT, pub.gfid, b"ln", b"f"))
    assert path == bucket(store, ln.gfid)
    (fifo, _, _), path = one(lambda: store.mknod(ROOT, pub.gfid, b"p", stat.S_IFIFO | 0o600, 0))
    assert path == bucket(store, fifo.gfid)
    assert one(lambda: store.link(ROOT, f.gfid, other.gfid, b"f2"))[1] == at("other")
    assert one(lambda: store.rename(ROOT, pub.gfid, b"f", other.gfid, b"f3"))[1] == at("other")
    assert one(lambda: store.unlink(ROOT, other.gfid, b"f2"))[1] == at("other")
    assert one(lambda: store.unlink(ROOT, other.gfid, b"f3"))[1] == at("other")
    d, _, _ = store.mkdir(ROOT, pub.gfid, b"d", 0o755)
    assert one(lambda: store.rename(ROOT, pub.gfid, b"d", ROOT_GFID, b"moved"))[1] == \
        bucket(store, d.gfid)                            # its index link was rewritten last
    assert one(lambda: store.rmdir(ROOT, ROOT_GFID, b"moved"))[1] == top
    fd, g, _, _ = store.create(ROOT, pub.gfid, b"g", os.O_RDWR, 0o644)
    store.release(fd)
    fsyncs.clear()
    fd, _, _, _ = store.create(ROOT, pub.gfid, b"g", os.O_RDWR, 0o644)     # UNCHECKED, kept
    store.release(fd)
    assert fsyncs == []
    (fd, _, _, _), path = one(lambda: store.create(ROOT, pub.gfid, b"g", os.O_RDWR | os.O_TRUNC,
                                                   0o644))
    store.release(fd)
    assert path == at("pub", "g")


def test_journal_mode_on_an_unverified_file_system_acts_as_on(make_store, monkeypatch, fsyncs):
    _journal_fs(monkeypatch, False)
    store = make_store({"metadata-sync": "journal"})
    figures = store.dump_private()
    assert figures["metadata-sync"] == "on"
    assert "without a journal" in figures["metadata-sync-journal-check"]
    pub, _, _ = store.mkdir(ROOT, ROOT_GFID, b"pub", 0o777)
    fsyncs.clear()
    fd, f, _, _ = store.create(ROOT, pub.gfid, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    top = store.directory
    assert {os.path.join(top, "pub", "f"), bucket(store, f.gfid), os.path.join(top, "pub")} \
        <= set(fsyncs)


def test_on_mode_create_syncs_file_bucket_parent_and_a_new_bucket_in_its_xx(store, fsyncs):
    pub, _, _ = store.mkdir(ROOT, ROOT_GFID, b"pub", 0o777)
    top = store.directory
    made: set[str] = set()
    for i in range(40):
        fsyncs.clear()
        fd, f, _, _ = store.create(ROOT, pub.gfid, b"f%d" % i, os.O_RDWR, 0o644)
        store.release(fd)
        here = bucket(store, f.gfid)
        # a new xx/yy is committed in xx when made, before anything is filed in it
        wanted = [] if here in made else [os.path.dirname(here)]
        wanted += [os.path.join(top, "pub", "f%d" % i), here, os.path.join(top, "pub")]
        assert fsyncs == wanted
        made.add(here)
    for i in range(40):
        fsyncs.clear()
        store.unlink(ROOT, pub.gfid, b"f%d" % i)
        assert fsyncs == [os.path.join(top, "pub")]  # the removed index entry: not synced


def test_the_index_has_its_256_top_directories_from_the_start(make_store, fsyncs):
    store = make_store()
    index = os.path.join(store.directory, ".glusterfs")
    assert sorted(n for n in os.listdir(index) if len(n) == 2) == ["%02x" % i for i in range(256)]
    assert index in fsyncs                      # committed once, after they were made
    os.rmdir(os.path.join(index, "ab"))         # lost behind our back: remade at start
    fsyncs.clear()
    again = make_store(directory=store.directory)
    assert os.path.isdir(os.path.join(index, "ab"))
    fsyncs.clear()
    make_store(directory=store.directory)
    assert fsyncs == []                         # nothing to make: nothing synced
    os.rmdir(os.path.join(index, "ab"))         # an entry op finds xx missing too
    fsyncs.clear()
    with again.identity.as_root():
        again.index._mkdirs_for(b"\xab\xcd" + b"\x01" * 14)
    assert os.path.isdir(os.path.join(index, "ab", "cd"))
    assert fsyncs == [index, os.path.join(index, "ab")]   # each new one committed in its parent
    fsyncs.clear()   # a concurrent op made the bucket first: its commit may be to come
    with again.identity.as_root():
        again.index._mkdirs_for(b"\xab\xcd" + b"\x03" * 14)
    assert fsyncs == [os.path.join(index, "ab")]


def test_a_crash_that_keeps_a_removed_file_entry_leaves_an_orphan_that_resolves_stale(store):
    pub, _, _ = store.mkdir(ROOT, ROOT_GFID, b"pub", 0o777)
    fd, f, _, _ = store.create(ROOT, pub.gfid, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    entry = os.path.join(store.directory, ".glusterfs", entry_path(f.gfid).decode())
    kept = os.path.join(store.directory, "kept")
    os.link(entry, kept)                         # keeps the index entry through the unlink
    store.unlink(ROOT, pub.gfid, b"f")
    os.unlink(kept)
    # the state a crash leaves when the name's removal reached the disk and the
    # index entry's removal did not: the entry is the object's only link
    assert os.stat(entry).st_nlink == 1
    with pytest.raises(OSError) as info:
        store.stat(ROOT, f.gfid)
    assert info.value.errno == 116               # ESTALE, as the client was told
    assert not os.path.exists(entry)             # and the orphan is reaped


def test_a_crash_that_keeps_a_removed_directory_entry_resolves_stale(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o777)
    link = os.path.join(store.directory, ".glusterfs", entry_path(d.gfid).decode())
    text = os.readlink(link)
    store.rmdir(ROOT, ROOT_GFID, b"d")
    os.symlink(text, link)                       # the crash kept the entry
    with pytest.raises(OSError) as info:
        store.stat(ROOT, d.gfid)
    assert info.value.errno == 116
    again, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o777)   # a new directory of that name
    assert again.gfid != d.gfid
    with pytest.raises(OSError) as info:
        store.stat(ROOT, d.gfid)                 # never mistaken for the old one
    assert info.value.errno == 116
    assert store.stat(ROOT, again.gfid).gfid == again.gfid


def test_index_buckets_all_makes_every_bucket_at_start_so_no_op_makes_one(make_store, monkeypatch,
                                                                          fsyncs):
    store = make_store()
    index = os.path.join(store.directory, ".glusterfs")
    monkeypatch.setattr(index_dirs, "TOP_NAMES", (b"00", b"ab"))   # 4 buckets, not 65536
    fsyncs.clear()
    again = make_store({"index-buckets": "all"}, directory=store.directory)
    for bucket_dir in ("00/00", "00/ab", "ab/00", "ab/ab"):
        assert os.path.isdir(os.path.join(index, bucket_dir))
    # each parent that got new directories was committed once
    assert sorted(p for p in fsyncs if p.startswith(index + "/")) == \
        [os.path.join(index, "00"), os.path.join(index, "ab")]
    target = os.path.join(store.directory, "plain")
    with open(target, "w"):
        pass
    fd = os.open(target, os.O_RDONLY)
    fsyncs.clear()
    try:
        again.index.add_nondir(b"\xab\xab" + b"\x02" * 14, fd)   # its bucket is there:
    finally:
        os.close(fd)
    assert fsyncs == []                                       # no directory made or synced
    assert os.stat(target).st_nlink == 2
    fsyncs.clear()
    make_store({"index-buckets": "all"}, directory=store.directory)
    assert fsyncs == []                                       # a later start makes nothing
