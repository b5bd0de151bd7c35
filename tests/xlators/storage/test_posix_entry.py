"""storage/posix name fops: lookup, mkdir, mknod, symlink, create, link,
unlink, rmdir, rename; gfids and the hidden index."""
from __future__ import annotations

import errno
import os
import stat
import uuid

from glusterfsd.xlator import (IA_BLK, IA_CHR, IA_DIR, IA_FIFO, IA_LNK, IA_REG, IA_SOCK,
                               ROOT_CALLER as ROOT, ROOT_GFID, SetAttr, gfid_to_ino)
from storage_calls import errno_of

ROOT_INO = 1


def make_file(store, parent, name, data=b""):
    fd, iatt, _, _ = store.create(ROOT, parent, name, os.O_RDWR, 0o644)
    if data:
        store.write(ROOT, fd, 0, data, 0)
    store.release(fd)
    return iatt


# --- lookup --------------------------------------------------------------------
def test_lookup_root_by_gfid_and_dot_names(store):
    root = store.lookup(ROOT, ROOT_GFID, None)
    assert root.gfid == ROOT_GFID and root.type == IA_DIR and root.ino == ROOT_INO
    assert store.lookup(ROOT, ROOT_GFID, b".").gfid == ROOT_GFID
    assert store.lookup(ROOT, ROOT_GFID, b"..").gfid == ROOT_GFID  # never above the export


def test_lookup_dotdot_of_subdirectory_is_its_parent(store):
    a, _, _ = store.mkdir(ROOT, ROOT_GFID, b"a", 0o755)
    b, _, _ = store.mkdir(ROOT, a.gfid, b"b", 0o755)
    assert store.lookup(ROOT, b.gfid, b"..").gfid == a.gfid
    assert store.lookup(ROOT, a.gfid, b"..").gfid == ROOT_GFID
    assert store.lookup(ROOT, b.gfid, b".").gfid == b.gfid


def test_lookup_with_parent_gives_the_entry_and_its_directory(store):
    a, _, _ = store.mkdir(ROOT, ROOT_GFID, b"a", 0o755)
    f = make_file(store, a.gfid, b"f", b"123")
    found, parent = store.lookup_with_parent(ROOT, a.gfid, b"f")
    assert (found.gfid, found.size) == (f.gfid, 3)
    assert parent.gfid == a.gfid and parent.type == IA_DIR
    assert parent == store.lookup(ROOT, a.gfid, None)
    assert store.lookup_with_parent(ROOT, a.gfid, b".")[0].gfid == a.gfid
    assert store.lookup_with_parent(ROOT, a.gfid, b"..")[0].gfid == ROOT_GFID


def test_lookup_with_parent_of_a_missing_name_and_errors(store):
    """ENOENT is an answer here (None and the directory's attributes); every other
    failure raises as lookup's does."""
    f = make_file(store, ROOT_GFID, b"f")
    found, parent = store.lookup_with_parent(ROOT, ROOT_GFID, b"missing")
    assert found is None and parent.gfid == ROOT_GFID
    assert errno_of(store.lookup_with_parent, ROOT, f.gfid, b"x") == errno.ENOTDIR
    assert errno_of(store.lookup_with_parent, ROOT, ROOT_GFID, b"a/b") == errno.EINVAL
    assert errno_of(store.lookup_with_parent, ROOT, ROOT_GFID, b"x" * 256) == errno.ENAMETOOLONG
    assert errno_of(store.lookup_with_parent, ROOT, b"\x42" * 16, b"x") == errno.ESTALE
    assert store.lookup_with_parent(ROOT, ROOT_GFID, b".glusterfs")[0] is None   # hidden


