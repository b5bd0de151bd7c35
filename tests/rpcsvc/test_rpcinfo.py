"""The done-when checks with real tools: rpcinfo through the portmapper on port 111
(the built-in one, then Debian's rpcbind), and a tshark capture that must decode
as RPC/portmap without a malformed frame.

Port 111 is global on this machine: a test that cannot have it skips, and every
test gives it back (portmapper stopped, rpcbind ended by its pid).
"""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time

import pytest

from rpc_testkit import GETATTR, NFS_PROG, REMOVE, RawPeer, call_msg, getattr_args, \
    remove_args, sys_cred, udp_call
from rpcsvc import pmap, wire
from rpcsvc.pmap_server import BuiltinPortmapper
from tshark_capture import Capture

needs_rpcinfo = pytest.mark.skipif(shutil.which("rpcinfo") is None, reason="rpcinfo missing")


def port_111_free() -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", 111))
            except OSError:
                return False
    return True


def rpcinfo(*args, timeout=20) -> subprocess.CompletedProcess:
    return subprocess.run(["rpcinfo", *args], capture_output=True, text=True, timeout=timeout)


def check_rpcinfo_sees(served) -> None:
    listing = rpcinfo("-p", "127.0.0.1")
    assert listing.returncode == 0, listing.stderr
    rows = {tuple(line.split()[:4]) for line in listing.stdout.splitlines()[1:]}
    assert ("100003", "3", "tcp", str(served.tcp_port)) in rows
    assert ("100003", "3", "udp", str(served.udp_port)) in rows
    assert ("100000", "2", "tcp", "111") in rows
    for flag in ("-t", "-u"):
        ok = rpcinfo(flag, "127.0.0.1", "100003", "3")
        assert ok.returncode == 0 and "ready and waiting" in ok.stdout, ok.stderr
    mismatch = rpcinfo("-t", "127.0.0.1", "100003", "4")
    assert mismatch.returncode != 0
    assert "low version = 3, high version = 3" in mismatch.stdout + mismatch.stderr


@pytest.fixture
def builtin_portmapper(pool):
    if not port_111_free():
        pytest.skip("port 111 is taken (rpcbind or another test); the built-in needs it")
    pm = BuiltinPortmapper(pool)
    if not pm.start("127.0.0.1", 111):
        pytest.skip("lost the race for port 111")
    yield pm
    pm.stop()


def register(served) -> list:
    mappings = served.svc.mappings()
    assert {(m[2], m[3]) for m in mappings} == {("tcp", served.tcp_port),
                                                ("udp", served.udp_port)}
    assert pmap.register_programs(mappings)
    return mappings


@needs_rpcinfo
def test_rpcinfo_with_the_builtin_portmapper(serve, builtin_portmapper, tmp_path):
    served = serve()
    capture = None
    probes = itertools.count(1000)
    if shutil.which("tshark"):
        capture = Capture(tmp_path / "rpc.pcap", [111, served.tcp_port, served.udp_port],
                          probe=lambda: udp_call(served.udp_port, call_msg(next(probes))))
    try:
        mappings = register(served)
        check_rpcinfo_sees(served)
        assert rpcinfo("127.0.0.1").returncode == 0              # rpcbind v3/v4 DUMP
        assert rpcinfo("-m", "127.0.0.1").returncode == 0        # v4 GETSTAT
        # error replies and a busy exchange on the service ports, all well-formed calls
        peer = RawPeer(served.tcp_port)
        try:
            assert peer.call(call_msg(1, prog=100099)).stat == wire.PROG_UNAVAIL
            assert peer.call(call_msg(2, vers=2)).stat == wire.PROG_MISMATCH
            assert peer.call(call_msg(3, proc=30)).stat == wire.PROC_UNAVAIL
            assert peer.call(call_msg(4, proc=GETATTR, args=getattr_args())).stat == \
                wire.SYSTEM_ERR
            assert peer.call(call_msg(5, rpcvers=3)).stat == wire.RPC_MISMATCH
            msg = call_msg(6, proc=REMOVE, args=remove_args(), cred=sys_cred())
            assert peer.call(msg).success and peer.call(msg).success   # DRC replay
        finally:
            peer.close()
        assert udp_call(served.udp_port, call_msg(7, vers=9)).stat == wire.PROG_MISMATCH
        assert pmap.unregister_programs(mappings)
        assert rpcinfo("-t", "127.0.0.1", "100003", "3").returncode != 0
    finally:
        if capture:
            capture.stop()
    if capture:
        ports = dict(tcp_ports=[served.tcp_port], udp_ports=[served.udp_port])
        bad = capture.read("_ws.malformed || _ws.expert.severity >= error", **ports)
        assert bad == [], "\n".join(bad)
        assert len(capture.read("portmap")) >= 10
        nfs_frames = capture.read(f"rpc && (tcp.port == {served.tcp_port} || "
                                  f"udp.port == {served.udp_port})", **ports)
        assert len(nfs_frames) >= 12


@pytest.fixture
def rpcbind():
    if shutil.which("rpcbind") is None:
        pytest.skip("rpcbind is not installed")
    if os.geteuid() != 0:
        pytest.skip("rpcbind must be started as root")
    if not port_111_free():
        pytest.skip("port 111 is taken")
    proc = subprocess.Popen(["rpcbind", "-f", "-w"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not pmap.portmapper_answers(timeout=1):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"rpcbind did not come up: {proc.stderr.read()!r}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        proc.stderr.close()


@needs_rpcinfo
def test_rpcinfo_with_debian_rpcbind(serve, rpcbind):
    served = serve()
    mappings = register(served)
    try:
        check_rpcinfo_sees(served)
        owners = rpcinfo("127.0.0.1").stdout
        assert "100003" in owners
    finally:
        assert pmap.unregister_programs(mappings)
    rows = rpcinfo("-p", "127.0.0.1").stdout
    assert f" {served.tcp_port} " not in rows and "100003" not in rows
    assert NFS_PROG == 100003
