"""CREATE (UNCHECKED/GUARDED/EXCLUSIVE), MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK."""
import os
import stat

import pytest

from glusterfsd.xlator import IA_REG, Iatt
from nfs import fh
from nfs.nfs3_attrs import AttrMapper, wcc_resok
from xlators.storage.posix_entry import EntryFops
from nfs3_harness import NFS_PROCS, N, OK, NfsTestServer, fh3, sattr


def where(directory, name):
    return N.diropargs3(dir=fh3(directory), name=name)


# --- CREATE ---------------------------------------------------------------------------
def test_create_unchecked_returns_handle_attrs_and_dir_wcc(nfs, root, server):
    status, res = nfs.create(root, b"f", mode=0o640)
    assert status == OK
    assert res.obj[0] and len(res.obj[1].data) == fh.FH_SIZE
    assert res.obj_attributes[1].mode == 0o640 and res.obj_attributes[1].type == N.NF3REG
    assert res.dir_wcc.before[0] and res.dir_wcc.after[0]
    assert stat.S_IMODE(os.stat(server.brick() / "f").st_mode) == 0o640


def test_create_unchecked_on_existing_keeps_data_unless_size_0(nfs, root, server):
    handle = nfs.new_file(root, b"f", b"keep")
    status, res = nfs.create(root, b"f", mode=0o600)
    assert status == OK and bytes(res.obj[1].data) == handle
    assert (server.brick() / "f").read_bytes() == b"keep"
    assert stat.S_IMODE(os.stat(server.brick() / "f").st_mode) == 0o644
    status, res = nfs.create(root, b"f", size=0)
    assert status == OK and res.obj_attributes[1].size == 0
    assert (server.brick() / "f").read_bytes() == b""


def test_create_guarded_on_existing_is_exist(nfs, root):
    nfs.new_file(root, b"f")
    status, res = nfs.create(root, b"f", how=N.GUARDED)
    assert status == N.NFS3ERR_EXIST
    assert res.dir_wcc.after[0] and res.dir_wcc.before == (False, None)


def test_create_exclusive_same_verifier_ok_other_exist(nfs, root, server):
    verf = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    status, res = nfs.create(root, b"x", verf=verf)
    assert status == OK
    handle = bytes(res.obj[1].data)
    st = os.stat(server.brick() / "x")
    assert int(st.st_atime) == 0x01020304 and int(st.st_mtime) == 0x05060708
    status, res = nfs.create(root, b"x", verf=verf)       # a retransmission
    assert status == OK and bytes(res.obj[1].data) == handle
    status, res = nfs.create(root, b"x", verf=b"\x09" * 8)
    assert status == N.NFS3ERR_EXIST and res.dir_wcc.after[0]


def _raw_call(nfs, name, **fields):
    """(decoded value, raw reply bytes) of one call, for byte-level checks."""
    proc = NFS_PROCS[name]
    raw = nfs.rpc.call(N.NFS_PROGRAM, 3, proc.number, proc.arg,
                       getattr(N, f"{name}3args")(**fields), None)
    value, end = proc.res.decode(raw, 0)
    assert end == len(raw)
    return value, raw


