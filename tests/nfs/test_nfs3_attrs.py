"""errno -> nfsstat3, iatt -> fattr3/wcc, sattr3 -> SetAttr, fileids."""
import errno

import pytest

from glusterfsd.xlator import IA_REG, ROOT_GFID, SET_TO_NOW, Iatt
from nfs import nfs3_errors as E
from nfs.nfs3_attrs import N, AttrMapper, ino32, sattr3_to_setattr
from nfs3_harness import sattr


def test_status_numbers_match_the_protocol_definition():
    for name, value in vars(E).items():
        if name.startswith("NFS3") and isinstance(value, int):
            assert getattr(N, name) == value, name


@pytest.mark.parametrize("code,status", [
    (errno.EPERM, "NFS3ERR_PERM"), (errno.ENOENT, "NFS3ERR_NOENT"), (errno.EACCES, "NFS3ERR_ACCES"),
    (errno.EEXIST, "NFS3ERR_EXIST"), (errno.EXDEV, "NFS3ERR_XDEV"), (errno.ENOTDIR, "NFS3ERR_NOTDIR"),
    (errno.EISDIR, "NFS3ERR_ISDIR"), (errno.EINVAL, "NFS3ERR_INVAL"), (errno.ENOSPC, "NFS3ERR_NOSPC"),
    (errno.EROFS, "NFS3ERR_ROFS"), (errno.EFBIG, "NFS3ERR_FBIG"), (errno.EMLINK, "NFS3ERR_MLINK"),
    (errno.ENAMETOOLONG, "NFS3ERR_NAMETOOLONG"), (errno.ENOTEMPTY, "NFS3ERR_NOTEMPTY"),
    (errno.EDQUOT, "NFS3ERR_DQUOT"), (errno.ESTALE, "NFS3ERR_STALE"), (errno.EIO, "NFS3ERR_IO"),
    (errno.ENOTSUP, "NFS3ERR_NOTSUPP"), (errno.ENOSYS, "NFS3ERR_NOTSUPP"),
    (errno.EBADF, "NFS3ERR_BADTYPE"), (errno.ENOTCONN, "NFS3ERR_IO"),
    (errno.EFAULT, "NFS3ERR_SERVERFAULT"), (errno.ELOOP, "NFS3ERR_SERVERFAULT"),
    (0, "NFS3ERR_SERVERFAULT"), (None, "NFS3ERR_SERVERFAULT"),
])
def test_errno_map_is_gnfs(code, status):
    assert E.nfsstat3_for_errno(code) == getattr(N, status)


def make_iatt(**kw):
    base = dict(gfid=bytes(8) + (7).to_bytes(8, "big"), type=IA_REG, mode=0o4755, nlink=2,
                uid=10, gid=20, size=5, used=4096, rdev_major=0, rdev_minor=0, dev=1, ino=7,
                atime=1_500_000_000_123_456_789, mtime=2_000_000_001, ctime=3)
    base.update(kw)
    return Iatt(**base)


def test_fattr3_fields():
    vol = bytes(range(16))
    attrs = AttrMapper(vol).fattr3(make_iatt())
    assert (attrs.type, attrs.mode, attrs.nlink, attrs.uid, attrs.gid) == (1, 0o4755, 2, 10, 20)
    assert (attrs.size, attrs.used, attrs.fileid) == (5, 4096, 7)
    assert (attrs.atime.seconds, attrs.atime.nseconds) == (1_500_000_000, 123_456_789)
    assert (attrs.mtime.seconds, attrs.mtime.nseconds) == (2, 1)
    assert attrs.fsid == AttrMapper(vol).fsid != AttrMapper(bytes(16)).fsid


@pytest.mark.parametrize("ino32_on", [False, True])
def test_fattr3_fields_pack_to_the_codecs_fattr3(ino32_on):
    import struct

    from nfs.nfs3_attrs import FATTR3_FORMAT
    mapper = AttrMapper(bytes(range(16)), enable_ino32=ino32_on)
    iatt = make_iatt()
    packed = struct.pack(">" + FATTR3_FORMAT, *mapper.fattr3_fields(iatt))
    assert packed == bytes(N.fattr3.encode(mapper.fattr3(iatt)))


def test_ino32_folds_and_keeps_root_at_1():
    big = (0xDEADBEEF << 32) | 0x12345678
    mapper = AttrMapper(bytes(16), enable_ino32=True)
    assert mapper.fileid(big) == 0xDEADBEEF ^ 0x12345678 < 1 << 32
    assert ino32(int.from_bytes(ROOT_GFID[8:], "big")) == 1
    assert AttrMapper(bytes(16)).fileid(big) == big


def test_wcc_and_post_op():
    mapper = AttrMapper(bytes(16))
    assert mapper.post_op(None) == (False, None)
    wcc = mapper.wcc(make_iatt(size=1), make_iatt(size=2))
    assert wcc.before[0] and wcc.before[1].size == 1 and wcc.after[1].size == 2
    assert mapper.wcc(None, make_iatt()).before == (False, None)


def test_sattr3_to_setattr():
    change = sattr3_to_setattr(sattr(mode=0o10755, uid=5, size=0, atime="now", mtime=(3, 4)))
    assert change.mode == 0o755 and change.uid == 5 and change.gid is None and change.size == 0
    assert change.atime == SET_TO_NOW and change.mtime == 3_000_000_004
    empty = sattr3_to_setattr(sattr())
    assert (empty.mode, empty.atime, empty.mtime) == (None, None, None)


def test_attributes_are_built_field_by_field_as_the_protocol_names_them():
    """fattr3/pre_op/wcc call the value classes positionally (it is faster): the
    result must be what naming every field gives, whatever their order in nfs3.x."""
    iatt = Iatt(b"\x07" * 16, IA_REG, 0o2755, 3, 1000, 2000, 12345, 16384, 8, 1, 2049,
                0x0102030405060708, -3 * 10**9 - 5, 1_700_000_000_123_456_789, (1 << 33) * 10**9)
    for mapper in (AttrMapper(bytes(range(16))), AttrMapper(bytes(range(16)), True)):
        def t(ns):
            return N.nfstime3(seconds=(ns // 10**9) & 0xFFFFFFFF, nseconds=ns % 10**9)
        expected = N.fattr3(
            type=IA_REG, mode=0o2755, nlink=3, uid=1000, gid=2000, size=12345, used=16384,
            rdev=N.specdata3(specdata1=8, specdata2=1), fsid=mapper.fsid,
            fileid=mapper.fileid(iatt.ino), atime=t(iatt.atime), mtime=t(iatt.mtime),
            ctime=t(iatt.ctime))
        assert mapper.fattr3(iatt) == expected
        assert N.fattr3.encode(mapper.fattr3(iatt)) == N.fattr3.encode(expected)
        pre = N.wcc_attr(size=12345, mtime=t(iatt.mtime), ctime=t(iatt.ctime))
        assert mapper.wcc(iatt, iatt) == N.wcc_data(before=(True, pre), after=(True, expected))
