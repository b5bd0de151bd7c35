"""GETATTR, SETATTR, LOOKUP, ACCESS, READLINK, FSSTAT, FSINFO, PATHCONF, NULL and handle errors."""
import os
import struct

import pytest


from glusterfsd.xlator import ROOT_GFID
from nfs import fh
from nfs3_harness import N, OK, fh3, random_gfid, sattr


def test_null_answers(nfs):
    assert nfs.call("NULL") is None


def test_getattr_of_root_is_a_directory_with_fileid_1(nfs, root, server):
    status, res = nfs.getattr(root)
    assert status == OK
    attrs = res.obj_attributes
    assert attrs.type == N.NF3DIR and attrs.fileid == 1
    st = os.stat(server.brick())
    assert attrs.mode == st.st_mode & 0o7777
    assert attrs.mtime.seconds == int(st.st_mtime)


def test_short_handle_is_badhandle(nfs, root):
    assert nfs.getattr(root[:20])[0] == N.NFS3ERR_BADHANDLE
    assert nfs.getattr(b"")[0] == N.NFS3ERR_BADHANDLE
    assert nfs.getattr(root + b"x")[0] == N.NFS3ERR_BADHANDLE


def test_wrong_ident_is_badhandle(nfs, root):
    assert nfs.getattr(b"XXXX" + root[4:])[0] == N.NFS3ERR_BADHANDLE


def test_forged_handle_with_random_gfid_is_stale(nfs, root):
    exportid, _gfid, mountid = fh.parse(root)
    forged = fh.build(exportid, random_gfid(), mountid)
    assert nfs.getattr(forged)[0] == N.NFS3ERR_STALE


def test_handle_of_unknown_export_is_stale(nfs, root):
    _exportid, gfid, mountid = fh.parse(root)
    assert nfs.getattr(fh.build(random_gfid(), gfid, mountid))[0] == N.NFS3ERR_STALE


def test_stale_after_remove(nfs, root):
    handle = nfs.new_file(root, b"gone", b"data")
    assert nfs.getattr(handle)[0] == OK
    assert nfs.remove(root, b"gone")[0] == OK
    assert nfs.getattr(handle)[0] == N.NFS3ERR_STALE
    status, res = nfs.read(handle, 0, 10)
    assert status == N.NFS3ERR_STALE and res.file_attributes == (False, None)
    assert nfs.write(handle, 0, b"x")[0] == N.NFS3ERR_STALE


def test_stale_after_delete_behind_the_servers_back(nfs, root, server):
    handle = nfs.new_file(root, b"ext", b"abc")
    assert nfs.read(handle, 0, 3)[0] == OK    # the fd is cached now
    os.unlink(server.brick() / "ext")
    assert nfs.read(handle, 0, 3)[0] == N.NFS3ERR_STALE
    assert nfs.getattr(handle)[0] == N.NFS3ERR_STALE


# --- SETATTR -----------------------------------------------------------------------
def test_setattr_mode_size_times_with_wcc(nfs, root, server):
    handle = nfs.new_file(root, b"f", b"0123456789")
    status, res = nfs.call("SETATTR", object=fh3(handle),
                           new_attributes=sattr(mode=0o600, size=4, mtime=(1_000_000, 5)),
                           guard=(False, None))
    assert status == OK
    before, after = res.obj_wcc.before, res.obj_wcc.after
    assert before[0] and before[1].size == 10
    assert after[0] and after[1].size == 4 and after[1].mode == 0o600
    assert (after[1].mtime.seconds, after[1].mtime.nseconds) == (1_000_000, 5)
    st = os.stat(server.brick() / "f")
    assert st.st_size == 4 and st.st_mode & 0o777 == 0o600


def test_setattr_guard_mismatch_is_not_sync(nfs, root):
    handle = nfs.new_file(root, b"g")
    ctime = nfs.getattr(handle)[1].obj_attributes.ctime
    wrong = N.nfstime3(seconds=ctime.seconds - 1, nseconds=ctime.nseconds)
    status, res = nfs.call("SETATTR", object=fh3(handle), new_attributes=sattr(mode=0o600),
                           guard=(True, wrong))
    assert status == N.NFS3ERR_NOT_SYNC
    assert res.obj_wcc.after[0] and res.obj_wcc.after[1].mode == 0o644
    status, _ = nfs.call("SETATTR", object=fh3(handle), new_attributes=sattr(mode=0o600),
                         guard=(True, ctime))
    assert status == OK


def test_setattr_by_non_owner_is_perm(server, root, nfs):
    handle = nfs.new_file(root, b"rootfile")
    with server.client(uid=1000, gid=1000) as user:
        status, res = user.call("SETATTR", object=fh3(handle), new_attributes=sattr(mode=0o777),
                                guard=(False, None))
    assert status == N.NFS3ERR_PERM
    assert res.obj_wcc.after[0]      # post attributes on failure


