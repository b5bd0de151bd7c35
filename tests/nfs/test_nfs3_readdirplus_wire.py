"""READDIRPLUS replies are encoded by hand (nfs3_dir.plus_entry/plus_reply):
the bytes must be exactly what the XDR codec makes of the same entries as
entryplus3 objects, and a real client (libnfs) must list them."""
from __future__ import annotations

import itertools
import shutil
import sys
from pathlib import Path

import pytest

from glusterfsd.xlator import IA_BLK, IA_CHR, IA_DIR, IA_LNK, IA_REG, Iatt
from nfs import fh
from nfs.nfs3_attrs import N, AttrMapper
from nfs.nfs3_dir import plus_entry, plus_reply

VOLUME = bytes(range(16))
DIR_FH = fh.build(VOLUME, b"\x42" * 16, fh.mountid_for_path("/gv0"))
NS = 1_000_000_000


def codec_reply(mapper, dir_iatt, verf, entries, eof) -> bytes:
    """The reply as the codec encodes it: entries are (fileid, name, cookie, iatt, gfid)."""
    objs = [N.entryplus3.cls(
        fileid=fileid, name=name, cookie=cookie, name_attributes=mapper.post_op(iatt),
        name_handle=(True, N.nfs_fh3.cls(data=fh.with_gfid(DIR_FH, gfid)))
        if gfid is not None else (False, None))
        for fileid, name, cookie, iatt, gfid in entries]
    return N.READDIRPLUS3res.encode((N.NFS3_OK, N.READDIRPLUS3resok(
        dir_attributes=mapper.post_op(dir_iatt), cookieverf=verf,
        reply=N.dirlistplus3(entries=objs, eof=eof))))


def hand_reply(mapper, dir_iatt, verf, entries, eof) -> bytes:
    parts = [plus_entry(mapper, DIR_FH, fileid, name, cookie, iatt, gfid)
             for fileid, name, cookie, iatt, gfid in entries]
    return b"".join(plus_reply(mapper, dir_iatt, verf, parts, eof).buffers)


def iatt(n: int, kind=IA_REG, **changes) -> Iatt:
    gfid = n.to_bytes(2, "big") * 8
    fields = dict(gfid=gfid, type=kind, mode=0o4755 if n % 2 else 0o644, nlink=n % 7,
                  uid=(n * 7919) & 0xFFFFFFFF, gid=0xFFFFFFFE - n, size=n * 123457,
                  used=n * 4096, rdev_major=0, rdev_minor=0, dev=2049,
                  ino=int.from_bytes(gfid[8:], "big"), atime=1_700_000_000 * NS + n,
                  mtime=1_600_000_000 * NS + 999_999_999, ctime=n * NS + 17)
    fields.update(changes)
    return Iatt(**fields)


SPECIAL = [
    iatt(1, IA_DIR, nlink=2),
    iatt(2, IA_LNK),
    iatt(3, IA_CHR, rdev_major=4, rdev_minor=64),
    iatt(4, IA_BLK, rdev_major=259, rdev_minor=0xFFFFF),
    iatt(5, size=(1 << 64) - 1, used=(1 << 63), nlink=0xFFFFFFFF),
    iatt(6, atime=-5 * NS - 1, mtime=0, ctime=(1 << 32) * NS + 3),   # before 1970, after 2106
    iatt(7, mode=0o177777),                                          # type bits dropped
]


@pytest.mark.parametrize("enable_ino32", [False, True])
def test_hand_encoded_replies_are_the_codecs_bytes(enable_ino32):
    mapper = AttrMapper(VOLUME, enable_ino32)
    names = [b".", b"..", b"a", b"ab", b"abc", b"abcd", b"abcde", b"f0000000", b"\xff\xfe",
             b"n" * 255]
    attrs = [iatt(n) for n in range(20, 40)] + SPECIAL
    entries = []
    for i, (name, attr) in enumerate(zip(itertools.cycle(names), attrs)):
        gfid = attr.gfid
        entries.append((mapper.fileid(attr.ino), name, (i + 1) * 0x0123456789ABCD, attr, gfid))
    entries.append((99, b"no-attributes", 7, None, b"\x09" * 16))
    entries.append((98, b"no-handle", 8, iatt(50), None))
    entries.append((97, b"nothing", (1 << 63) - 1, None, None))
    for dir_iatt, eof, some in ((iatt(1, IA_DIR), True, entries), (None, False, entries[:3]),
                                (iatt(2, IA_DIR), True, [])):
        verf = bytes(range(8, 16))
        assert hand_reply(mapper, dir_iatt, verf, some, eof) == \
            codec_reply(mapper, dir_iatt, verf, some, eof)