def test_lookup_errors(store):
    f = make_file(store, ROOT_GFID, b"f")
    assert errno_of(store.lookup, ROOT, ROOT_GFID, b"missing") == errno.ENOENT
    assert errno_of(store.lookup, ROOT, f.gfid, b"x") == errno.ENOTDIR
    assert errno_of(store.lookup, ROOT, ROOT_GFID, b"a/b") == errno.EINVAL
    assert errno_of(store.lookup, ROOT, ROOT_GFID, b"a\0b") == errno.EINVAL
    assert errno_of(store.lookup, ROOT, ROOT_GFID, b"") == errno.EINVAL
    assert errno_of(store.lookup, ROOT, ROOT_GFID, b"x" * 256) == errno.ENAMETOOLONG
    assert errno_of(store.lookup, ROOT, b"\x42" * 16, None) == errno.ESTALE
    assert errno_of(store.lookup, ROOT, b"\x42" * 16, b"x") == errno.ESTALE
    assert errno_of(store.lookup, ROOT, b"short", None) == errno.EINVAL


def test_name_of_255_bytes_is_fine(store):
    name = b"n" * 255
    iatt = make_file(store, ROOT_GFID, name)
    assert store.lookup(ROOT, ROOT_GFID, name).gfid == iatt.gfid


def test_str_names_are_accepted(store):
    iatt, _, _ = store.mkdir(ROOT, ROOT_GFID, "dir-é", 0o755)
    assert store.lookup(ROOT, ROOT_GFID, "dir-é".encode()).gfid == iatt.gfid


# --- the hidden index ----------------------------------------------------------------
def test_index_directory_is_invisible_and_protected(store, export):
    assert os.path.isdir(os.path.join(export, ".glusterfs"))
    assert errno_of(store.lookup, ROOT, ROOT_GFID, b".glusterfs") == errno.ENOENT
    assert errno_of(store.mkdir, ROOT, ROOT_GFID, b".glusterfs", 0o755) == errno.EPERM
    assert errno_of(store.create, ROOT, ROOT_GFID, b".glusterfs", os.O_RDWR, 0o644) == errno.EPERM
    assert errno_of(store.rmdir, ROOT, ROOT_GFID, b".glusterfs") == errno.EPERM
    assert errno_of(store.unlink, ROOT, ROOT_GFID, b".glusterfs") == errno.EPERM
    assert errno_of(store.symlink, ROOT, ROOT_GFID, b".glusterfs", b"x", 0o777) == errno.EPERM
    assert errno_of(store.mknod, ROOT, ROOT_GFID, b".glusterfs", stat.S_IFIFO | 0o644, 0) \
        == errno.EPERM
    f = make_file(store, ROOT_GFID, b"f")
    assert errno_of(store.link, ROOT, f.gfid, ROOT_GFID, b".glusterfs") == errno.EPERM
    assert errno_of(store.rename, ROOT, ROOT_GFID, b"f", ROOT_GFID, b".glusterfs") == errno.EPERM
    assert errno_of(store.rename, ROOT, ROOT_GFID, b".glusterfs", ROOT_GFID, b"g") == errno.EPERM
    # one level down the name is an ordinary name
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    inner, _, _ = store.mkdir(ROOT, d.gfid, b".glusterfs", 0o755)
    assert store.lookup(ROOT, d.gfid, b".glusterfs").gfid == inner.gfid


def test_root_link_count_hides_the_index(store):
    assert store.lookup(ROOT, ROOT_GFID, None).nlink == 2
    store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    assert store.lookup(ROOT, ROOT_GFID, None).nlink == 3


def test_index_uses_glusterfs_layout(store, export):
    f = make_file(store, ROOT_GFID, b"f")
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    for iatt in (f, d):
        text = str(uuid.UUID(bytes=iatt.gfid))
        entry = os.path.join(export, ".glusterfs", text[0:2], text[2:4], text)
        assert os.path.lexists(entry)
    ftext = str(uuid.UUID(bytes=f.gfid))
    assert os.stat(os.path.join(export, ".glusterfs", ftext[0:2], ftext[2:4], ftext)).st_ino \
        == os.stat(os.path.join(export, "f")).st_ino
    dtext = str(uuid.UUID(bytes=d.gfid))
    assert os.readlink(os.path.join(export, ".glusterfs", dtext[0:2], dtext[2:4], dtext)) == \
        "../../00/00/00000000-0000-0000-0000-000000000001/d"
    assert os.getxattr(os.path.join(export, "f"), "trusted.gfid") == f.gfid
    assert os.getxattr(export, "trusted.gfid") == ROOT_GFID


