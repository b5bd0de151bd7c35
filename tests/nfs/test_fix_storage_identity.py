"""Review findings 1, 2, 6, 7 and 12 end to end, through a served nfs/server.

The reviewer's scripts (/tmp/review/): exp_uidm1b.py (uid 0xFFFFFFFF acted
as root), exp_squash.py (owners locked out of their 0600 files under
root-squash), exp_stale_owner2.py (a chown elsewhere left the old owner
writing), exp_rmtab.py (MNT wrote the rmtab as the last NFS caller).  Each
test puts the refused request next to the allowed one.
"""
from __future__ import annotations

import os

import pytest

from nfs3_harness import OK, M, MOUNT_PROCS, N, NfsTestServer
from rpcsvc.client import RpcClient

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="caller identities need root")
ACCES = N.NFS3ERR_ACCES


def private_root_file(srv, mode=0o600, data=b"root only\n"):
    brick = srv.brick()
    os.chmod(brick, 0o755)
    (brick / "secret").write_bytes(data)
    os.chmod(brick / "secret", mode)


@pytest.mark.parametrize("squash", ["on", "off"])
def test_uid_minus_one_is_anonymous_not_root(tmp_path, squash):
    with NfsTestServer(tmp_path, posix_options={"gv0": {"root-squash": squash}}) as srv:
        root = srv.mount("/gv0")
        private_root_file(srv)
        for uid, may in ((0xFFFFFFFF, False), (1000, False), (0, squash == "off")):
            with srv.client(uid=uid, gid=uid) as c:
                status, res = c.lookup(root, b"secret")
                assert status == OK
                secret = bytes(res.object.data)
                for _ in range(8):   # every stage thread: a GETATTR (as_root inside) first
                    assert c.getattr(secret)[0] == OK
                    status, read = c.read(secret, 0, 100)
                    assert status == (OK if may else ACCES), (hex(uid), status)
                status, _ = c.create(root, b"by-%x" % uid)
                assert status == (OK if may else ACCES), (hex(uid), status)
        assert not (srv.brick() / "by-ffffffff").exists()


def test_owner_reads_and_writes_a_0600_file_under_root_squash(tmp_path):
    with NfsTestServer(tmp_path, posix_options={"gv0": {"root-squash": "on"}}) as srv:
        root = srv.mount("/gv0")
        os.chmod(srv.brick(), 0o777)
        with srv.client(uid=1000, gid=1000) as owner, srv.client(uid=2000, gid=2000) as other, \
                srv.client(uid=0, gid=0) as squashed_root:
            status, res = owner.create(root, b"mine", mode=0o600)
            assert status == OK
            mine = bytes(res.obj[1].data)
            srv.xlator.fds.close_all()      # the next call opens the file anew (as the server)
            assert owner.write(mine, 0, b"hello")[0] == OK
            status, read = owner.read(mine, 0, 10)
            assert status == OK and bytes(read.data) == b"hello"
            assert other.write(mine, 0, b"evil")[0] == ACCES
            assert other.read(mine, 0, 10)[0] == ACCES
            assert squashed_root.read(mine, 0, 10)[0] == ACCES   # root is nobody here
        assert (srv.brick() / "mine").read_bytes() == b"hello"


def test_owner_override_follows_a_chown_made_elsewhere(tmp_path):
    with NfsTestServer(tmp_path) as srv:
        root = srv.mount("/gv0")
        os.chmod(srv.brick(), 0o777)
        with srv.client(uid=1000, gid=1000) as alice, srv.client(uid=3000, gid=3000) as carol:
            status, res = alice.create(root, b"doc", mode=0o600)
            doc = bytes(res.obj[1].data)
            assert alice.write(doc, 0, b"a")[0] == OK
            assert alice.getattr(doc)[0] == OK            # the inode table knows alice owns it
            os.chown(srv.brick() / "doc", 3000, 3000)     # another head / the admin gives it away
            status, res = alice.write(doc, 0, b"EVIL")
            assert status == ACCES and res.file_wcc.after[0]   # with the file's attributes
            assert alice.read(doc, 0, 4)[0] == ACCES
            assert carol.write(doc, 1, b"c")[0] == OK     # the new owner may
        assert (srv.brick() / "doc").read_bytes() == b"ac"


def test_a_file_created_0444_stays_writable_by_its_owner_only(tmp_path):
    with NfsTestServer(tmp_path) as srv:
        root = srv.mount("/gv0")
        os.chmod(srv.brick(), 0o777)
        with srv.client(uid=1000, gid=1000) as owner, srv.client(uid=2000, gid=2000) as other:
            status, res = owner.create(root, b"ro", mode=0o444)
            ro = bytes(res.obj[1].data)
            assert owner.write(ro, 0, b"kept")[0] == OK   # knfsd's owner override
            assert other.write(ro, 0, b"lost")[0] == ACCES
            status, read = other.read(ro, 0, 4)
            assert status == OK and bytes(read.data) == b"kept"


def test_mnt_records_the_rmtab_after_a_users_call_on_the_same_thread(tmp_path):
    os.chmod(tmp_path, 0o755)
    rmtab = tmp_path / "state" / "rmtab"
    rmtab.parent.mkdir(mode=0o755)
    options = {"nfs.stage-threads": "1", "nfs.mount-rmtab": str(rmtab)}
    with NfsTestServer(tmp_path, server_options=options) as srv:
        root = srv.mount("/gv0")
        assert "mountpoint-0=/gv0" in rmtab.read_text()
        with srv.client(uid=1000, gid=1000) as c:
            assert c.getattr(root)[0] == OK           # the only stage thread is uid 1000 now
        os.unlink(rmtab)                              # cleared by the operator / another head
        srv.mount("/gv0")
        assert rmtab.exists() and "hostname-0=127.0.0.1" in rmtab.read_text()
        assert rmtab.stat().st_uid == 0


def mnt_flavors(srv) -> list[int]:
    proc = MOUNT_PROCS["MNT"]
    with RpcClient("127.0.0.1", srv.mount_port, cred=("sys", 0, 0, [], "t")) as client:
        status, res = client.call(M.MOUNT_PROGRAM, 3, proc.number, proc.arg, b"/gv0", proc.res)
    assert status == M.MNT3_OK
    return list(res.auth_flavors)


@pytest.mark.parametrize("options, expected", [
    ({}, [1, 0]),
    ({"rpc-auth.auth-null": "off"}, [1]),
    ({"rpc-auth.auth-unix": "off"}, [0]),
])
def test_mnt_offers_the_flavours_the_server_accepts(tmp_path, options, expected):
    with NfsTestServer(tmp_path, server_options=options) as srv:
        assert mnt_flavors(srv) == expected
        if expected == [0]:   # and what is offered is what NFS then takes
            root = srv.mount("/gv0")
            with srv.client(flavor="none") as anonymous:
                assert anonymous.getattr(root)[0] == OK