def test_a_full_reply_decodes_to_the_same_entries():
    mapper = AttrMapper(VOLUME)
    entries = [(a.ino, b"e%d" % n, n + 1, a, a.gfid) for n, a in enumerate(SPECIAL)]
    data = hand_reply(mapper, iatt(1, IA_DIR), bytes(8), entries, True)
    status, res = N.READDIRPLUS3res.decode_all(data)
    assert status == N.NFS3_OK and res.reply.eof
    for got, (fileid, name, cookie, attr, gfid) in zip(res.reply.entries, entries):
        assert (got.fileid, bytes(got.name), got.cookie) == (fileid, name, cookie)
        assert got.name_attributes == mapper.post_op(attr)
        assert bytes(got.name_handle[1].data) == fh.with_gfid(DIR_FH, gfid)


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("nfs-ls") is None, reason="libnfs not installed")
def test_libnfs_lists_a_directory_of_many_replies(server, root, nfs):
    sys.path.insert(0, str(REPO))
    from benchmarks.libnfs_client import NfsClient
    brick = server.brick() / "many"
    brick.mkdir()
    expected = {}
    for i in range(700):                        # ~16 replies of libnfs's 8 KiB
        name = f"file-{i:04d}" + "x" * (i % 5)
        (brick / name).write_bytes(b"y" * i)
        (brick / name).chmod(0o600 + (i % 64))
        expected[name] = (0o100600 + (i % 64), i)
    (brick / "sub").mkdir()
    expected["sub"] = (0o40755, None)
    url = f"nfs://127.0.0.1/gv0/?nfsport={server.nfs_port}&mountport={server.mount_port}"
    for _ in range(2):                          # cold, then with the index memo filled
        with NfsClient(url) as client:
            listed = client.list_long("/many")
        got = {name: (mode, size if mode & 0o100000 else None)
               for name, mode, size, _, _ in listed}
        assert got == expected


def test_replies_of_the_procedure_are_canonical_xdr(server, root, nfs):
    """The procedure's own (inlined) encoding, on real entries of every kind: decoding
    checks lengths and zero padding, and encoding the decoded value again must give
    the same bytes; the entries must carry what GETATTR says."""
    import os
    from glusterfsd.xlator import Caller
    from nfs import nfs3_dir
    from nfs3_harness import fh3
    brick = server.brick() / "kinds"
    brick.mkdir()
    for n in range(1, 10):
        (brick / ("r" * n)).write_bytes(b"z" * n)
        os.chown(brick / ("r" * n), 1000 + n, 2000 + n)    # every field tells
    (brick / "a-dir").mkdir()
    os.symlink("r" * 3, brick / "a-link")
    os.mkfifo(brick / "a-fifo")
    status, res = nfs.lookup(root, b"kinds")
    handle = bytes(res.object.data)
    status, res = nfs.readdirplus(handle, dircount=65536, maxcount=65536)
    assert status == N.NFS3_OK and res.reply.eof     # files made behind our back now have gfids

    class Req:
        caller = Caller(0, 0, (), "127.0.0.1")
        transport = "tcp"
        peer = ("127.0.0.1", 700)
    names = set()
    cookie, verf = 0, bytes(8)
    for _ in range(100):
        req = Req()
        req.args = N.READDIRPLUS3args(dir=fh3(handle), cookie=cookie, cookieverf=verf,
                                      dircount=512, maxcount=1024)
        data = b"".join(nfs3_dir.proc_readdirplus(server.xlator.nfs3, req, req.args).buffers)
        decoded = N.READDIRPLUS3res.decode_all(data)
        assert N.READDIRPLUS3res.encode(decoded) == data
        status, got = decoded
        assert status == N.NFS3_OK
        for entry in got.reply.entries:
            names.add(bytes(entry.name))
            assert entry.name_attributes[0] and entry.name_handle[0]
            status, attrs = nfs.getattr(bytes(entry.name_handle[1].data))
            assert status == N.NFS3_OK and entry.name_attributes[1].fileid == entry.fileid
            if bytes(entry.name) not in (b".", b".."):   # (listing may touch the dir's atime)
                assert attrs.obj_attributes == entry.name_attributes[1]
        if got.reply.eof:
            break
        cookie, verf = got.reply.entries[-1].cookie, bytes(got.cookieverf)
    assert names == {b".", b"..", b"a-dir", b"a-link", b"a-fifo"} | {b"r" * n for n in range(1, 10)}


