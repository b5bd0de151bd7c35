"""storage/posix attribute fops: stat, setattr, access, readlink, statfs, xattrs."""
from __future__ import annotations

import errno
import os

from glusterfsd.xlator import (ROOT_CALLER as ROOT, ROOT_GFID, SET_TO_NOW, Caller, SetAttr,
                               StatFs)
from storage_calls import errno_of

USER = Caller(1000, 1000, (1000,))
SECOND = 1_000_000_000


def new_file(store, name=b"f", mode=0o644, data=b""):
    fd, iatt, _, _ = store.create(ROOT, ROOT_GFID, name, os.O_RDWR, mode)
    if data:
        store.write(ROOT, fd, 0, data, 0)
    store.release(fd)
    return iatt


def test_stat_matches_the_disk(store, export):
    f = new_file(store, data=b"12345")
    iatt = store.stat(ROOT, f.gfid)
    st = os.stat(os.path.join(export, "f"))
    assert (iatt.size, iatt.mode, iatt.uid, iatt.mtime) == (5, 0o644, st.st_uid, st.st_mtime_ns)
    assert iatt.nlink == 1 and st.st_nlink == 2  # the index hard link is hidden
    assert errno_of(store.stat, ROOT, b"\x11" * 16) == errno.ESTALE


def test_stat_of_an_open_file_uses_its_descriptor_and_still_sees_removal(store, export,
                                                                           monkeypatch):
    """A file the fd cache holds open is stat'ed through that descriptor (no path
    walk in the index); one whose names are gone, even behind the server's back,
    still answers ESTALE through the index, as one that is not open does."""
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"open", os.O_RDWR, 0o644)
    store.write(ROOT, fd, 0, b"abc", 0)
    walked = []
    real = store.index.resolve
    monkeypatch.setattr(store.index, "resolve", lambda gfid: walked.append(gfid) or real(gfid))
    iatt = store.stat(ROOT, f.gfid)
    assert walked == [] and (iatt.size, iatt.nlink, iatt.gfid) == (3, 1, f.gfid)
    assert iatt == real_stat(store, real, f.gfid)
    os.unlink(os.path.join(export, "open"))                      # behind the server's back
    assert errno_of(store.stat, ROOT, f.gfid) == errno.ESTALE
    assert walked == [f.gfid]
    store.release(fd)


def real_stat(store, resolve, gfid):
    with resolve(gfid) as obj:
        return store._iatt(obj.st, obj.gfid)


def test_setattr_mode_owner_size(store, export):
    f = new_file(store, data=b"0123456789")
    pre, post = store.setattr(ROOT, f.gfid, SetAttr(mode=0o4711, uid=1234, gid=5678, size=3))
    assert pre.size == 10 and pre.mode == 0o644
    assert (post.mode, post.uid, post.gid, post.size) == (0o4711, 1234, 5678, 3)
    st = os.stat(os.path.join(export, "f"))
    assert (st.st_uid, st.st_gid, st.st_size) == (1234, 5678, 3)
    _, grown = store.setattr(ROOT, f.gfid, SetAttr(size=100))
    assert grown.size == 100


def test_setattr_times(store):
    f = new_file(store)
    _, post = store.setattr(ROOT, f.gfid, SetAttr(atime=10 * SECOND + 5, mtime=20 * SECOND))
    assert (post.atime, post.mtime) == (10 * SECOND + 5, 20 * SECOND)
    _, post = store.setattr(ROOT, f.gfid, SetAttr(mtime=SET_TO_NOW))
    assert post.atime == 10 * SECOND + 5  # left alone
    assert post.mtime > 1_600_000_000 * SECOND
    assert errno_of(store.setattr, ROOT, f.gfid, SetAttr(mtime=-5)) == errno.EINVAL