@pytest.mark.parametrize("proc", ["CREATE", "MKDIR", "SYMLINK", "EXCLUSIVE", "EXCLUSIVE-AGAIN"])
def test_hand_encoded_new_object_replies_are_what_the_codec_encodes(nfs, root, server, proc):
    """CREATE, MKDIR, SYMLINK and MKNOD replies are packed by hand
    (nfs3_entry._NEW_HEAD/_NEW_TAIL): decoding one and encoding the value again with
    the generated codec gives the very same bytes; the retransmitted EXCLUSIVE create
    (no pre-op attributes) goes through the codec."""
    verf = b"v" * 8
    if proc == "EXCLUSIVE-AGAIN":
        nfs.create(root, b"new", verf=verf)
    if proc == "CREATE":
        args = dict(where=where(root, b"new"), how=(N.UNCHECKED, sattr(mode=0o640)))
    elif proc in ("EXCLUSIVE", "EXCLUSIVE-AGAIN"):
        proc, args = "CREATE", dict(where=where(root, b"new"), how=(N.EXCLUSIVE, verf))
    elif proc == "MKDIR":
        args = dict(where=where(root, b"new"), attributes=sattr(mode=0o750))
    else:
        args = dict(where=where(root, b"new"),
                    symlink=N.symlinkdata3(symlink_attributes=sattr(), symlink_data=b"target"))
    value, raw = _raw_call(nfs, proc, **args)
    status, res = value
    assert status == OK
    assert bytes(NFS_PROCS[proc].res.encode(value)) == raw
    st = os.lstat(server.brick() / "new")
    assert res.obj_attributes[1].fileid == nfs.getattr(bytes(res.obj[1].data))[1] \
        .obj_attributes.fileid
    assert res.obj_attributes[1].mode == stat.S_IMODE(st.st_mode)
    assert res.dir_wcc.after[1].mtime.seconds == int(os.stat(server.brick()).st_mtime)


@pytest.mark.parametrize("proc", ["REMOVE", "RMDIR", "SETATTR"])
def test_hand_encoded_wcc_replies_are_what_the_codec_encodes(nfs, root, server, proc):
    """REMOVE, RMDIR and SETATTR answer one wcc_data, packed by hand
    (nfs3_attrs.wcc_resok): byte-equal to the codec's encoding, both sides present."""
    if proc == "REMOVE":
        nfs.new_file(root, b"gone")
        args = dict(object=where(root, b"gone"))
    elif proc == "RMDIR":
        nfs.new_dir(root, b"gone")
        args = dict(object=where(root, b"gone"))
    else:
        handle = nfs.new_file(root, b"kept", b"12345")
        args = dict(object=fh3(handle), new_attributes=sattr(mode=0o600, size=2),
                    guard=(False, None))
    value, raw = _raw_call(nfs, proc, **args)
    status, res = value
    assert status == OK
    assert bytes(NFS_PROCS[proc].res.encode(value)) == raw
    wcc = res.obj_wcc if proc == "SETATTR" else res.dir_wcc
    assert wcc.before[0] and wcc.after[0]
    if proc == "SETATTR":
        assert (wcc.before[1].size, wcc.after[1].size, wcc.after[1].mode) == (5, 2, 0o600)
    else:
        assert not (server.brick() / "gone").exists()
        assert wcc.after[1].nlink == os.stat(server.brick()).st_nlink - 1   # less .glusterfs


def test_wcc_reply_without_a_before_goes_through_the_codec():
    iatt = Iatt(b"\1" * 16, IA_REG, 0o644, 1, 0, 0, 3, 4096, 0, 0, 1, 7, 0, 0, 0)
    mapper = AttrMapper(b"\2" * 16)
    status, res = wcc_resok(mapper, None, iatt, N.REMOVE3resok)
    assert status == OK and res.dir_wcc.before == (False, None)
    assert res.dir_wcc.after[1].size == 3


def test_create_exclusive_verifier_survives_a_restart(server, root):
    verf = b"restart!"
    with server.client() as nfs:
        handle = bytes(nfs.create(root, b"x", verf=verf)[1].obj[1].data)
    server.restart()
    with server.client() as nfs:
        status, res = nfs.create(root, b"x", verf=verf)
        assert status == OK and bytes(res.obj[1].data) == handle


def test_create_exclusive_over_a_directory_is_exist(nfs, root):
    nfs.new_dir(root, b"d")
    assert nfs.create(root, b"d", verf=b"12345678")[0] == N.NFS3ERR_EXIST


