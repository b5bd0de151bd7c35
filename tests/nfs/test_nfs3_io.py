"""READ, WRITE, COMMIT: data, eof, stability, verifier, permissions, read-only exports."""
import os

import pytest

from nfs import writeverf
from nfs3_harness import N, OK, NfsTestServer, fh3


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, (1 << 20) - 1, 1 << 20, (1 << 20) + 1])
def test_write_then_read_back(nfs, root, server, size):
    data = os.urandom(size)
    handle = nfs.new_file(root, b"f")
    offset = 0
    while offset < size:
        chunk = data[offset:offset + (1 << 20)]
        status, res = nfs.write(handle, offset, chunk, stable=N.UNSTABLE)
        assert status == OK
        offset += res.count
    assert nfs.call("COMMIT", file=fh3(handle), offset=0, count=0)[0] == OK
    assert (server.brick() / "f").read_bytes() == data
    got, offset = b"", 0
    for _ in range(10):
        status, res = nfs.read(handle, offset, 1 << 20)
        assert status == OK
        got += bytes(res.data)
        offset += res.count
        if res.eof:
            break
    assert got == data


def test_read_eof_flags(nfs, root):
    handle = nfs.new_file(root, b"f", b"abcdef")
    res = nfs.read(handle, 0, 3)[1]
    assert bytes(res.data) == b"abc" and res.count == 3 and not res.eof
    res = nfs.read(handle, 3, 3)[1]
    assert bytes(res.data) == b"def" and res.eof
    res = nfs.read(handle, 100, 3)[1]
    assert res.count == 0 and res.eof and bytes(res.data) == b""


def test_read_count_is_capped_by_read_size(nfs, root):
    handle = nfs.new_file(root, b"f", b"x" * ((1 << 20) + 10))
    res = nfs.read(handle, 0, 4 << 20)[1]
    assert res.count == 1 << 20 and not res.eof


def test_write_past_the_end_fills_the_gap(nfs, root, server):
    handle = nfs.new_file(root, b"f", b"ab")
    status, res = nfs.write(handle, 10, b"z")
    assert status == OK and res.file_wcc.after[1].size == 11
    assert res.file_wcc.before[0] and res.file_wcc.before[1].size == 2
    assert (server.brick() / "f").read_bytes() == b"ab" + bytes(8) + b"z"


@pytest.mark.parametrize("stable", [N.UNSTABLE, N.DATA_SYNC, N.FILE_SYNC])
def test_committed_is_at_least_what_was_asked(nfs, root, stable):
    handle = nfs.new_file(root, b"f")
    status, res = nfs.write(handle, 0, b"data", stable=stable)
    assert status == OK and res.committed >= stable and res.count == 4


def test_verifier_is_the_same_for_write_and_commit_and_changes_on_restart(server, root):
    with server.client() as nfs:
        handle = nfs.new_file(root, b"f")
        verf = bytes(nfs.write(handle, 0, b"x", stable=N.UNSTABLE)[1].verf)
        assert bytes(nfs.call("COMMIT", file=fh3(handle), offset=0, count=0)[1].verf) == verf
    server.restart()
    with server.client() as nfs:
        assert bytes(nfs.write(handle, 1, b"y", stable=N.UNSTABLE)[1].verf) != verf


def test_verifier_changes_when_data_may_be_lost():
    before = writeverf.current()
    after = writeverf.data_may_be_lost()
    assert before != after == writeverf.current()


def test_write_with_count_larger_than_data_is_inval(nfs, root):
    handle = nfs.new_file(root, b"f")
    status, res = nfs.call("WRITE", file=fh3(handle), offset=0, count=10, stable=N.FILE_SYNC,
                           data=b"abc")
    assert status == N.NFS3ERR_INVAL and res.file_wcc.after[0]


def test_write_to_a_directory_is_isdir(nfs, root):
    status, res = nfs.write(root, 0, b"x")
    assert status == N.NFS3ERR_ISDIR and res.file_wcc.after[0]
    assert nfs.read(root, 0, 1)[0] == N.NFS3ERR_ISDIR


def test_uid_1000_gets_acces_on_a_0600_root_file(server, root, nfs):
    handle = nfs.new_file(root, b"secret", b"top secret", mode=0o600)
    with server.client(uid=1000, gid=1000) as user:
        status, res = user.read(handle, 0, 100)
        assert status == N.NFS3ERR_ACCES and res.file_attributes[0]
        status, res = user.write(handle, 0, b"x")
        assert status == N.NFS3ERR_ACCES and res.file_wcc.after[0]
    assert (server.brick() / "secret").read_bytes() == b"top secret"


