"""storage/posix data fops: open, read, write (stable modes), flush, fsync,
release, the fd cache, and read-only volumes."""
from __future__ import annotations

import errno
import os
import stat

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Caller, Fd, SetAttr
from xlators.storage import posix_io
from storage_calls import errno_of

USER = Caller(1000, 1000, (1000,))


def new_file(store, name=b"f", data=b"", mode=0o644, caller=ROOT, parent=ROOT_GFID):
    fd, iatt, _, _ = store.create(caller, parent, name, os.O_RDWR, mode)
    if data:
        store.write(caller, fd, 0, data, 0)
    store.release(fd)
    return iatt


def test_open_read_write_round_trip(store):
    f = new_file(store)
    fd = store.open(ROOT, f.gfid, os.O_RDWR)
    assert isinstance(fd, Fd) and fd.gfid == f.gfid
    count, pre, post = store.write(ROOT, fd, 0, b"hello world", 0)
    assert count == 11 and pre.size == 0 and post.size == 11
    count, _, post = store.write(ROOT, fd, 20, memoryview(b"tail"), 0)
    assert count == 4 and post.size == 24
    data, post = store.read(ROOT, fd, 6, 5)
    assert data == b"world" and post.size == 24
    assert store.read(ROOT, fd, 11, 9)[0] == b"\0" * 9  # the hole reads as zeros
    assert store.read(ROOT, fd, 100, 10)[0] == b""  # past the end
    store.flush(ROOT, fd)
    store.release(fd)


def test_write_stable_modes(store, monkeypatch):
    f = new_file(store)  # before counting: CREATE itself fsyncs (metadata-sync)
    calls = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync
    monkeypatch.setattr(posix_io.os, "fdatasync",
                        lambda fd: (calls.append("fdatasync"), real_fdatasync(fd))[1])
    monkeypatch.setattr(posix_io.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    fd = store.open(ROOT, f.gfid, os.O_WRONLY)
    store.write(ROOT, fd, 0, b"a", 0)
    assert calls == []  # UNSTABLE: page cache only
    store.write(ROOT, fd, 1, b"b", 1)
    assert calls == ["fdatasync"]
    store.write(ROOT, fd, 2, b"c", 2)
    assert calls == ["fdatasync", "fsync"]
    assert errno_of(store.write, ROOT, fd, 0, b"x", 3) == errno.EINVAL
    pre, post = store.fsync(ROOT, fd, True)
    assert calls[-1] == "fdatasync" and post.size == 3
    store.fsync(ROOT, fd, False)
    assert calls[-1] == "fsync"
    store.release(fd)


def test_a_long_write_goes_in_pieces_and_lands_whole(store, monkeypatch):
    """A WRITE longer than WRITE_PIECE is several pwrites (see posix_io._pwrite_all),
    at an unaligned offset too, and every byte lands where it was sent."""
    f = new_file(store)
    sizes = []
    real_pwrite = os.pwrite
    monkeypatch.setattr(posix_io.os, "pwrite",
                        lambda fd, data, at: (sizes.append(len(data)), real_pwrite(fd, data, at))[1])
    piece = posix_io.WRITE_PIECE
    data = os.urandom(2 * piece + 1000)
    fd = store.open(ROOT, f.gfid, os.O_RDWR)
    count, pre, post = store.write(ROOT, fd, 777, data, 0)
    assert count == len(data) and pre.size == 0 and post.size == 777 + len(data)
    assert sizes == [piece, piece, 1000]
    assert store.read(ROOT, fd, 777, len(data))[0] == data
    assert store.read(ROOT, fd, 0, 777)[0] == b"\0" * 777
    store.release(fd)


def test_a_piece_that_fails_after_others_landed_is_a_short_write(store, monkeypatch):
    """ENOSPC on the second piece: the first is reported written (as write(2) does),
    so the client resends the rest and meets the error then; on the first piece
    the error itself is raised."""
    f = new_file(store)
    real_pwrite = os.pwrite
    calls = []

    def full_after_one(fd, data, at):
        calls.append(at)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, at)
    monkeypatch.setattr(posix_io.os, "pwrite", full_after_one)
    piece = posix_io.WRITE_PIECE
    fd = store.open(ROOT, f.gfid, os.O_RDWR)
    count, _, post = store.write(ROOT, fd, 0, b"x" * (piece + 10), 0)
    assert count == piece and post.size == piece
    assert errno_of(store.write, ROOT, fd, piece, b"y" * 10, 0) == errno.ENOSPC
    store.release(fd)


def test_read_write_errors(store):
    f = new_file(store, data=b"abc")
    ro = store.open(ROOT, f.gfid, os.O_RDONLY)
    wo = store.open(ROOT, f.gfid, os.O_WRONLY)
    assert errno_of(store.write, ROOT, ro, 0, b"x", 0) == errno.EBADF
    assert errno_of(store.read, ROOT, wo, 0, 1) == errno.EBADF
    assert errno_of(store.read, ROOT, ro, -1, 1) == errno.EINVAL
    assert errno_of(store.read, ROOT, ro, 0, -1) == errno.EINVAL
    assert errno_of(store.write, ROOT, wo, -1, b"x", 0) == errno.EINVAL
    store.release(ro)
    store.release(ro)  # a second release is harmless
    assert errno_of(store.read, ROOT, ro, 0, 1) == errno.EBADF
    assert errno_of(store.flush, ROOT, ro) == errno.EBADF
    assert errno_of(store.fsync, ROOT, ro, False) == errno.EBADF
    assert errno_of(store.read, ROOT, Fd(f.gfid, os.O_RDONLY), 0, 1) == errno.EBADF
    store.release(wo)


