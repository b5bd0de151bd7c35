"""proc_lookup packs its reply by hand (nfs3._LOOKUP_OK: status, the handle and
both fattr3s in one struct; _LOOKUP_NOENT for a missing name).  These hold those
bytes equal to what the generated codec encodes for the same value, with odd
values in every field (2^40 and 2^64-1 sizes, times before 1970 and after 2106,
32-bit ids, device numbers, set-id bits, ino32 on and off), and check that the
object is linked in the inode table under its name."""
from __future__ import annotations

import pytest

from glusterfsd.xlator import IA_BLK, IA_DIR, IA_REG, Caller, Iatt
from nfs import fh, nfs3
from nfs.inode import InodeTable
from nfs.nfs3_attrs import N, AttrMapper
from rpcsvc.program import Reply

NS = 10**9
VOLUME = bytes(range(16))
DIR_GFID = b"\xd1" * 16
CHILD_GFID = bytes(range(100, 116))

ODD_OBJECTS = [
    Iatt(CHILD_GFID, IA_REG, 0o6755, 1, 0, 0, 1 << 40, (1 << 40) + 4096, 0, 0, 1,
         0xFEDCBA9876543210, -5 * NS - 1, (1 << 32) * NS + 3, 0),
    Iatt(CHILD_GFID, IA_REG, 0o644, 0xFFFFFFFF, 4_000_000_000, 0xFFFFFFFF,
         (1 << 64) - 1, 0, 0, 0, 7, 1, 0, NS - 1, 2 * NS),
    Iatt(CHILD_GFID, IA_BLK, 0o660, 2, 1, 2, 0, 0, 259, 0xFFFFF, 7, 0xFFFFFFFF00000001,
         1, 2, 3),
    Iatt(CHILD_GFID, IA_DIR, 0o1777, 3, 65534, 65534, 4096, 4096, 0, 0, 7, 12345,
         1_700_000_000 * NS + 999_999_999, 1_700_000_000 * NS, 1_700_000_001 * NS),
]
DIR_IATT = Iatt(DIR_GFID, IA_DIR, 0o2775, 5, 1000, 100, 4096, 4096, 0, 0, 7,
                0x1234_5678_9ABC_DEF0, -1, (1 << 33) * NS, 5)


class _Storage:
    def __init__(self, found):
        self.found = found

    def lookup_with_parent(self, caller, parent, name):
        assert parent == DIR_GFID
        return (self.found if name == b"there" else None), DIR_IATT


class _Export:
    root_gfid = b"\0" * 15 + b"\1"
    read_only = False


class _Target:
    """What the resolver hands proc_lookup for the directory."""

    def __init__(self, storage, mapper, inodes):
        self.export = _Export()
        self.xl = storage
        self.inodes = inodes
        self.gfid = DIR_GFID
        self.fh = fh.build(VOLUME, DIR_GFID, fh.mountid_for_path("/vol"))
        self.type = IA_DIR
        self.mapper = mapper
        self.looked_up = None

    def child_fh(self, gfid):
        return fh.with_gfid(self.fh, gfid)


class _Resolver:
    def __init__(self, target):
        self.target = target

    def resolve(self, req, nfs_fh):
        return self.target


class _Nfs:
    def __init__(self, target):
        self.resolver = _Resolver(target)
        self.checked_names = []

    def resolve_dir(self, req, nfs_fh):
        return self.resolver.resolve(req, nfs_fh)     # a directory already

    def refuse_bad_name(self, req, directory, name, field):
        self.checked_names.append((name, field))


class _Req:
    caller = Caller(0, 0, (), "127.0.0.1")
    peer = ("127.0.0.1", 700)


def _lookup(found, enable_ino32, name):
    mapper = AttrMapper(VOLUME, enable_ino32)
    inodes = InodeTable(100)
    target = _Target(_Storage(found), mapper, inodes)
    args = N.LOOKUP3args(what=N.diropargs3(dir=N.nfs_fh3(target.fh), name=name))
    nfs = _Nfs(target)
    reply = nfs3.proc_lookup(nfs, _Req(), args)
    assert isinstance(reply, Reply)
    assert nfs.checked_names == [(name, "dir_attributes")]
    return b"".join(reply.buffers), mapper, target, inodes


@pytest.mark.parametrize("enable_ino32", [False, True])
@pytest.mark.parametrize("found", ODD_OBJECTS)
def test_found_name_reply_is_what_the_codec_encodes(found, enable_ino32):
    raw, mapper, target, inodes = _lookup(found, enable_ino32, b"there")
    handle = fh.with_gfid(target.fh, CHILD_GFID)
    expected = N.LOOKUP3res.encode((N.NFS3_OK, N.LOOKUP3resok(
        object=N.nfs_fh3(handle), obj_attributes=mapper.post_op(found),
        dir_attributes=mapper.post_op(DIR_IATT))))
    assert raw == bytes(expected)
    assert inodes.child(DIR_GFID, b"there") == CHILD_GFID
    assert inodes.type_of(CHILD_GFID) == found.type


@pytest.mark.parametrize("enable_ino32", [False, True])
def test_missing_name_reply_is_what_the_codec_encodes(enable_ino32):
    raw, mapper, _target, inodes = _lookup(None, enable_ino32, b"missing")
    expected = N.LOOKUP3res.encode((N.NFS3ERR_NOENT, N.LOOKUP3resfail(
        dir_attributes=mapper.post_op(DIR_IATT))))
    assert raw == bytes(expected)
    assert len(inodes) == 0


def test_a_name_seen_again_under_another_object_points_at_the_new_one():
    """The repeat-LOOKUP fast path (InodeTable.link_child) re-points the name at the
    object found, also when a listing gave the name to another object meanwhile."""
    inodes = InodeTable(100)
    first, second = b"\x01" * 16, b"\x02" * 16
    inodes.link_child(DIR_GFID, first, IA_REG, b"n")
    inodes.link_children(DIR_GFID, [(second, IA_REG, b"n")])  # listed: the name moved
    assert inodes.child(DIR_GFID, b"n") == second
    inodes.link_child(DIR_GFID, first, IA_REG, b"n")          # looked up: back again
    assert inodes.child(DIR_GFID, b"n") == first
    inodes.link_child(DIR_GFID, second, IA_DIR, b"n")         # light record, new type
    assert inodes.child(DIR_GFID, b"n") == second and inodes.type_of(second) == IA_DIR
    assert inodes.get(second).parent == DIR_GFID