def test_owner_may_write_a_0444_file_it_created(server, root, nfs):
    status, res = nfs.mkdir(root, b"home", mode=0o777)
    home = bytes(res.obj[1].data)
    with server.client(uid=1000, gid=1000) as user:
        handle = user.new_file(home, b"ro", mode=0o444)
        status, res = user.write(handle, 0, b"mine")
        assert status == OK
        assert bytes(user.read(handle, 0, 4)[1].data) == b"mine"
    with server.client(uid=1001, gid=1001) as other:
        assert other.write(handle, 0, b"x")[0] == N.NFS3ERR_ACCES
        assert other.read(handle, 0, 4)[0] == OK      # 0444: others may read


def test_commit_on_a_directory_is_isdir(nfs, root):
    status, res = nfs.call("COMMIT", file=fh3(root), offset=0, count=0)
    assert status == N.NFS3ERR_ISDIR


def test_read_over_udp_is_capped_to_a_datagram(server, root, nfs):
    handle = nfs.new_file(root, b"f", b"u" * 100_000)
    with server.client(proto="udp") as udp:
        status, res = udp.read(handle, 0, 100_000)
    assert status == OK and res.count == 32768 and bytes(res.data) == b"u" * 32768


# --- export flavours ---------------------------------------------------------------
def test_read_only_export_refuses_every_change(tmp_path):
    with NfsTestServer(tmp_path) as srv:
        root = srv.mount()
        with srv.client() as nfs:
            handle = nfs.new_file(root, b"f", b"data")
            sub = nfs.new_dir(root, b"d")
    ro = NfsTestServer(tmp_path, server_options={"nfs3.gv0.volume-access": "read-only"})
    with ro as srv, srv.client() as nfs:
        root = srv.mount()
        d = fh3(root)
        where = N.diropargs3(dir=d, name=b"new")
        checks = {
            "SETATTR": dict(object=fh3(handle), new_attributes=N.sattr3(
                mode=(True, 0o600), uid=(False, None), gid=(False, None), size=(False, None),
                atime=(N.DONT_CHANGE, None), mtime=(N.DONT_CHANGE, None)), guard=(False, None)),
            "WRITE": dict(file=fh3(handle), offset=0, count=1, stable=N.FILE_SYNC, data=b"x"),
            "MKDIR": dict(where=where, attributes=N.sattr3(
                mode=(False, None), uid=(False, None), gid=(False, None), size=(False, None),
                atime=(N.DONT_CHANGE, None), mtime=(N.DONT_CHANGE, None))),
            "SYMLINK": dict(where=where, symlink=N.symlinkdata3(symlink_attributes=N.sattr3(
                mode=(False, None), uid=(False, None), gid=(False, None), size=(False, None),
                atime=(N.DONT_CHANGE, None), mtime=(N.DONT_CHANGE, None)), symlink_data=b"t")),
            "MKNOD": dict(where=where, what=(N.NF3FIFO, N.sattr3(
                mode=(False, None), uid=(False, None), gid=(False, None), size=(False, None),
                atime=(N.DONT_CHANGE, None), mtime=(N.DONT_CHANGE, None)))),
            "REMOVE": dict(object=N.diropargs3(dir=d, name=b"f")),
            "RMDIR": dict(object=N.diropargs3(dir=d, name=b"d")),
            "RENAME": dict(from_=N.diropargs3(dir=d, name=b"f"), to=where),
            "LINK": dict(file=fh3(handle), link=where),
        }
        for name, args in checks.items():
            status, res = nfs.call(name, **args)
            assert status == N.NFS3ERR_ROFS, name
        assert nfs.create(root, b"new")[0] == N.NFS3ERR_ROFS
        assert nfs.read(handle, 0, 4)[0] == OK
        access = nfs.call("ACCESS", object=fh3(root), access=0x3F)[1].access
        assert access & (0x04 | 0x08 | 0x10) == 0 and access & 0x01
        assert fh3(sub)
    assert (tmp_path / "bricks" / "gv0" / "f").read_bytes() == b"data"


