"""The master registers with the portmapper once for all its workers.

The host's port 111 may belong to a real rpcbind (or to the benchmarks), so
these tests move the portmapper to a free port (GLUSTERFS_PMAP_PORT): none
answers there, so the master starts its built-in one in a child of its own.
"""
from __future__ import annotations

import os
import signal
import socket

import psutil

from prefork_helpers import PreforkDaemon, wait_until
from rpcsvc import pmap


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def table(port: int) -> set:
    try:
        return set(pmap.dump(port=port))
    except Exception:
        return set()


def ours(nfs_port: int, mount_port: int) -> set:
    return {(100003, 3, proto, nfs_port) for proto in ("tcp", "udp")} | \
           {(100005, vers, proto, mount_port) for vers in (3, 1) for proto in ("tcp", "udp")}


def portmapper_children(srv) -> list:
    found = []
    for child in srv.children():
        try:
            if "glusterfs: portmapper" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:        # a zombie not yet reaped
            continue
    return found


def test_the_builtin_portmapper_child_is_registered_restarted_and_updated(tmp_path):
    pmap_port = free_port()
    srv = PreforkDaemon(tmp_path, server_options={"rpc.register-with-portmap": "on"},
                        environment={"GLUSTERFS_PMAP_PORT": str(pmap_port)})
    try:
        assert srv.start().returncode == 0
        nfs_port, mount_port = srv.ports()
        assert wait_until(lambda: ours(nfs_port, mount_port) <= table(pmap_port), 10)
        (child,) = portmapper_children(srv)
        os.kill(child.pid, signal.SIGKILL)           # its table dies with it ...
        assert wait_until(lambda: [c.pid for c in portmapper_children(srv)]
                          not in ([], [child.pid]), 10)
        assert wait_until(lambda: ours(nfs_port, mount_port) <= table(pmap_port), 10)  # refilled
        new_port = free_port()
        srv.write_volfile({"rpc.register-with-portmap": "on", "nfs.port": str(new_port)})
        srv.send(signal.SIGHUP)
        assert wait_until(lambda: ours(new_port, mount_port) <= table(pmap_port), 15)
        assert not ours(nfs_port, mount_port) <= table(pmap_port)
        family = [srv.master] + [c.pid for c in srv.children()]
        assert srv.stop()
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                       for pid in family)
    finally:
        srv.stop(signal.SIGKILL)


def test_registration_turned_on_by_a_reload(tmp_path):
    pmap_port = free_port()
    srv = PreforkDaemon(tmp_path, environment={"GLUSTERFS_PMAP_PORT": str(pmap_port)})
    try:
        assert srv.start().returncode == 0
        assert portmapper_children(srv) == []
        assert "portmapper" not in srv.log_text()
        nfs_port, mount_port = srv.ports()
        srv.write_volfile({"rpc.register-with-portmap": "on"})
        srv.send(signal.SIGHUP)
        assert wait_until(lambda: ours(nfs_port, mount_port) <= table(pmap_port), 15)
        assert len(portmapper_children(srv)) == 1
    finally:
        srv.stop()
