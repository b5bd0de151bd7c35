"""Fixtures for the MOUNT tests: real storage/posix volumes behind a served MOUNT program."""
from __future__ import annotations

import os
import threading
import time

import pytest

from glusterfsd.options import Option, OptionTable
from glusterfsd.xlator import Xlator
from mount.mount3 import MountService
from mount.rmtab import Rmtab
from nfs.exports import EXPORT_OPTIONS, ExportTable
from rpcsvc.svc import RpcService
from xlators.storage.identity import reset_thread
from xlators.storage.posix import PosixXlator


class ServerStandIn(Xlator):
    """Holds the export options the way nfs/server does, over real subvolumes."""

    type_name = "test/mount-server"
    options = EXPORT_OPTIONS + (Option("nfs.port", "int", "2049"),)


class Served:
    def __init__(self, svc, service, tcp_port, udp_port, volumes):
        self.svc = svc
        self.service = service
        self.tcp_port = tcp_port
        self.udp_port = udp_port
        self.volumes = volumes

    @property
    def rmtab(self) -> Rmtab:
        return self.service.rmtab

    @property
    def exports(self) -> ExportTable:
        return self.service.exports


@pytest.fixture
def volume_dirs(tmp_path):
    """Two brick directories: gv0 with a tree, gv1 empty."""
    gv0 = tmp_path / "bricks" / "gv0"
    for sub in ("sub/deeper", "shared/inner", "a/b/c"):
        (gv0 / sub).mkdir(parents=True)
    (gv0 / "afile").write_text("not a directory")
    os.symlink("sub", gv0 / "link")
    gv1 = tmp_path / "bricks" / "gv1"
    gv1.mkdir(parents=True)
    return {"gv0": str(gv0), "gv1": str(gv1)}


@pytest.fixture
def serve_mount(pool, volume_dirs, tmp_path):
    """serve_mount(rmtab_path=None, **options) -> Served; all is closed afterwards."""
    made = []

    def make(rmtab_path=None, **given) -> Served:
        volumes = []
        for name, directory in volume_dirs.items():
            xl = PosixXlator(name, {"directory": directory}, [])
            xl.init()
            volumes.append(xl)
        typed = OptionTable(ServerStandIn.options).validate(given)
        server = ServerStandIn("nfs-server", typed, volumes)
        service = MountService(ExportTable.from_options(server), Rmtab(rmtab_path))
        svc = RpcService(pool, stage_threads=2, name="mount-test")
        for program in service.programs():
            svc.add_program(program)
        tcp = svc.listen("127.0.0.1", 0, "tcp")
        udp = svc.listen("127.0.0.1", 0, "udp")
        served = Served(svc, service, tcp.getsockname()[1], udp.getsockname()[1], volumes)
        made.append(served)
        return served

    yield make
    for served in made:
        served.svc.close()
        for xl in served.volumes:
            xl.fini()
    reset_thread()


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Every test must end the threads it started (stage, event, client)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    extra = []
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads left behind: {extra}")