def test_create_name_errors(nfs, root):
    assert nfs.create(root, b"n" * 256)[0] == N.NFS3ERR_NAMETOOLONG
    assert nfs.create(root, b"a/b")[0] == N.NFS3ERR_INVAL
    assert nfs.create(root, b"..")[0] == N.NFS3ERR_ISDIR
    handle = nfs.new_file(root, b"f")
    status, res = nfs.create(handle, b"x")
    assert status == N.NFS3ERR_NOTDIR and res.dir_wcc.after[0]


def test_create_in_a_dir_without_write_permission_is_acces(server, root, nfs):
    with server.client(uid=1000, gid=1000) as user:
        status, res = user.create(root, b"nope")
        assert status == N.NFS3ERR_ACCES and res.dir_wcc.after[0]


def test_create_as_user_belongs_to_the_user(server, root, nfs):
    shared = nfs.new_dir(root, b"shared", mode=0o777)
    with server.client(uid=1000, gid=1000) as user:
        status, res = user.create(shared, b"mine")
        assert status == OK
        assert (res.obj_attributes[1].uid, res.obj_attributes[1].gid) == (1000, 1000)


# --- MKDIR, SYMLINK, MKNOD -----------------------------------------------------------
def test_mkdir_and_exist(nfs, root, server):
    links = nfs.getattr(root)[1].obj_attributes.nlink
    status, res = nfs.mkdir(root, b"d", mode=0o750)
    assert status == OK and res.obj_attributes[1].type == N.NF3DIR
    assert res.obj_attributes[1].mode == 0o750
    assert res.dir_wcc.before[0] and res.dir_wcc.after[1].nlink == links + 1
    assert stat.S_ISDIR(os.stat(server.brick() / "d").st_mode)
    status, res = nfs.mkdir(root, b"d")
    assert status == N.NFS3ERR_EXIST and res.dir_wcc.after[0]


def test_symlink_keeps_target_text(nfs, root, server):
    status, res = nfs.call("SYMLINK", where=where(root, b"l"),
                           symlink=N.symlinkdata3(symlink_attributes=sattr(),
                                                  symlink_data=b"../../etc/passwd"))
    assert status == OK and res.obj_attributes[1].type == N.NF3LNK
    assert os.readlink(server.brick() / "l") == "../../etc/passwd"
    link = bytes(res.obj[1].data)
    assert bytes(nfs.call("READLINK", symlink=fh3(link))[1].data) == b"../../etc/passwd"


@pytest.mark.parametrize("kind,mode_bits", [(N.NF3FIFO, stat.S_IFIFO), (N.NF3SOCK, stat.S_IFSOCK),
                                            (N.NF3CHR, stat.S_IFCHR), (N.NF3BLK, stat.S_IFBLK)])
def test_mknod_types(nfs, root, server, kind, mode_bits):
    if kind in (N.NF3CHR, N.NF3BLK):
        what = (kind, N.devicedata3(dev_attributes=sattr(mode=0o600),
                                    spec=N.specdata3(specdata1=1, specdata2=3)))
    else:
        what = (kind, sattr(mode=0o600))
    status, res = nfs.call("MKNOD", where=where(root, b"node"), what=what)
    assert status == OK, status
    attrs = res.obj_attributes[1]
    assert attrs.type == kind and attrs.mode == 0o600
    st = os.lstat(server.brick() / "node")
    assert stat.S_IFMT(st.st_mode) == mode_bits
    if kind in (N.NF3CHR, N.NF3BLK):
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
        assert (attrs.rdev.specdata1, attrs.rdev.specdata2) == (1, 3)


@pytest.mark.parametrize("kind", [N.NF3REG, N.NF3DIR, N.NF3LNK])
def test_mknod_of_other_types_is_badtype(nfs, root, kind):
    status, res = nfs.call("MKNOD", where=where(root, b"node"), what=(kind, None))
    assert status == N.NFS3ERR_BADTYPE and res.dir_wcc.after[0]