def _procedure_listing(nfs3, handle: bytes, dircount: int, maxcount: int) -> list:
    """Every entry of a directory through proc_readdirplus itself (its packing
    from the entries' lstat), checking each reply is canonical XDR: decoding
    checks lengths and padding, and the codec must encode the decoded value
    back to the same bytes."""
    from glusterfsd.xlator import Caller
    from nfs import nfs3_dir
    from nfs3_harness import fh3

    class Req:
        caller = Caller(0, 0, (), "127.0.0.1")
        transport = "tcp"
        peer = ("127.0.0.1", 700)
    out, cookie, verf = [], 0, bytes(8)
    for _ in range(1000):
        req = Req()
        req.args = N.READDIRPLUS3args(dir=fh3(handle), cookie=cookie, cookieverf=verf,
                                      dircount=dircount, maxcount=maxcount)
        data = b"".join(nfs3_dir.proc_readdirplus(nfs3, req, req.args).buffers)
        assert len(data) <= maxcount
        decoded = N.READDIRPLUS3res.decode_all(data)
        assert N.READDIRPLUS3res.encode(decoded) == data
        status, got = decoded
        assert status == N.NFS3_OK and got.dir_attributes[0]
        out.extend(got.reply.entries)
        if got.reply.eof:
            return out
        cookie, verf = got.reply.entries[-1].cookie, bytes(got.cookieverf)
    raise AssertionError("listing did not end")


@pytest.mark.parametrize("enable_ino32", [False, True])
def test_entries_packed_from_their_lstat_carry_getattrs_attributes(server, root, nfs,
                                                                   enable_ino32):
    """Odd values in every field the procedure packs from an entry's lstat
    (device numbers, set-id bits, 2^40 sizes, times before 1970 and after 2106,
    32-bit uids, hard links, ino32): each entry must say what GETATTR of its
    handle says, and the entry's fileid what the attributes' fileid says."""
    import os
    import stat as statmod
    from glusterfsd.xlator import Caller
    from nfs3_harness import fh3
    brick = server.brick() / "odd"
    brick.mkdir()
    (brick / "plain").write_bytes(b"p" * 5000)
    os.chmod(brick / "plain", 0o6755)
    with open(brick / "huge", "wb") as out:
        out.truncate(1 << 40)
    (brick / "linked").write_bytes(b"")
    os.link(brick / "linked", brick / "linked-2")
    (brick / "sub").mkdir()
    (brick / "sub" / "inner").mkdir()
    os.symlink("plain", brick / "a-link")
    os.mkfifo(brick / "a-fifo")
    os.mknod(brick / "a-char", 0o620 | statmod.S_IFCHR, os.makedev(4, 64))
    os.mknod(brick / "a-block", 0o660 | statmod.S_IFBLK, os.makedev(259, 0xFFFFF))
    (brick / "times").write_bytes(b"")
    os.utime(brick / "times", ns=(-5 * NS - 1, (1 << 32) * NS + 3))
    os.chown(brick / "times", 4_000_000_000, 4_000_000_001)
    for n in range(40):                     # replies of several entries
        (brick / ("f%03d" % n + "x" * (n % 5))).write_bytes(b"z" * n)
    status, res = nfs.lookup(root, b"odd")
    handle = bytes(res.object.data)
    nfs3 = server.xlator.nfs3

    class Req:
        caller = Caller(0, 0, (), "127.0.0.1")
        transport = "tcp"
        peer = ("127.0.0.1", 700)
    nfs3.resolve(Req(), fh3(handle)).mapper.enable_ino32 = enable_ino32
    _procedure_listing(nfs3, handle, 65536, 65536)      # gives the new files gfids
    for dircount, maxcount in ((8192, 8192), (300, 2000)):
        entries = _procedure_listing(nfs3, handle, dircount, maxcount)
        names = {bytes(e.name) for e in entries}
        assert {b".", b"..", b"plain", b"a-char", b"a-block", b"times", b"f039xxxx"} <= names
        assert len(names) == len(entries) == 2 + 10 + 40
        for entry in entries:
            assert entry.name_attributes[0] and entry.name_handle[0]
            attrs = entry.name_attributes[1]
            assert attrs.fileid == entry.fileid
            assert (entry.fileid >> 32 == 0) or not enable_ino32
            if bytes(entry.name) in (b".", b".."):
                continue
            status, got = nfs.getattr(bytes(entry.name_handle[1].data))
            assert status == N.NFS3_OK and got.obj_attributes == attrs, bytes(entry.name)
        by_name = {bytes(e.name): e.name_attributes[1] for e in entries}
        assert (by_name[b"a-block"].rdev.specdata1, by_name[b"a-block"].rdev.specdata2) == \
            (259, 0xFFFFF)
        assert by_name[b"linked-2"].nlink == 2 and by_name[b"sub"].nlink == 3
        assert by_name[b"huge"].size == 1 << 40 and by_name[b"plain"].mode == 0o6755
        assert by_name[b"times"].uid == 4_000_000_000
        assert by_name[b"times"].mtime.seconds == (1 << 32) & 0xFFFFFFFF
