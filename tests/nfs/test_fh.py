"""File handles: gnfs's 52-byte layout, validation, mount ids."""
import pytest

from glusterfsd.xlator import ROOT_GFID
from nfs import fh

EXPORT = bytes(range(16))
GFID = bytes(range(16, 32))
MOUNT = fh.mountid_for_path("/gv0")


def test_layout_is_ident_exportid_gfid_mountid():
    handle = fh.build(EXPORT, GFID, MOUNT)
    assert len(handle) == fh.FH_SIZE == 52
    assert handle[:4] == b":OGL"
    assert handle[4:20] == EXPORT and handle[20:36] == GFID and handle[36:52] == MOUNT
    assert fh.parse(handle) == (EXPORT, GFID, MOUNT)


def test_parse_accepts_a_memoryview():
    handle = fh.build(EXPORT, GFID)
    assert fh.parse(memoryview(handle)) == (EXPORT, GFID, bytes(16))


@pytest.mark.parametrize("bad", [b"", b":OGL", fh.build(EXPORT, GFID)[:51],
                                 fh.build(EXPORT, GFID) + b"\0", b"\0" * 64])
def test_wrong_length_is_badhandle(bad):
    with pytest.raises(fh.BadHandle):
        fh.parse(bad)


def test_wrong_ident_is_badhandle():
    with pytest.raises(fh.BadHandle):
        fh.parse(b":OGX" + fh.build(EXPORT, GFID)[4:])


def test_build_refuses_wrong_sizes():
    with pytest.raises(ValueError):
        fh.build(EXPORT[:15], GFID)
    with pytest.raises(ValueError):
        fh.build(EXPORT, GFID, b"short")


def test_child_handle_keeps_export_and_mount():
    parent = fh.build(EXPORT, ROOT_GFID, MOUNT)
    child = fh.with_gfid(parent, GFID)
    assert fh.parse(child) == (EXPORT, GFID, MOUNT)


# Vectors computed with a C implementation of SuperFastHash (x86: signed char).
@pytest.mark.parametrize("data,value", [
    (b"gv0", 3465680998), (b"gv0/sub", 569674182), (b"ab", 1366002500),
    (b"abc", 3535673738), (b"abcd", 3671636187), (b"abcde", 1374488366),
    ("gv0/\u00fc".encode(), 740363077), (b"volume-name-x", 3882945380),
    (b"ab\xe9", 3034567861), (b"abcd\xe9", 1866963971),
])
def test_super_fast_hash_matches_the_c_algorithm(data, value):
    assert fh.super_fast_hash(data) == value


def test_super_fast_hash_of_short_input_is_1_as_glusterfs():
    assert fh.super_fast_hash(b"") == 1 and fh.super_fast_hash(b"a") == 1


def test_mountid_is_the_hash_of_the_path_without_slash_little_endian():
    assert fh.mountid_for_path("/gv0") == (3465680998).to_bytes(4, "little") + bytes(12)
    assert fh.mountid_for_path("gv0") == fh.mountid_for_path("//gv0")
    assert fh.mountid_for_path("/gv0/sub") != fh.mountid_for_path("/gv0")


def test_mountid_of_a_path_gnfs_cannot_hash_is_zero():
    assert fh.mountid_for_path("/") == bytes(16)
    assert fh.mountid_for_path("/a") == bytes(16)