# --- REMOVE, RMDIR ---------------------------------------------------------------------
def test_remove_and_noent(nfs, root, server):
    nfs.new_file(root, b"f")
    status, res = nfs.remove(root, b"f")
    assert status == OK and res.dir_wcc.before[0] and res.dir_wcc.after[0]
    assert not (server.brick() / "f").exists()
    status, res = nfs.remove(root, b"f")
    assert status == N.NFS3ERR_NOENT and res.dir_wcc.after[0]


def test_remove_of_a_directory_fails(nfs, root):
    nfs.new_dir(root, b"d")
    assert nfs.remove(root, b"d")[0] == N.NFS3ERR_ISDIR


def test_rmdir_notempty_then_ok(nfs, root):
    d = nfs.new_dir(root, b"d")
    nfs.new_file(d, b"f")
    status, res = nfs.call("RMDIR", object=where(root, b"d"))
    assert status == N.NFS3ERR_NOTEMPTY and res.dir_wcc.after[0]
    assert nfs.remove(d, b"f")[0] == OK
    assert nfs.call("RMDIR", object=where(root, b"d"))[0] == OK
    assert nfs.getattr(d)[0] == N.NFS3ERR_STALE


def test_rmdir_of_a_file_is_notdir(nfs, root):
    nfs.new_file(root, b"f")
    assert nfs.call("RMDIR", object=where(root, b"f"))[0] == N.NFS3ERR_NOTDIR


def test_remove_one_of_two_links_keeps_the_handle(nfs, root):
    handle = nfs.new_file(root, b"a", b"data")
    assert nfs.call("LINK", file=fh3(handle), link=where(root, b"b"))[0] == OK
    assert nfs.remove(root, b"a")[0] == OK
    status, res = nfs.read(handle, 0, 4)
    assert status == OK and bytes(res.data) == b"data"


