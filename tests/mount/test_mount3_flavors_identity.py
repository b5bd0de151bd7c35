"""Review findings 12 and 7 for MOUNT.

12. MNT offers only the flavours nfs/server accepts (rpc-auth.auth-unix,
    rpc-auth.auth-null), read from the server above the mounted volume.
7.  The rmtab is read and written as the daemon, whatever NFS caller the
    stage thread served last (/tmp/review/exp_rmtab.py).
"""
from __future__ import annotations

import os
import threading

import pytest

from glusterfsd.options import Option, OptionTable
from glusterfsd.xlator import Xlator
from mount import mount3
from mount.mount3 import MOUNT, MountService, offered_flavors
from mount.rmtab import Rmtab
from nfs.exports import EXPORT_OPTIONS, ExportTable
from rpcsvc.client import RpcClient
from rpcsvc.svc import RpcService
from xlators.storage import syscalls
from xlators.storage.identity import Identity, reset_thread
from xlators.storage.posix import PosixXlator

MNT = MOUNT.programs["MOUNT_PROGRAM"].versions[3].procs[mount3.PROC_MNT]


class FlavorServer(Xlator):
    """Stands in for nfs/server: the export options and the two flavour switches."""

    type_name = "test/mount-flavor-server"
    options = EXPORT_OPTIONS + (
        Option("rpc-auth.auth-unix", "bool", "on"),
        Option("rpc-auth.auth-null", "bool", "on"),
    )


@pytest.fixture
def mount_server(pool, tmp_path):
    """mount_server(**options) -> (server xlator, MountService, tcp port)."""
    made = []

    def make(**given):
        brick = tmp_path / f"brick{len(made)}" / "gv0"
        brick.mkdir(parents=True)
        volume = PosixXlator("gv0", {"directory": str(brick)}, [])
        volume.init()
        server = FlavorServer("nfs", OptionTable(FlavorServer.options).validate(given), [volume])
        service = MountService(lambda: ExportTable.from_options(server), Rmtab(None))
        svc = RpcService(pool, stage_threads=1, name="mount-flavors")
        for program in service.programs():
            svc.add_program(program)
        port = svc.listen("127.0.0.1", 0, "tcp").getsockname()[1]
        made.append((svc, volume))
        return server, service, port

    yield make
    for svc, volume in made:
        svc.close()
        volume.fini()
    reset_thread()


def flavors_of_mnt(port: int) -> list[int]:
    with RpcClient("127.0.0.1", port, "tcp", timeout=5, cred=("sys", 0, 0, (0,), "c")) as client:
        status, ok = client.call(100005, 3, mount3.PROC_MNT, MNT.arg, b"/gv0", MNT.res)
    assert status == MOUNT.MNT3_OK
    return list(ok.auth_flavors)


@pytest.mark.parametrize("options, expected", [
    ({}, [1, 0]),                                         # both on: AUTH_UNIX first
    ({"rpc-auth.auth-null": "off"}, [1]),                 # AUTH_NULL is refused by NFS
    ({"rpc-auth.auth-unix": "off"}, [0]),                 # AUTH_UNIX is refused by NFS
])
def test_mnt_offers_only_the_flavours_nfs_accepts(mount_server, options, expected):
    _server, _service, port = mount_server(**options)
    assert flavors_of_mnt(port) == expected


def test_a_reconfigured_server_offers_its_new_flavours(mount_server):
    server, _service, port = mount_server()
    assert flavors_of_mnt(port) == [1, 0]
    server.reconfigure({"rpc-auth.auth-null": False})
    assert flavors_of_mnt(port) == [1]


def test_offered_flavors_from_an_explicit_reader_or_none():
    assert offered_flavors(None) == [1, 0]               # not under an nfs/server: its defaults
    values = {"rpc-auth.auth-unix": True, "rpc-auth.auth-null": False}
    assert offered_flavors(values.get) == [1]
    values["rpc-auth.auth-unix"] = False
    assert offered_flavors(values.get) == []             # nfs/server refuses this at init


# --- finding 7: the rmtab is the daemon's file ----------------------------------
@pytest.mark.skipif(os.geteuid() != 0, reason="switching identities needs root")
def test_rmtab_is_written_as_the_daemon_after_a_users_fop(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)                               # root's, not writable by uid 1000
    path = state / "rmtab"
    tab = Rmtab(str(path))
    out: dict = {}

    def stage_thread():
        Identity().become((1000, 1000, (1000,)))          # what a uid-1000 NFS fop leaves
        tab.add("10.0.0.1", "/gv0")
        out["after"] = syscalls.current_fsuid()
        out["first"] = path.read_text()
        os.unlink(path)                                   # the operator clears it
        Identity().become((1000, 1000, (1000,)))          # another NFS fop on this thread
        tab.add("10.0.0.2", "/gv0")
        out["entries"] = tab.entries()

    thread = threading.Thread(target=stage_thread)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert out["after"] == 0                              # the daemon's identity, not 1000's
    assert "hostname-0=10.0.0.1" in out["first"]
    assert out["entries"] == [("10.0.0.2", "/gv0")]       # the file is the truth
    assert path.exists() and path.stat().st_uid == 0
    assert "hostname-0=10.0.0.2" in path.read_text()
