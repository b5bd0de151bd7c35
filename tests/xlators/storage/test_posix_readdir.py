"""storage/posix directory listing: opendir, readdir, readdirp, cookies."""
from __future__ import annotations

import errno
import os
import time

from glusterfsd.xlator import (IA_DIR, IA_LNK, IA_REG, ROOT_CALLER as ROOT, ROOT_GFID, Caller,
                               gfid_to_ino)
from storage_calls import errno_of

USER = Caller(1000, 1000, (1000,))


def list_all(store, gfid, size=4096, plus=False, caller=ROOT):
    """Every entry, one batch per fresh opendir, resuming from the last cookie."""
    names, cookie, batches = [], 0, 0
    while True:
        fd = store.opendir(caller, gfid)
        entries, eof = (store.readdirp if plus else store.readdir)(caller, fd, cookie, size)
        store.release(fd)
        batches += 1
        names.extend(entries)
        if eof:
            return names, batches
        assert entries, "a batch that is not the last must hold entries"
        cookie = entries[-1].cookie
        assert batches < 100_000


def test_readdir_lists_dots_and_entries_but_not_the_index(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    link, _, _ = store.symlink(ROOT, ROOT_GFID, b"l", b"/etc", 0o777)
    dfd = store.opendir(ROOT, ROOT_GFID)
    entries, eof = store.readdir(ROOT, dfd, 0, 1 << 20)
    store.release(dfd)
    assert eof
    by_name = {e.name: e for e in entries}
    assert set(by_name) == {b".", b"..", b"d", b"f", b"l"}
    assert by_name[b"."].ino == by_name[b".."].ino == gfid_to_ino(ROOT_GFID)
    assert (by_name[b"d"].ino, by_name[b"d"].type) == (d.ino, IA_DIR)
    assert (by_name[b"f"].ino, by_name[b"f"].type) == (f.ino, IA_REG)
    assert (by_name[b"l"].ino, by_name[b"l"].type) == (link.ino, IA_LNK)
    assert all(e.iatt is None for e in entries)
    assert len({e.cookie for e in entries}) == len(entries)


def test_readdir_dotdot_of_a_subdirectory(store):
    a, _, _ = store.mkdir(ROOT, ROOT_GFID, b"a", 0o755)
    b, _, _ = store.mkdir(ROOT, a.gfid, b"b", 0o755)
    entries, _ = list_all(store, b.gfid)
    by_name = {e.name: e for e in entries}
    assert by_name[b"."].ino == b.ino and by_name[b".."].ino == a.ino


def test_readdirp_fills_attributes_and_gives_gfids(store, export):
    os.mkdir(os.path.join(export, "made-outside"))
    with open(os.path.join(export, "file-outside"), "wb") as out:
        out.write(b"12345")
    entries, _ = list_all(store, ROOT_GFID, plus=True)
    by_name = {e.name: e for e in entries}
    assert set(by_name) == {b".", b"..", b"made-outside", b"file-outside"}
    for entry in entries:
        assert entry.iatt is not None and entry.iatt.ino == entry.ino
    assert by_name[b"file-outside"].iatt.size == 5 and by_name[b"file-outside"].iatt.nlink == 1
    assert by_name[b".."].iatt.gfid == ROOT_GFID
    gfid = by_name[b"made-outside"].iatt.gfid
    assert store.lookup(ROOT, ROOT_GFID, b"made-outside").gfid == gfid
    assert store.stat(ROOT, gfid).type == IA_DIR


def test_ten_thousand_entries_resumed_by_cookie(store, export):
    subdir = os.path.join(export, "big")
    os.mkdir(subdir)
    wanted = {b"entry-%05d" % i for i in range(10_000)}
    for name in wanted:  # made directly: each gets its gfid while listed
        os.close(os.open(os.path.join(subdir, os.fsdecode(name)), os.O_CREAT | os.O_WRONLY, 0o644))
    big = store.lookup(ROOT, ROOT_GFID, b"big")
    started = time.monotonic()
    entries, batches = list_all(store, big.gfid, size=8192)
    names = [e.name for e in entries if e.name not in (b".", b"..")]
    assert len(names) == len(set(names)) == 10_000
    assert set(names) == wanted
    assert batches > 20  # the listing really came in chunks
    # a second pass with plain cookies finds the same inode numbers
    again, _ = list_all(store, big.gfid, size=65536)
    assert {e.name: e.ino for e in again} == {e.name: e.ino for e in entries}
    assert time.monotonic() - started < 60


def test_size_is_a_byte_budget(store):
    for i in range(50):
        store.mkdir(ROOT, ROOT_GFID, b"dir-%02d" % i, 0o755)
    dfd = store.opendir(ROOT, ROOT_GFID)
    small, eof = store.readdir(ROOT, dfd, 0, 200)
    assert not eof and 3 <= len(small) <= 8
    one, eof = store.readdir(ROOT, dfd, 0, 1)  # always at least one entry
    assert len(one) == 1 and not eof
    plus, eof = store.readdirp(ROOT, dfd, 0, 1000)
    assert not eof and len(plus) < len(store.readdir(ROOT, dfd, 0, 1000)[0])
    everything, eof = store.readdir(ROOT, dfd, 0, 1 << 20)
    assert eof and len(everything) == 52
    tail, eof = store.readdir(ROOT, dfd, everything[-1].cookie, 4096)
    assert tail == [] and eof  # resuming after the last entry
    store.release(dfd)


def test_readdir_errors(store):
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o644)
    assert errno_of(store.readdir, ROOT, fd, 0, 4096) == errno.ENOTDIR
    store.release(fd)
    assert errno_of(store.opendir, ROOT, f.gfid) == errno.ENOTDIR
    assert errno_of(store.opendir, ROOT, b"\x31" * 16) == errno.ESTALE
    dfd = store.opendir(ROOT, ROOT_GFID)
    assert errno_of(store.readdir, ROOT, dfd, -1, 4096) == errno.EINVAL
    assert errno_of(store.readdir, ROOT, dfd, 1 << 63, 4096) == errno.EINVAL
    assert errno_of(store.readdir, ROOT, dfd, 0, 0) == errno.EINVAL
    store.release(dfd)
    assert errno_of(store.readdir, ROOT, dfd, 0, 4096) == errno.EBADF
    assert errno_of(store.readdirp, ROOT, dfd, 0, 4096) == errno.EBADF


def test_listing_permissions_are_the_callers(store):
    closed, _, _ = store.mkdir(ROOT, ROOT_GFID, b"closed", 0o700)
    assert errno_of(store.opendir, USER, closed.gfid) == errno.EACCES
    readable, _, _ = store.mkdir(ROOT, ROOT_GFID, b"readable", 0o744)  # r but no x for others
    fd, _, _, _ = store.create(ROOT, readable.gfid, b"inside", os.O_RDWR, 0o644)
    store.release(fd)
    entries, _ = list_all(store, readable.gfid, plus=True, caller=USER)
    inside = next(e for e in entries if e.name == b"inside")
    assert inside.iatt is None and inside.ino != 0  # names without attributes
