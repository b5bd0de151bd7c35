"""storage/posix READDIRPLUS fast path: entries the index vouches for cost an
lstat and an xattr read; anything the index does not vouch for still goes
through lookup-and-heal, so copies, lost index entries and foreign files keep
their old treatment."""
from __future__ import annotations

import os
import shutil

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID
from xlators.storage import dirstream
from xlators.storage.gfid_layout import entry_path

from storage_listing import listing, make_files


def test_a_restarted_store_lists_its_files_without_healing(make_store, export, monkeypatch):
    store = make_store()
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    made = make_files(store, d.gfid, 60)
    store.fini()
    again = make_store()                      # empty memo: every entry is checked
    slow = []
    real_child_at = again._child_at
    monkeypatch.setattr(again, "_child_at", lambda *a: slow.append(a[2]) or real_child_at(*a))
    entries = listing(again, d.gfid, size=1024)
    assert slow == []                         # every file vouched for by its index entry
    assert again.index.healed == 0
    for name, iatt in made.items():
        got = entries[name].iatt
        assert got.gfid == iatt.gfid
        assert got == again.stat(ROOT, iatt.gfid)
        assert got.nlink == 1                 # the index link is not shown
    second = listing(again, d.gfid)           # now from the memo
    assert {n: e.iatt.gfid for n, e in second.items() if e.iatt} == \
        {n: e.iatt.gfid for n, e in entries.items() if e.iatt}


def test_a_copy_carrying_a_live_gfid_gets_its_own(make_store, export):
    store = make_store()
    fd, original, _, _ = store.create(ROOT, ROOT_GFID, b"orig", os.O_RDWR, 0o644)
    store.release(fd)
    store.fini()
    shutil.copy2(os.path.join(export, "orig"), os.path.join(export, "copy"))  # xattrs too
    again = make_store()
    entries = listing(again, ROOT_GFID)
    assert entries[b"orig"].iatt.gfid == original.gfid
    assert entries[b"copy"].iatt.gfid not in (None, original.gfid)
    assert again.stat(ROOT, entries[b"copy"].iatt.gfid).ino == entries[b"copy"].iatt.ino


def test_a_lost_index_entry_is_filed_again(make_store, export):
    store = make_store()
    fd, iatt, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    store.fini()
    os.unlink(os.path.join(export.encode(), b".glusterfs", entry_path(iatt.gfid)))
    again = make_store()
    entries = listing(again, ROOT_GFID)
    assert entries[b"f"].iatt.gfid == iatt.gfid
    assert again.index.healed == 1
    assert again.stat(ROOT, iatt.gfid).gfid == iatt.gfid


def test_a_file_made_behind_the_servers_back_gets_a_gfid(store, export):
    with open(os.path.join(export, "foreign"), "w"):
        pass
    entries = listing(store, ROOT_GFID)
    gfid = entries[b"foreign"].iatt.gfid
    assert gfid and store.stat(ROOT, gfid).ino == entries[b"foreign"].iatt.ino


def test_a_vanished_name_is_left_out(store, export):
    make_files(store, ROOT_GFID, 3)
    fd = store.opendir(ROOT, ROOT_GFID)
    raw = dirstream.RawEntry(b"nothing-here", 1, 0, 8)
    try:
        assert store._dirent(ROOT_GFID, fd.ctx["stream"].fd, raw, True) is None
    finally:
        store.release(fd)


def test_small_first_reads_still_return_every_entry(tmp_path):
    names = {b"n%03d" % i + b"x" * (200 + i % 50) for i in range(120)}
    for name in names:
        open(os.path.join(bytes(tmp_path), name), "w").close()
    stream = dirstream.DirStream(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY))
    try:
        got = [e.name for e in stream.entries_from(0, first_read=1)]
        assert set(got) - {b".", b".."} == names and len(got) == len(names) + 2
        whole = [e.name for e in stream.entries_from(0)]
        assert whole == got
    finally:
        stream.close()