# --- LOOKUP --------------------------------------------------------------------------
def test_lookup_file_dot_and_dotdot(nfs, root):
    sub = nfs.new_dir(root, b"sub")
    nfs.new_file(sub, b"x")
    status, res = nfs.lookup(sub, b"x")
    assert status == OK and res.obj_attributes[1].type == N.NF3REG
    assert res.dir_attributes[0]
    assert fh.parse(nfs.handle_of(sub, b"."))[1] == fh.parse(sub)[1]
    assert fh.parse(nfs.handle_of(sub, b".."))[1] == ROOT_GFID


def test_lookup_dotdot_at_root_stays_at_root(nfs, root):
    up = nfs.handle_of(root, b"..")
    assert fh.parse(up)[1] == ROOT_GFID
    assert fh.parse(nfs.handle_of(up, b".."))[1] == ROOT_GFID


def test_lookup_errors(nfs, root):
    status, res = nfs.lookup(root, b"missing")
    assert status == N.NFS3ERR_NOENT and res.dir_attributes[0]
    assert nfs.lookup(root, b"n" * 256)[0] == N.NFS3ERR_NAMETOOLONG
    handle = nfs.new_file(root, b"plain")
    status, res = nfs.lookup(handle, b"x")
    assert status == N.NFS3ERR_NOTDIR and res.dir_attributes[0]


def test_hand_encoded_getattr_reply_is_what_the_codec_encodes(nfs, root, server):
    handle = nfs.new_file(root, b"g", b"1234567")
    proc = N.programs["NFS_PROGRAM"].versions[3].procs[1]
    raw = nfs.rpc.call(N.NFS_PROGRAM, 3, 1, proc.arg, N.GETATTR3args(object=fh3(handle)), None)
    value, end = proc.res.decode(raw, 0)
    status, res = value
    assert end == len(raw) and status == OK
    assert bytes(proc.res.encode(value)) == raw
    st = os.stat(server.brick() / "g")
    attrs = res.obj_attributes
    assert (attrs.size, attrs.mode, attrs.nlink) == (7, 0o644, 1)
    assert (attrs.mtime.seconds, attrs.mtime.nseconds) == divmod(st.st_mtime_ns, 10**9)


@pytest.mark.parametrize("name", [b"f", b".", b".."])
def test_hand_encoded_lookup_reply_is_what_the_codec_encodes(nfs, root, server, name):
    """LOOKUP's reply is packed by hand (nfs3._LOOKUP_HEAD/_LOOKUP_ATTRS): decoding it
    and encoding the value again with the generated codec gives the very same bytes,
    and its directory attributes are the directory's (taken in the same resolution)."""
    sub = nfs.new_dir(root, b"wire")
    nfs.new_file(sub, b"f", b"12345")
    proc = N.programs["NFS_PROGRAM"].versions[3].procs[3]
    raw = nfs.rpc.call(N.NFS_PROGRAM, 3, 3, proc.arg,
                       N.LOOKUP3args(what=N.diropargs3(dir=fh3(sub), name=name)), None)
    value, end = proc.res.decode(raw, 0)
    status, res = value
    assert end == len(raw) and status == OK
    assert bytes(proc.res.encode(value)) == raw
    expected = {b"f": server.brick() / "wire" / "f", b".": server.brick() / "wire",
                b"..": server.brick()}[name]
    assert res.obj_attributes[1].size == os.stat(expected).st_size
    assert res.dir_attributes[1].mtime.seconds == int(os.stat(server.brick() / "wire").st_mtime)
    assert res.dir_attributes[1].type == N.NF3DIR
    assert res.dir_attributes[1].fileid == nfs.getattr(sub)[1].obj_attributes.fileid


def test_hand_encoded_lookup_of_a_missing_name_is_what_the_codec_encodes(nfs, root, server):
    """The NOENT reply (nfs3._LOOKUP_NOENT) carries the directory's attributes."""
    sub = nfs.new_dir(root, b"wire")
    proc = N.programs["NFS_PROGRAM"].versions[3].procs[3]
    raw = nfs.rpc.call(N.NFS_PROGRAM, 3, 3, proc.arg,
                       N.LOOKUP3args(what=N.diropargs3(dir=fh3(sub), name=b"missing")), None)
    value, end = proc.res.decode(raw, 0)
    status, res = value
    assert end == len(raw) and status == N.NFS3ERR_NOENT
    assert bytes(proc.res.encode(value)) == raw
    assert res.dir_attributes[1].fileid == nfs.getattr(sub)[1].obj_attributes.fileid
    assert res.dir_attributes[1].nlink == os.stat(server.brick() / "wire").st_nlink


def test_lookup_does_not_follow_a_symlink_out_of_the_export(nfs, root, server):
    os.symlink("/etc", server.brick() / "etc")
    status, res = nfs.lookup(root, b"etc")
    assert status == OK and res.obj_attributes[1].type == N.NF3LNK
    link = bytes(res.object.data)
    assert nfs.lookup(link, b"passwd")[0] == N.NFS3ERR_NOTDIR
    status, res = nfs.call("READLINK", symlink=fh3(link))
    assert status == OK and bytes(res.data) == b"/etc"
    assert nfs.read(link, 0, 100)[0] == N.NFS3ERR_INVAL
    assert nfs.create(link, b"x")[0] == N.NFS3ERR_NOTDIR
    assert nfs.readdir(link)[0] == N.NFS3ERR_NOTDIR