def test_open_errors(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    fifo, _, _ = store.mknod(ROOT, ROOT_GFID, b"p", stat.S_IFIFO | 0o666, 0)
    assert errno_of(store.open, ROOT, d.gfid, os.O_RDONLY) == errno.EISDIR
    assert errno_of(store.open, ROOT, fifo.gfid, os.O_RDONLY) == errno.EINVAL
    assert errno_of(store.open, ROOT, b"\x21" * 16, os.O_RDONLY) == errno.ESTALE
    f = new_file(store)
    assert errno_of(store.open, ROOT, f.gfid, os.O_ACCMODE) == errno.EINVAL


def test_open_with_truncate(store):
    f = new_file(store, data=b"abcdef")
    fd = store.open(ROOT, f.gfid, os.O_RDWR | os.O_TRUNC)
    assert store.stat(ROOT, f.gfid).size == 0
    store.release(fd)


def test_open_checks_the_callers_right_every_time(store):
    f = new_file(store, data=b"secret", mode=0o600)
    fd = store.open(ROOT, f.gfid, os.O_RDONLY)  # now a descriptor is cached
    assert errno_of(store.open, USER, f.gfid, os.O_RDONLY) == errno.EACCES
    store.release(fd)


def test_owner_may_write_its_read_only_file(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"pub", 0o777)
    fd, iatt, _, _ = store.create(USER, d.gfid, b"ro", os.O_RDWR, 0o444)
    store.release(fd)
    again = store.open(USER, iatt.gfid, os.O_WRONLY)  # NFS: CREATE 0444 then WRITE
    assert store.write(USER, again, 0, b"ok", 2)[0] == 2
    store.release(again)
    assert errno_of(store.open, Caller(2000, 2000, ()), iatt.gfid, os.O_WRONLY) == errno.EACCES


def test_fd_cache_is_bounded_and_reopens(make_store):
    store = make_store({"fd-cache-size": 4})
    files = [new_file(store, b"f%d" % i, data=b"content %d" % i) for i in range(12)]
    fds = [store.open(ROOT, f.gfid, os.O_RDONLY) for f in files]
    assert len(store.fd_cache) <= 4
    for round_ in range(2):
        for i, fd in enumerate(fds):
            assert store.read(ROOT, fd, 0, 100)[0] == b"content %d" % i
        assert len(store.fd_cache) <= 4
    figures = store.dump_private()
    assert figures["fd-cache-evictions"] > 0 and figures["fd-cache-misses"] > 0
    for fd in fds:
        store.release(fd)


def test_fd_cache_reuses_descriptors(store):
    f = new_file(store, data=b"x")  # leaves an O_RDWR descriptor cached
    first = store.open(ROOT, f.gfid, os.O_RDONLY)
    hits = store.fd_cache.hits
    open_before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        fd = store.open(ROOT, f.gfid, os.O_RDONLY)
        store.read(ROOT, fd, 0, 1)
        store.release(fd)
    assert store.fd_cache.hits >= hits + 10 and len(store.fd_cache) == 2
    assert len(os.listdir("/proc/self/fd")) == open_before
    store.release(first)


def test_read_after_last_unlink_is_stale(store):
    f = new_file(store, data=b"x")
    fd = store.open(ROOT, f.gfid, os.O_RDONLY)
    store.unlink(ROOT, ROOT_GFID, b"f")
    assert errno_of(store.read, ROOT, fd, 0, 1) == errno.ESTALE
    store.release(fd)
    assert len(store.fd_cache) == 0


def test_dir_fd_fsync_and_flush(store):
    dfd = store.opendir(ROOT, ROOT_GFID)
    store.flush(ROOT, dfd)
    pre, post = store.fsync(ROOT, dfd, False)
    assert pre.gfid == ROOT_GFID
    store.release(dfd)
    assert errno_of(store.fsync, ROOT, dfd, False) == errno.EBADF


# --- read-only --------------------------------------------------------------------------
def test_read_only_refuses_every_change(make_store, tmp_path):
    writer = make_store()
    f = new_file(writer, data=b"keep")
    d, _, _ = writer.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    store = make_store({"read-only": True})
    refused = [
        (store.setattr, ROOT, f.gfid, SetAttr(mode=0o600)),
        (store.mknod, ROOT, ROOT_GFID, b"n", stat.S_IFIFO | 0o644, 0),
        (store.mkdir, ROOT, ROOT_GFID, b"m", 0o755),
        (store.unlink, ROOT, ROOT_GFID, b"f"),
        (store.rmdir, ROOT, ROOT_GFID, b"d"),
        (store.symlink, ROOT, ROOT_GFID, b"s", b"t", 0o777),
        (store.rename, ROOT, ROOT_GFID, b"f", ROOT_GFID, b"g"),
        (store.link, ROOT, f.gfid, ROOT_GFID, b"h"),
        (store.create, ROOT, ROOT_GFID, b"c", os.O_RDWR, 0o644),
        (store.open, ROOT, f.gfid, os.O_RDWR),
        (store.open, ROOT, f.gfid, os.O_RDONLY | os.O_TRUNC),
        (store.setxattr, ROOT, f.gfid, b"user.a", b"b", 0),
        (store.removexattr, ROOT, f.gfid, b"user.a"),
        (store.access, ROOT, f.gfid, os.W_OK),
    ]
    for call, *args in refused:
        assert errno_of(call, *args) == errno.EROFS, call.__name__
    fd = store.open(ROOT, f.gfid, os.O_RDONLY)
    assert store.read(ROOT, fd, 0, 10)[0] == b"keep"
    assert errno_of(store.write, ROOT, fd, 0, b"x", 0) == errno.EROFS
    store.release(fd)
    store.access(ROOT, f.gfid, os.R_OK)
    assert store.stat(ROOT, d.gfid).gfid == d.gfid