# --- creating ---------------------------------------------------------------------------
def test_mkdir_and_errors(store):
    iatt, pre, post = store.mkdir(ROOT, ROOT_GFID, b"d", 0o750)
    assert iatt.type == IA_DIR and iatt.mode == 0o750 and iatt.nlink == 2
    assert iatt.ino == gfid_to_ino(iatt.gfid) and len(iatt.gfid) == 16
    assert post.nlink == pre.nlink + 1
    assert errno_of(store.mkdir, ROOT, ROOT_GFID, b"d", 0o755) == errno.EEXIST
    assert errno_of(store.mkdir, ROOT, ROOT_GFID, b".", 0o755) == errno.EEXIST
    assert errno_of(store.mkdir, ROOT, ROOT_GFID, b"..", 0o755) == errno.EEXIST
    assert errno_of(store.mkdir, ROOT, ROOT_GFID, b"a/b", 0o755) == errno.EINVAL
    assert errno_of(store.mkdir, ROOT, ROOT_GFID, b"y" * 300, 0o755) == errno.ENAMETOOLONG
    assert errno_of(store.mkdir, ROOT, b"\x07" * 16, b"x", 0o755) == errno.ESTALE
    f = make_file(store, ROOT_GFID, b"f")
    assert errno_of(store.mkdir, ROOT, f.gfid, b"x", 0o755) == errno.ENOTDIR


def test_mode_is_not_cut_by_the_process_umask(store):
    old = os.umask(0o077)
    try:
        iatt, _, _ = store.mkdir(ROOT, ROOT_GFID, b"open", 0o777)
        fd, fiatt, _, _ = store.create(ROOT, ROOT_GFID, b"file", os.O_RDWR, 0o666)
        store.release(fd)
    finally:
        os.umask(old)
    assert iatt.mode == 0o777 and fiatt.mode == 0o666


def test_mknod_types(store):
    cases = [(b"fifo", stat.S_IFIFO, 0, IA_FIFO), (b"sock", stat.S_IFSOCK, 0, IA_SOCK),
             (b"chr", stat.S_IFCHR, os.makedev(1, 3), IA_CHR),
             (b"blk", stat.S_IFBLK, os.makedev(7, 9), IA_BLK)]
    for name, kind, rdev, ia_type in cases:
        iatt, _, _ = store.mknod(ROOT, ROOT_GFID, name, kind | 0o640, rdev)
        assert iatt.type == ia_type and iatt.mode == 0o640 and iatt.nlink == 1
        assert store.lookup(ROOT, ROOT_GFID, name).gfid == iatt.gfid
    chr_iatt = store.lookup(ROOT, ROOT_GFID, b"chr")
    assert (chr_iatt.rdev_major, chr_iatt.rdev_minor) == (1, 3)
    assert errno_of(store.mknod, ROOT, ROOT_GFID, b"reg", stat.S_IFREG | 0o644, 0) == errno.EINVAL
    assert errno_of(store.mknod, ROOT, ROOT_GFID, b"dir", stat.S_IFDIR | 0o755, 0) == errno.EINVAL
    assert errno_of(store.mknod, ROOT, ROOT_GFID, b"fifo", stat.S_IFIFO | 0o644, 0) == errno.EEXIST
    assert errno_of(store.mknod, ROOT, ROOT_GFID, b".", stat.S_IFIFO | 0o644, 0) == errno.EEXIST


