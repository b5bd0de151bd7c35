"""`showmount -e` and `showmount -a` (nfs-common) against our MOUNT programs.

showmount finds mountd through the portmapper on 127.0.0.1:111, so this test
needs one there: it starts the built-in portmapper when the port is free,
uses an already running portmapper (rpcbind, or another test's) otherwise,
and skips only when something that is not a portmapper holds the port.
Everything it registered is removed again at the end.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from mount import mount3
from rpcsvc import pmap
from rpcsvc.client import RpcClient

SHOWMOUNT = shutil.which("showmount") or next(
    (p for p in ("/sbin/showmount", "/usr/sbin/showmount") if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(SHOWMOUNT is None, reason="showmount (nfs-common) is not installed")


@pytest.fixture
def registered(pool):
    """register(served): make served's programs known to a portmapper on 127.0.0.1:111."""
    builtin = pmap.BuiltinPortmapper(pool)
    started = builtin.start("127.0.0.1", pmap.PMAP_PORT)
    done = []

    def register(served):
        mappings = served.svc.mappings()
        if started:
            assert builtin.register(mappings)
        else:
            if not pmap.portmapper_answers("127.0.0.1", pmap.PMAP_PORT):
                pytest.skip("port 111 on 127.0.0.1 is held by something that is not a portmapper")
            assert pmap.register_programs(mappings), "the running portmapper refused our SETs"
        done.append(mappings)

    yield register
    for mappings in done:
        if started:
            builtin.unregister(mappings)
        else:
            pmap.unregister_programs(mappings)
    builtin.stop()


def showmount(flag: str) -> list[str]:
    result = subprocess.run([SHOWMOUNT, flag, "127.0.0.1"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_showmount_e_and_a(serve_mount, registered):
    served = serve_mount(**{"nfs3.gv0.export-dir": "/sub(10.0.0.0/8|127.0.0.1)",
                            "rpc-auth.addr.gv1.allow": "192.168.0.0/16,127.0.0.1"})
    registered(served)

    lines = showmount("-e")
    assert lines[0] == "Export list for 127.0.0.1:"
    listed = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert listed == {"/gv0": "(everyone)", "/gv0/sub": "10.0.0.0/8,127.0.0.1",
                      "/gv1": "192.168.0.0/16,127.0.0.1"}

    assert showmount("-a") == ["All mount points on 127.0.0.1:"]
    spec = mount3.MOUNT.programs["MOUNT_PROGRAM"].versions[3].procs[mount3.PROC_MNT]
    with RpcClient("127.0.0.1", served.tcp_port, "tcp", timeout=5,
                   cred=("sys", 0, 0, (0,), "client")) as client:
        for path in (b"/gv0", b"/gv0/sub"):
            status, _ = client.call(100005, 3, mount3.PROC_MNT, spec.arg, path, spec.res)
            assert status == mount3.MOUNT.MNT3_OK
    assert showmount("-a") == ["All mount points on 127.0.0.1:",
                               "127.0.0.1:/gv0", "127.0.0.1:/gv0/sub"]
