"""Offsets and sizes the kernel cannot take get a named NFS answer (review finding 9).

/tmp/review/exp_offset.py: READ/WRITE at 2**63 and SETATTR size 2**63 ended
in SYSTEM_ERR (an OverflowError per call), WRITE at 2**63-1 in INVAL.
"""
from __future__ import annotations

import pytest

from nfs3_harness import OK, N, fh3, sattr
from nfs.nfs3 import MAX_FILE_SIZE, OFFSET_MAX

HUGE = (1 << 63, (1 << 64) - 1)


@pytest.fixture
def handle(nfs, root):
    return nfs.new_file(root, b"f", b"abc")


@pytest.mark.parametrize("offset", [*HUGE, OFFSET_MAX, MAX_FILE_SIZE, 3])
def test_read_past_the_end_is_ok_eof_and_empty(nfs, handle, offset):
    status, res = nfs.read(handle, offset, 10)
    assert status == OK
    assert (res.count, bytes(res.data), res.eof) == (0, b"", True)
    assert res.file_attributes[1].size == 3


def test_read_whose_range_overflows_is_clamped(nfs, handle):
    status, res = nfs.read(handle, OFFSET_MAX - 4, (1 << 32) - 1)
    assert status == OK and res.count == 0 and res.eof
    assert nfs.read(handle, 1, (1 << 32) - 1)[1].data == b"bc"


@pytest.mark.parametrize("offset,data", [(1 << 63, b"x"), ((1 << 64) - 1, b"x"),
                                         (OFFSET_MAX, b"xy"), (MAX_FILE_SIZE, b"x"),
                                         (MAX_FILE_SIZE - 1, b"xy")])
def test_write_past_the_maximum_file_size_is_fbig(server, nfs, handle, offset, data):
    status, res = nfs.write(handle, offset, data)
    assert status == N.NFS3ERR_FBIG
    assert res.file_wcc.after[0] and res.file_wcc.after[1].size == 3
    assert (server.brick() / "f").read_bytes() == b"abc"


def test_write_below_the_limit_still_works(nfs, handle):
    status, res = nfs.write(handle, 3, b"def")
    assert status == OK and res.count == 3


@pytest.mark.parametrize("size", [*HUGE, MAX_FILE_SIZE + 1])
def test_setattr_size_too_big_is_fbig(server, nfs, handle, size):
    status, res = nfs.call("SETATTR", object=fh3(handle), new_attributes=sattr(size=size),
                           guard=(False, None))
    assert status == N.NFS3ERR_FBIG and res.obj_wcc.after[1].size == 3
    assert (server.brick() / "f").stat().st_size == 3


def test_setattr_size_within_the_limit_still_works(nfs, handle):
    status, res = nfs.call("SETATTR", object=fh3(handle), new_attributes=sattr(size=1),
                           guard=(False, None))
    assert status == OK and res.obj_wcc.after[1].size == 1


@pytest.mark.parametrize("how", [N.UNCHECKED, N.GUARDED])
def test_create_with_a_size_too_big_is_fbig_and_creates_nothing(server, nfs, root, how):
    status, res = nfs.create(root, b"g", how=how, size=1 << 63)
    assert status == N.NFS3ERR_FBIG and res.dir_wcc.after[0]
    assert not (server.brick() / "g").exists()


@pytest.mark.parametrize("offset,count", [(1 << 63, 1), ((1 << 64) - 1, (1 << 32) - 1)])
def test_commit_of_any_range_flushes_the_file(nfs, handle, offset, count):
    status, res = nfs.call("COMMIT", file=fh3(handle), offset=offset, count=count)
    assert status == OK and res.file_wcc.after[1].size == 3