def test_symlink_and_readlink(store):
    iatt, _, _ = store.symlink(ROOT, ROOT_GFID, b"l", b"some/where", 0o777)
    assert iatt.type == IA_LNK and iatt.size == len(b"some/where") and iatt.nlink == 1
    assert store.readlink(ROOT, iatt.gfid) == b"some/where"
    assert errno_of(store.symlink, ROOT, ROOT_GFID, b"l", b"x", 0o777) == errno.EEXIST
    assert errno_of(store.symlink, ROOT, ROOT_GFID, b"e", b"", 0o777) == errno.ENOENT
    assert errno_of(store.symlink, ROOT, ROOT_GFID, b"n", b"a\0b", 0o777) == errno.EINVAL
    assert errno_of(store.symlink, ROOT, ROOT_GFID, b"t", b"x" * 5000, 0o777) == errno.ENAMETOOLONG
    assert errno_of(store.symlink, ROOT, ROOT_GFID, b"..", b"x", 0o777) == errno.EEXIST


def test_symlink_to_etc_is_never_followed(store, export):
    link, _, _ = store.symlink(ROOT, ROOT_GFID, b"etc", b"/etc", 0o777)
    assert store.readlink(ROOT, link.gfid) == b"/etc"
    assert store.lookup(ROOT, ROOT_GFID, b"etc").type == IA_LNK
    assert errno_of(store.lookup, ROOT, link.gfid, b"passwd") == errno.ENOTDIR
    assert errno_of(store.open, ROOT, link.gfid, os.O_RDONLY) == errno.ELOOP
    assert errno_of(store.opendir, ROOT, link.gfid) == errno.ENOTDIR
    assert errno_of(store.mkdir, ROOT, link.gfid, b"x", 0o755) == errno.ENOTDIR
    assert errno_of(store.create, ROOT, ROOT_GFID, b"etc", os.O_RDWR, 0o644) == errno.EEXIST
    # one made behind our back behaves the same
    os.symlink("/etc/passwd", os.path.join(export, "pw"))
    pw = store.lookup(ROOT, ROOT_GFID, b"pw")
    assert pw.type == IA_LNK
    assert errno_of(store.open, ROOT, pw.gfid, os.O_RDONLY) == errno.ELOOP
    assert errno_of(store.setattr, ROOT, pw.gfid, SetAttr(size=0)) == errno.EINVAL
    assert os.path.getsize("/etc/passwd") > 0


def test_create_honours_excl_and_reopens_without_it(store):
    fd, iatt, pre, post = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR | os.O_EXCL, 0o600)
    assert iatt.type == IA_REG and iatt.mode == 0o600 and iatt.nlink == 1 and iatt.size == 0
    assert post.mtime >= pre.mtime
    store.write(ROOT, fd, 0, b"data", 0)
    store.release(fd)
    assert errno_of(store.create, ROOT, ROOT_GFID, b"f", os.O_RDWR | os.O_EXCL, 0o600) \
        == errno.EEXIST
    fd2, again, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o600)
    assert again.gfid == iatt.gfid and again.size == 4  # existing file, same gfid
    store.release(fd2)
    fd3, trunc, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR | os.O_TRUNC, 0o600)
    assert trunc.size == 0
    store.release(fd3)