def test_trusted_write_answers_unstable_as_file_sync(tmp_path):
    with NfsTestServer(tmp_path, server_options={"nfs3.gv0.trusted-write": "on"}) as srv:
        root = srv.mount()
        with srv.client() as nfs:
            handle = nfs.new_file(root, b"f")
            assert nfs.write(handle, 0, b"x", stable=N.UNSTABLE)[1].committed == N.FILE_SYNC
            assert nfs.write(handle, 0, b"x", stable=N.DATA_SYNC)[1].committed == N.DATA_SYNC


def test_trusted_sync_answers_everything_as_file_sync(tmp_path):
    with NfsTestServer(tmp_path, server_options={"nfs3.gv0.trusted-sync": "on"}) as srv:
        root = srv.mount()
        with srv.client() as nfs:
            handle = nfs.new_file(root, b"f")
            for stable in (N.UNSTABLE, N.DATA_SYNC, N.FILE_SYNC):
                assert nfs.write(handle, 0, b"x", stable=stable)[1].committed == N.FILE_SYNC
            status, res = nfs.call("COMMIT", file=fh3(handle), offset=0, count=0)
            assert status == OK and res.file_wcc.after[1].size == 1


WRITE_ARG = N.programs["NFS_PROGRAM"].versions[3].procs[7].arg


@pytest.mark.parametrize("stable,inline", [(N.UNSTABLE, True), (N.DATA_SYNC, False),
                                           (N.FILE_SYNC, False)])
def test_is_unstable_write_reads_stable_how_from_the_raw_arguments(stable, inline):
    from nfs.nfs3_io import is_unstable_write
    args = N.WRITE3args(file=fh3(b"h" * 50), offset=7, count=3, stable=stable, data=b"abc")
    raw = b"\0" * 40 + bytes(WRITE_ARG.encode(args))
    assert is_unstable_write(raw, 40) is inline


@pytest.mark.parametrize("raw", [b"", b"\0\0\0\x34" + b"h" * 52, b"\0\0\1\0" + b"\0" * 300],
                         ids=["empty", "cut after the handle", "handle longer than 64"])
def test_is_unstable_write_leaves_malformed_calls_to_the_decoder(raw):
    from nfs.nfs3_io import is_unstable_write
    assert is_unstable_write(raw, 0) is False


def test_unstable_writes_run_on_the_event_thread_stable_ones_on_a_stage(nfs, root, monkeypatch):
    import threading

    from xlators.storage import posix_io
    handle = nfs.new_file(root, b"threads")
    seen = []
    real = posix_io.IoFops.write

    def spy(self, *args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(posix_io.IoFops, "write", spy)
    for stable in (N.UNSTABLE, N.FILE_SYNC):
        status, res = nfs.write(handle, 0, b"data", stable=stable)
        assert status == OK and res.count == 4
    assert seen[0].startswith("glfs_"), seen
    assert "-stage" in seen[1], seen


@pytest.mark.parametrize("size", [0, 1, 3, 4, 4097])
def test_hand_encoded_read_reply_is_what_the_codec_encodes(nfs, root, size):
    """READ's reply is packed by hand (nfs3_io._READ_HEAD): decoding it and encoding
    the value again with the generated codec gives the very same bytes."""
    handle = nfs.new_file(root, b"wire%d" % size, bytes(range(256)) * 20)
    proc = N.programs["NFS_PROGRAM"].versions[3].procs[6]
    raw = nfs.rpc.call(N.NFS_PROGRAM, 3, 6, proc.arg,
                       N.READ3args(file=fh3(handle), offset=5120 - size, count=size), None)
    value, end = proc.res.decode(raw, 0)
    assert end == len(raw)
    status, res = value
    assert status == OK and res.count == size and res.eof      # it ends at the end of the file
    assert bytes(proc.res.encode(value)) == raw


@pytest.mark.parametrize("stable", [N.UNSTABLE, N.FILE_SYNC])
def test_hand_encoded_write_reply_is_what_the_codec_encodes(nfs, root, stable):
    handle = nfs.new_file(root, b"wwire%d" % stable, b"before")
    proc = N.programs["NFS_PROGRAM"].versions[3].procs[7]
    raw = nfs.rpc.call(N.NFS_PROGRAM, 3, 7, proc.arg, N.WRITE3args(
        file=fh3(handle), offset=3, count=5, stable=stable, data=b"after"), None)
    value, end = proc.res.decode(raw, 0)
    status, res = value
    assert end == len(raw) and status == OK
    assert (res.count, res.committed) == (5, stable)
    assert res.file_wcc.before[1].size == 6 and res.file_wcc.after[1].size == 8
    assert bytes(proc.res.encode(value)) == raw