def test_setattr_errors(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    assert errno_of(store.setattr, ROOT, d.gfid, SetAttr(size=0)) == errno.EISDIR
    f = new_file(store)
    assert errno_of(store.setattr, ROOT, f.gfid, SetAttr(size=-1)) == errno.EINVAL
    assert errno_of(store.setattr, ROOT, f.gfid, SetAttr(uid=-1)) == errno.EINVAL
    assert errno_of(store.setattr, ROOT, f.gfid, SetAttr(gid=1 << 32)) == errno.EINVAL
    assert errno_of(store.setattr, ROOT, b"\x12" * 16, SetAttr(mode=0o600)) == errno.ESTALE


def test_setattr_on_symlink_touches_the_link_only(store):
    link, _, _ = store.symlink(ROOT, ROOT_GFID, b"l", b"/etc", 0o777)
    etc_before = os.stat("/etc")
    assert errno_of(store.setattr, ROOT, link.gfid, SetAttr(mode=0o600)) == errno.EOPNOTSUPP
    _, post = store.setattr(ROOT, link.gfid, SetAttr(uid=4321, gid=4321))
    assert (post.uid, post.gid) == (4321, 4321)
    _, post = store.setattr(ROOT, link.gfid, SetAttr(mtime=5 * SECOND))
    assert post.mtime == 5 * SECOND
    etc_after = os.stat("/etc")
    assert (etc_after.st_uid, etc_after.st_mode) == (etc_before.st_uid, etc_before.st_mode)


def test_setattr_as_caller_is_checked_by_the_kernel(store):
    f = new_file(store, mode=0o644)  # owned by root
    assert errno_of(store.setattr, USER, f.gfid, SetAttr(mode=0o777)) == errno.EPERM
    assert errno_of(store.setattr, USER, f.gfid, SetAttr(uid=1000)) == errno.EPERM
    assert errno_of(store.setattr, USER, f.gfid, SetAttr(size=0)) == errno.EACCES
    assert errno_of(store.setattr, USER, f.gfid, SetAttr(mtime=5 * SECOND)) == errno.EPERM
    store.setattr(ROOT, f.gfid, SetAttr(uid=1000, gid=1000, mode=0o444))
    # the owner may size its own read-only file (NFS owner override) and chmod it
    _, post = store.setattr(USER, f.gfid, SetAttr(size=7, mode=0o600))
    assert (post.size, post.mode) == (7, 0o600)


def test_access(store):
    f = new_file(store, mode=0o640)
    store.access(ROOT, f.gfid, os.R_OK | os.W_OK)
    assert errno_of(store.access, ROOT, f.gfid, os.X_OK) == errno.EACCES  # no x bit at all
    assert errno_of(store.access, USER, f.gfid, os.R_OK) == errno.EACCES
    store.access(Caller(1000, 0, ()), f.gfid, os.R_OK)  # group read
    assert errno_of(store.access, Caller(1000, 0, ()), f.gfid, os.W_OK) == errno.EACCES
    store.access(Caller(1000, 1000, (0,)), f.gfid, os.R_OK)  # via supplementary group
    store.access(USER, f.gfid, 0)  # existence only
    assert errno_of(store.access, ROOT, f.gfid, 8) == errno.EINVAL
    assert errno_of(store.access, ROOT, b"\x13" * 16, os.R_OK) == errno.ESTALE


def test_readlink_errors(store):
    f = new_file(store)
    assert errno_of(store.readlink, ROOT, f.gfid) == errno.EINVAL
    assert errno_of(store.readlink, ROOT, b"\x14" * 16) == errno.ESTALE


def test_statfs_of_the_export(store, export):
    got = store.statfs(ROOT, ROOT_GFID)
    vfs = os.statvfs(export)
    assert isinstance(got, StatFs)
    assert got.total_bytes == vfs.f_blocks * vfs.f_frsize
    assert got.total_files == vfs.f_files and got.name_max == vfs.f_namemax
    assert 0 < got.avail_bytes <= got.free_bytes <= got.total_bytes
    assert errno_of(store.statfs, ROOT, b"\x15" * 16) == errno.ESTALE


# --- xattrs ------------------------------------------------------------------------
def test_user_xattrs_round_trip(store):
    f = new_file(store)
    store.setxattr(ROOT, f.gfid, b"user.colour", b"blue", 0)
    assert store.getxattr(ROOT, f.gfid, b"user.colour") == b"blue"
    assert store.getxattr(ROOT, f.gfid, "user.colour") == b"blue"
    assert store.listxattr(ROOT, f.gfid) == [b"user.colour"]  # trusted.gfid is not listed
    assert errno_of(store.setxattr, ROOT, f.gfid, b"user.colour", b"x", os.XATTR_CREATE) \
        == errno.EEXIST
    assert errno_of(store.setxattr, ROOT, f.gfid, b"user.size", b"x", os.XATTR_REPLACE) \
        == errno.ENODATA
    store.setxattr(ROOT, f.gfid, b"user.colour", b"red", os.XATTR_REPLACE)
    assert store.getxattr(ROOT, f.gfid, b"user.colour") == b"red"
    store.removexattr(ROOT, f.gfid, b"user.colour")
    assert errno_of(store.getxattr, ROOT, f.gfid, b"user.colour") == errno.ENODATA
    assert errno_of(store.removexattr, ROOT, f.gfid, b"user.colour") == errno.ENODATA
    assert store.listxattr(ROOT, f.gfid) == []


def test_reserved_xattrs_are_refused(store, export):
    f = new_file(store)
    for name in (b"trusted.gfid", b"trusted.other", b"security.selinux", b"user.glusterfs.gfid"):
        assert errno_of(store.getxattr, ROOT, f.gfid, name) == errno.EPERM
        assert errno_of(store.setxattr, ROOT, f.gfid, name, b"\0" * 16, 0) == errno.EPERM
        assert errno_of(store.removexattr, ROOT, f.gfid, name) == errno.EPERM
    assert errno_of(store.getxattr, ROOT, f.gfid, b"weird.ns") == errno.EOPNOTSUPP
    assert errno_of(store.getxattr, ROOT, f.gfid, b"") == errno.EINVAL
    assert errno_of(store.setxattr, ROOT, f.gfid, b"user.x", b"v", 4) == errno.EINVAL
    assert os.getxattr(os.path.join(export, "f"), "trusted.gfid") == f.gfid


def test_xattrs_as_caller(store):
    f = new_file(store, mode=0o644)
    store.setxattr(ROOT, f.gfid, b"user.k", b"v", 0)
    assert store.getxattr(USER, f.gfid, b"user.k") == b"v"  # readable file
    assert errno_of(store.setxattr, USER, f.gfid, b"user.k", b"w", 0) == errno.EACCES
    link, _, _ = store.symlink(ROOT, ROOT_GFID, b"l", b"x", 0o777)
    assert errno_of(store.setxattr, ROOT, link.gfid, b"user.k", b"v", 0) == errno.EPERM