# --- ACCESS --------------------------------------------------------------------------
ALL = 0x3F


def test_access_root_gets_everything_on_a_dir(nfs, root):
    status, res = nfs.call("ACCESS", object=fh3(root), access=ALL)
    assert status == OK
    assert res.access == 0x01 | 0x02 | 0x04 | 0x08 | 0x10
    assert res.obj_attributes[0]


def test_access_bits_follow_mode_for_a_user(server, root, nfs):
    handle = nfs.new_file(root, b"secret", b"x", mode=0o600)
    readable = nfs.new_file(root, b"public", b"x", mode=0o644)
    script = nfs.new_file(root, b"run", b"x", mode=0o755)
    with server.client(uid=1000, gid=1000) as user:
        assert user.call("ACCESS", object=fh3(handle), access=ALL)[1].access == 0
        assert user.call("ACCESS", object=fh3(readable), access=ALL)[1].access == 0x01
        assert user.call("ACCESS", object=fh3(script), access=ALL)[1].access == 0x01 | 0x20
        assert user.call("ACCESS", object=fh3(script), access=0x20)[1].access == 0x20


def test_access_gives_nobody_execute_on_a_file_without_x_bits(server, root, nfs):
    plain = nfs.new_file(root, b"plain", b"x", mode=0o666)
    assert nfs.call("ACCESS", object=fh3(plain), access=ALL)[1].access == 0x01 | 0x04 | 0x08
    with server.client(uid=1000, gid=1000) as user:
        assert user.call("ACCESS", object=fh3(plain), access=ALL)[1].access == 0x01 | 0x04 | 0x08


def test_access_granted_in_one_check_still_maps_rights_per_type(server, root, nfs):
    """All rights at once (one check): a file gets no LOOKUP or DELETE bit, a
    directory no EXECUTE bit, whatever the client asked."""
    mine = nfs.new_file(root, b"mine", b"x", mode=0o755)
    status, _ = nfs.call("SETATTR", object=fh3(mine), new_attributes=sattr(uid=1000, gid=1000),
                         guard=(False, None))
    assert status == OK
    folder = nfs.new_dir(root, b"folder", mode=0o777)
    with server.client(uid=1000, gid=1000) as user:
        assert user.call("ACCESS", object=fh3(mine), access=ALL)[1].access == 0x01 | 0x04 | 0x08 | 0x20
        assert user.call("ACCESS", object=fh3(folder), access=ALL)[1].access == 0x1F
        assert user.call("ACCESS", object=fh3(folder), access=0x04 | 0x02)[1].access == 0x06


# --- READLINK ------------------------------------------------------------------------
def test_readlink_of_a_file_is_inval(nfs, root):
    handle = nfs.new_file(root, b"f")
    status, res = nfs.call("READLINK", symlink=fh3(handle))
    assert status == N.NFS3ERR_INVAL and res.symlink_attributes[0]


# --- FSSTAT, FSINFO, PATHCONF -----------------------------------------------------------
def test_fsstat(nfs, root, server):
    status, res = nfs.call("FSSTAT", fsroot=fh3(root))
    assert status == OK
    vfs = os.statvfs(server.brick())
    assert res.tbytes == vfs.f_blocks * vfs.f_frsize
    assert res.fbytes >= res.abytes and res.tfiles >= res.ffiles


def test_fsinfo_reports_sizes_and_properties(nfs, root):
    status, res = nfs.call("FSINFO", fsroot=fh3(root))
    assert status == OK
    assert res.rtmax == res.rtpref == 1 << 20 and res.wtmax == res.wtpref == 1 << 20
    assert res.dtpref == 1 << 20 and res.rtmult == res.wtmult == 4096
    assert res.properties == 0x1 | 0x2 | 0x8 | 0x10
    assert res.maxfilesize == 1 << 50


def test_fsinfo_with_auth_none(server, root):
    with server.client(flavor="none") as anon:
        assert anon.call("FSINFO", fsroot=fh3(root))[0] == OK


def test_pathconf(nfs, root):
    status, res = nfs.call("PATHCONF", object=fh3(root))
    assert status == OK
    assert res.name_max == 255 and res.no_trunc and res.case_preserving
    assert not res.case_insensitive and not res.chown_restricted


def test_fsstat_stale(nfs, root):
    exportid, _gfid, mountid = fh.parse(root)
    forged = fh.build(exportid, random_gfid(), mountid)
    status, res = nfs.call("FSSTAT", fsroot=fh3(forged))
    assert status == N.NFS3ERR_STALE and res.obj_attributes == (False, None)


def test_udp_transport_serves_getattr(server, root):
    with server.client(proto="udp") as udp:
        assert udp.getattr(root)[0] == OK


def test_fileid_is_gfid_ino(nfs, root):
    handle = nfs.new_file(root, b"ino")
    gfid = fh.parse(handle)[1]
    assert nfs.getattr(handle)[1].obj_attributes.fileid == struct.unpack(">Q", gfid[8:])[0]