def _held_open(st) -> bool:
    """Whether this (server) process holds a descriptor of the file `st` describes
    (stat through /proc/self/fd works for a file whose names are all gone too)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            held = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if (held.st_ino, held.st_dev) == (st.st_ino, st.st_dev):
            return True
    return False


@pytest.mark.parametrize("looked_up", [True, False])
def test_remove_closes_the_servers_descriptors_of_the_removed_file(nfs, root, server,
                                                                  looked_up, monkeypatch):
    """The server's cached descriptors of a file go with its last name, so its space is
    freed: whether the name was known from a LOOKUP (the inode table names the victim,
    no storage lookup is made) or the client removes a name it never looked up (the
    server looks it up itself)."""
    handle = nfs.new_file(root, b"big", b"x" * 65536)
    assert nfs.read(handle, 0, 4096)[0] == OK        # the fd cache now holds it open
    st = os.stat(server.brick() / "big")
    assert _held_open(st)
    if looked_up:
        assert nfs.lookup(root, b"big")[0] == OK
    else:
        server.xlator.inodes.table("gv0").unlink(fh.parse(root)[1], b"big")   # forgotten
    lookups = []
    real_lookup = EntryFops.lookup
    monkeypatch.setattr(EntryFops, "lookup",
                        lambda self, *args: lookups.append(args) or real_lookup(self, *args))
    assert nfs.remove(root, b"big")[0] == OK
    assert not _held_open(st)
    assert len(lookups) == (0 if looked_up else 1)


# --- RENAME ------------------------------------------------------------------------------
def rename(nfs, fromdir, oldname, todir, newname):
    return nfs.call("RENAME", from_=where(fromdir, oldname), to=where(todir, newname))


def test_rename_keeps_the_handle_and_gives_both_wcc(nfs, root, server):
    d = nfs.new_dir(root, b"d")
    handle = nfs.new_file(root, b"a", b"x")
    status, res = rename(nfs, root, b"a", d, b"b")
    assert status == OK
    assert res.fromdir_wcc.before[0] and res.fromdir_wcc.after[0]
    assert res.todir_wcc.before[0] and res.todir_wcc.after[0]
    assert nfs.handle_of(d, b"b") == fh.with_gfid(d, fh.parse(handle)[1])
    assert nfs.getattr(handle)[0] == OK
    assert (server.brick() / "d" / "b").exists()


def test_rename_over_a_file_makes_the_old_one_stale(nfs, root):
    a = nfs.new_file(root, b"a", b"new")
    b = nfs.new_file(root, b"b", b"old")
    assert rename(nfs, root, b"a", root, b"b")[0] == OK
    assert nfs.getattr(b)[0] == N.NFS3ERR_STALE
    assert bytes(nfs.read(a, 0, 3)[1].data) == b"new"


def test_rename_semantics_errors(nfs, root):
    d = nfs.new_dir(root, b"d")
    sub = nfs.new_dir(d, b"sub")
    nfs.new_file(sub, b"f")
    nfs.new_dir(root, b"empty")
    nfs.new_file(root, b"file")
    assert rename(nfs, root, b"missing", root, b"x")[0] == N.NFS3ERR_NOENT
    assert rename(nfs, root, b"d", sub, b"inside")[0] == N.NFS3ERR_INVAL
    assert rename(nfs, root, b"empty", d, b"sub")[0] == N.NFS3ERR_NOTEMPTY
    assert rename(nfs, root, b"file", root, b"empty")[0] == N.NFS3ERR_ISDIR
    assert rename(nfs, root, b"empty", root, b"file")[0] == N.NFS3ERR_NOTDIR
    assert rename(nfs, root, b"file", root, b"n" * 256)[0] == N.NFS3ERR_NAMETOOLONG
    assert rename(nfs, root, b"..", root, b"x")[0] == N.NFS3ERR_INVAL
    status, res = rename(nfs, root, b"file", root, b"file")
    assert status == OK


def test_rename_dir_over_empty_dir(nfs, root):
    d = nfs.new_dir(root, b"d")
    nfs.new_dir(root, b"e")
    assert rename(nfs, root, b"d", root, b"e")[0] == OK
    assert nfs.handle_of(root, b"e") == d


def test_rename_across_exports_is_xdev(tmp_path):
    with NfsTestServer(tmp_path, volumes=("gv0", "gv1")) as srv, srv.client() as nfs:
        r0, r1 = srv.mount("/gv0"), srv.mount("/gv1")
        nfs.new_file(r0, b"f")
        status, res = rename(nfs, r0, b"f", r1, b"f")
        assert status == N.NFS3ERR_XDEV
        assert res.fromdir_wcc.after[0] and res.todir_wcc.after[0]
        handle = nfs.handle_of(r0, b"f")
        status, res = nfs.call("LINK", file=fh3(handle), link=where(r1, b"l"))
        assert status == N.NFS3ERR_XDEV


# --- LINK ----------------------------------------------------------------------------------
def test_link(nfs, root, server):
    handle = nfs.new_file(root, b"a")
    status, res = nfs.call("LINK", file=fh3(handle), link=where(root, b"b"))
    assert status == OK and res.file_attributes[1].nlink == 2
    assert res.linkdir_wcc.before[0] and res.linkdir_wcc.after[0]
    assert os.stat(server.brick() / "b").st_ino == os.stat(server.brick() / "a").st_ino
    status, res = nfs.call("LINK", file=fh3(handle), link=where(root, b"b"))
    assert status == N.NFS3ERR_EXIST and res.file_attributes[0] and res.linkdir_wcc.after[0]


def test_link_to_a_directory_is_refused(nfs, root):
    d = nfs.new_dir(root, b"d")
    assert nfs.call("LINK", file=fh3(d), link=where(root, b"dl"))[0] == N.NFS3ERR_PERM


def test_dir_wcc_before_matches_previous_after(nfs, root):
    first = nfs.create(root, b"one")[1].dir_wcc.after[1]
    before = nfs.create(root, b"two")[1].dir_wcc.before[1]
    assert (before.mtime, before.ctime, before.size) == (first.mtime, first.ctime, first.size)