def test_create_errors(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    assert errno_of(store.create, ROOT, ROOT_GFID, b"d", os.O_RDWR, 0o644) == errno.EISDIR
    assert errno_of(store.create, ROOT, ROOT_GFID, b".", os.O_RDWR, 0o644) == errno.EISDIR
    assert errno_of(store.create, ROOT, ROOT_GFID, b"a/b", os.O_RDWR, 0o644) == errno.EINVAL
    assert errno_of(store.create, ROOT, ROOT_GFID, b"z" * 256, os.O_RDWR, 0o644) \
        == errno.ENAMETOOLONG
    assert errno_of(store.create, ROOT, ROOT_GFID, b"f", os.O_ACCMODE, 0o644) == errno.EINVAL
    store.mknod(ROOT, ROOT_GFID, b"fifo", stat.S_IFIFO | 0o644, 0)
    assert errno_of(store.create, ROOT, ROOT_GFID, b"fifo", os.O_RDWR, 0o644) == errno.EEXIST


# --- links ---------------------------------------------------------------------------
def test_hard_link_keeps_gfid_alive(store):
    f = make_file(store, ROOT_GFID, b"f", b"payload")
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    linked, pre, post = store.link(ROOT, f.gfid, d.gfid, b"g")
    assert linked.gfid == f.gfid and linked.nlink == 2
    assert store.lookup(ROOT, d.gfid, b"g").gfid == f.gfid
    store.unlink(ROOT, ROOT_GFID, b"f")
    assert store.stat(ROOT, f.gfid).nlink == 1  # still alive through d/g
    fd = store.open(ROOT, f.gfid, os.O_RDONLY)
    assert store.read(ROOT, fd, 0, 100)[0] == b"payload"
    store.release(fd)
    store.unlink(ROOT, d.gfid, b"g")
    assert errno_of(store.stat, ROOT, f.gfid) == errno.ESTALE
    assert errno_of(store.lookup, ROOT, f.gfid, None) == errno.ESTALE


def test_link_errors(store):
    f = make_file(store, ROOT_GFID, b"f")
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    assert errno_of(store.link, ROOT, d.gfid, ROOT_GFID, b"dl") == errno.EPERM
    assert errno_of(store.link, ROOT, f.gfid, ROOT_GFID, b"f") == errno.EEXIST
    assert errno_of(store.link, ROOT, f.gfid, ROOT_GFID, b".") == errno.EEXIST
    assert errno_of(store.link, ROOT, f.gfid, f.gfid, b"x") == errno.ENOTDIR
    assert errno_of(store.link, ROOT, b"\x09" * 16, ROOT_GFID, b"x") == errno.ESTALE


def test_symlink_can_be_hard_linked(store):
    link, _, _ = store.symlink(ROOT, ROOT_GFID, b"l", b"/etc", 0o777)
    again, _, _ = store.link(ROOT, link.gfid, ROOT_GFID, b"l2")
    assert again.gfid == link.gfid and again.type == IA_LNK and again.nlink == 2
    assert store.readlink(ROOT, store.lookup(ROOT, ROOT_GFID, b"l2").gfid) == b"/etc"


def test_max_hardlinks(make_store):
    store = make_store({"max-hardlinks": 3})
    f = make_file(store, ROOT_GFID, b"f")
    store.link(ROOT, f.gfid, ROOT_GFID, b"f2")
    store.link(ROOT, f.gfid, ROOT_GFID, b"f3")
    assert errno_of(store.link, ROOT, f.gfid, ROOT_GFID, b"f4") == errno.EMLINK


# --- removing ---------------------------------------------------------------------------
def test_unlink_and_errors(store, export):
    f = make_file(store, ROOT_GFID, b"f")
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    pre, post = store.unlink(ROOT, ROOT_GFID, b"f")
    assert errno_of(store.lookup, ROOT, ROOT_GFID, b"f") == errno.ENOENT
    assert errno_of(store.stat, ROOT, f.gfid) == errno.ESTALE
    assert errno_of(store.unlink, ROOT, ROOT_GFID, b"f") == errno.ENOENT
    assert errno_of(store.unlink, ROOT, ROOT_GFID, b"d") == errno.EISDIR
    assert errno_of(store.unlink, ROOT, ROOT_GFID, b".") == errno.EISDIR
    assert errno_of(store.unlink, ROOT, ROOT_GFID, b"a/b") == errno.EINVAL
    # the index entry went with the last name
    text = str(uuid.UUID(bytes=f.gfid))
    assert not os.path.lexists(os.path.join(export, ".glusterfs", text[:2], text[2:4], text))


def test_rmdir_and_errors(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    store.mkdir(ROOT, d.gfid, b"sub", 0o755)
    make_file(store, ROOT_GFID, b"f")
    assert errno_of(store.rmdir, ROOT, ROOT_GFID, b"d") == errno.ENOTEMPTY
    assert errno_of(store.rmdir, ROOT, ROOT_GFID, b"f") == errno.ENOTDIR
    assert errno_of(store.rmdir, ROOT, ROOT_GFID, b"nope") == errno.ENOENT
    assert errno_of(store.rmdir, ROOT, ROOT_GFID, b".") == errno.EINVAL
    assert errno_of(store.rmdir, ROOT, ROOT_GFID, b"..") == errno.ENOTEMPTY
    store.rmdir(ROOT, d.gfid, b"sub")
    store.rmdir(ROOT, ROOT_GFID, b"d")
    assert errno_of(store.stat, ROOT, d.gfid) == errno.ESTALE
    assert errno_of(store.lookup, ROOT, d.gfid, b"x") == errno.ESTALE


# --- rename ---------------------------------------------------------------------------------
def test_rename_keeps_gfids_also_after_restart(make_store):
    store = make_store()
    a, _, _ = store.mkdir(ROOT, ROOT_GFID, b"a", 0o755)
    b, _, _ = store.mkdir(ROOT, a.gfid, b"b", 0o755)
    f = make_file(store, b.gfid, b"f", b"x")
    c, _, _ = store.mkdir(ROOT, ROOT_GFID, b"c", 0o755)
    store.rename(ROOT, ROOT_GFID, b"a", c.gfid, b"a2")  # moves a whole subtree
    store.rename(ROOT, b.gfid, b"f", a.gfid, b"f2")
    assert store.lookup(ROOT, c.gfid, b"a2").gfid == a.gfid
    assert store.lookup(ROOT, a.gfid, b"f2").gfid == f.gfid
    assert store.lookup(ROOT, b.gfid, b"..").gfid == a.gfid
    assert store.lookup(ROOT, a.gfid, b"..").gfid == c.gfid
    restarted = make_store()  # a new instance on the same directory
    for gfid, kind in ((a.gfid, IA_DIR), (b.gfid, IA_DIR), (f.gfid, IA_REG), (c.gfid, IA_DIR)):
        assert restarted.stat(ROOT, gfid).type == kind
    assert restarted.lookup(ROOT, b.gfid, b"..").gfid == a.gfid
    fd = restarted.open(ROOT, f.gfid, os.O_RDONLY)
    assert restarted.read(ROOT, fd, 0, 10)[0] == b"x"
    restarted.release(fd)


def test_rename_over_existing_targets(store):
    f = make_file(store, ROOT_GFID, b"f", b"new")
    g = make_file(store, ROOT_GFID, b"g", b"old")
    preold, postold, prenew, postnew = store.rename(ROOT, ROOT_GFID, b"f", ROOT_GFID, b"g")
    assert store.lookup(ROOT, ROOT_GFID, b"g").gfid == f.gfid
    assert errno_of(store.stat, ROOT, g.gfid) == errno.ESTALE  # the replaced file is gone
    d1, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d1", 0o755)
    d2, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d2", 0o755)
    store.rename(ROOT, ROOT_GFID, b"d1", ROOT_GFID, b"d2")  # over an empty directory
    assert store.lookup(ROOT, ROOT_GFID, b"d2").gfid == d1.gfid
    assert errno_of(store.stat, ROOT, d2.gfid) == errno.ESTALE


def test_rename_onto_another_name_of_the_same_file(store):
    f = make_file(store, ROOT_GFID, b"f")
    store.link(ROOT, f.gfid, ROOT_GFID, b"g")
    store.rename(ROOT, ROOT_GFID, b"f", ROOT_GFID, b"g")  # POSIX: nothing happens
    assert store.stat(ROOT, f.gfid).nlink == 2


def test_rename_errors(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    sub, _, _ = store.mkdir(ROOT, d.gfid, b"sub", 0o755)
    make_file(store, d.gfid, b"inner")
    make_file(store, ROOT_GFID, b"f")
    e, _, _ = store.mkdir(ROOT, ROOT_GFID, b"e", 0o755)
    assert errno_of(store.rename, ROOT, ROOT_GFID, b"nope", ROOT_GFID, b"x") == errno.ENOENT
    assert errno_of(store.rename, ROOT, ROOT_GFID, b"e", ROOT_GFID, b"d") == errno.ENOTEMPTY
    assert errno_of(store.rename, ROOT, ROOT_GFID, b"f", ROOT_GFID, b"e") == errno.EISDIR
    assert errno_of(store.rename, ROOT, ROOT_GFID, b"e", ROOT_GFID, b"f") == errno.ENOTDIR
    assert errno_of(store.rename, ROOT, ROOT_GFID, b"d", sub.gfid, b"loop") == errno.EINVAL
    assert errno_of(store.rename, ROOT, ROOT_GFID, b".", ROOT_GFID, b"x") == errno.EINVAL
    assert errno_of(store.rename, ROOT, ROOT_GFID, b"f", ROOT_GFID, b"..") == errno.EINVAL
    assert errno_of(store.rename, ROOT, ROOT_GFID, b"f", ROOT_GFID, b"q" * 256) \
        == errno.ENAMETOOLONG
    assert errno_of(store.rename, ROOT, b"\x05" * 16, b"f", ROOT_GFID, b"x") == errno.ESTALE


# --- objects made behind the server's back -----------------------------------------------------
def test_objects_created_directly_get_gfids_on_lookup(store, export):
    os.makedirs(os.path.join(export, "outside", "deeper"))
    with open(os.path.join(export, "outside", "deeper", "file"), "wb") as out:
        out.write(b"abc")
    os.link(os.path.join(export, "outside", "deeper", "file"), os.path.join(export, "hard"))
    top = store.lookup(ROOT, ROOT_GFID, b"outside")
    deeper = store.lookup(ROOT, top.gfid, b"deeper")
    f = store.lookup(ROOT, deeper.gfid, b"file")
    assert len({top.gfid, deeper.gfid, f.gfid}) == 3 and f.size == 3
    assert f.nlink == 2  # two real names; the index link is not counted
    assert store.lookup(ROOT, ROOT_GFID, b"hard").gfid == f.gfid
    assert store.lookup(ROOT, deeper.gfid, b"file").gfid == f.gfid  # stable
    assert store.stat(ROOT, deeper.gfid).gfid == deeper.gfid  # resolvable by gfid now


def test_directory_renamed_behind_our_back_heals_on_lookup(store, export):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    sub, _, _ = store.mkdir(ROOT, d.gfid, b"sub", 0o755)
    os.rename(os.path.join(export, "d"), os.path.join(export, "moved"))
    store.index._dirs.clear()  # forget cached descriptors, as after a restart
    assert errno_of(store.stat, ROOT, sub.gfid) == errno.ESTALE
    assert store.lookup(ROOT, ROOT_GFID, b"moved").gfid == d.gfid
    assert store.stat(ROOT, sub.gfid).gfid == sub.gfid


def test_copy_carrying_another_files_gfid_gets_its_own(store, export):
    f = make_file(store, ROOT_GFID, b"f", b"1")
    with open(os.path.join(export, "copy"), "wb") as out:
        out.write(b"2")
    os.setxattr(os.path.join(export, "copy"), "trusted.gfid", f.gfid)  # like cp -a
    copy = store.lookup(ROOT, ROOT_GFID, b"copy")
    assert copy.gfid != f.gfid
    assert store.lookup(ROOT, ROOT_GFID, b"f").gfid == f.gfid
    assert store.stat(ROOT, copy.gfid).size == 1


def test_file_deleted_behind_our_back_is_stale(store, export):
    f = make_file(store, ROOT_GFID, b"f")
    os.unlink(os.path.join(export, "f"))
    assert errno_of(store.stat, ROOT, f.gfid) == errno.ESTALE
