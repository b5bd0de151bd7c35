"""nfs/server's prefork side, in one process: the master binds, a worker serves and retires.

The "master" here is the test: it constructs the graph, calls prefork_bind and
hands over a PreforkShared; the "worker" is the same graph initialised in
this process, as a forked worker would do it.
"""
from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

from glusterfsd.graph import Graph
from glusterfsd.volfile import parse_text
from nfs.prefork import PreforkShared, SharedWriteVerifier
from nfs3_harness import MOUNT_PROCS, NFS_PROCS, OK, M, N, Nfs3Client, NfsTestServer, fh3, volfile
from rpcsvc import wire
from rpcsvc.client import RpcClient
from rpcsvc.drc import SharedDuplicateRequestCache


def construct(tmp_path, **server_options) -> Graph:
    return Graph.construct(parse_text(volfile(tmp_path, server_options=server_options),
                                      str(tmp_path / "nfs.vol")))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def master_side(tmp_path):
    """A constructed (not initialised) graph whose top bound its sockets, plus shared state."""
    made = []

    def make(**server_options):
        graph = construct(tmp_path, **server_options)
        shared = PreforkShared.create(graph.top)
        graph.top.prefork_shared = shared
        graph.top.prefork_bind()
        made.append((graph, shared))
        return graph, shared
    yield make
    for graph, shared in made:
        graph.fini()
        for sock in graph.top.prefork_sockets():
            sock.close()
        shared.close()


def test_the_master_binds_both_programs_and_lists_their_mappings(tmp_path, master_side):
    graph, _ = master_side()
    top = graph.top
    assert set(top.presets) == {"nfs.port", "nfs.mount-port"}
    assert top.nfs_port and top.mount_port and top.nfs_port != top.mount_port
    for tcp, udp in top.presets.values():
        assert tcp.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        assert tcp.getsockname() == udp.getsockname()
    assert len(top.prefork_sockets()) == 4
    assert not graph.initialised and top.svc is None          # nothing initialised
    # the same mappings a single-process server registers itself
    with NfsTestServer(tmp_path / "single") as single:
        alone = sorted((p, v, proto) for p, v, proto, _ in single.xlator._mappings)
    assert sorted((p, v, proto) for p, v, proto, _ in top.prefork_mappings()) == alone
    assert {port for *_, port in top.prefork_mappings()} == {top.nfs_port, top.mount_port}


def test_a_reload_keeps_unchanged_sockets_and_binds_changed_ones(tmp_path, master_side):
    fixed = free_port()
    old, _ = master_side(**{"nfs.port": str(fixed)})
    new = construct(tmp_path, **{"nfs.port": "0"})
    try:
        new.top.prefork_bind(previous=old.top)
        assert new.top.presets["nfs.mount-port"] is old.top.presets["nfs.mount-port"]
        assert new.top.presets["nfs.port"] is not old.top.presets["nfs.port"]
        assert old.top.nfs_port == fixed and new.top.nfs_port != fixed
        same = construct(tmp_path, **{"nfs.port": str(fixed)})
        same.top.prefork_bind(previous=old.top)
        assert [id(s) for s in same.top.prefork_sockets()] == \
               [id(s) for s in old.top.prefork_sockets()]
    finally:
        for sock in new.top.prefork_sockets():
            if sock not in old.top.prefork_sockets():
                sock.close()


def test_a_port_in_use_names_the_option_and_leaves_nothing_bound(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    mount_port = free_port()
    graph = construct(tmp_path, **{"nfs.port": str(port), "nfs.mount-port": str(mount_port)})
    graph2 = construct(tmp_path, **{"nfs.port": str(mount_port), "nfs.mount-port": str(port)})
    try:
        with pytest.raises(OSError) as err:
            graph.top.prefork_bind()
        assert "nfs.port" in str(err.value) and "in use" in str(err.value)
        with pytest.raises(OSError) as err:
            graph2.top.prefork_bind()              # NFS bound first, then MOUNT failed
        assert "nfs.mount-port" in str(err.value)
        with socket.socket() as again:             # ... and the NFS socket was closed again
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", mount_port))
    finally:
        taken.close()


def test_a_worker_serves_the_masters_sockets_with_the_shared_state(tmp_path, master_side):
    graph, shared = master_side(**{"rpc.register-with-portmap": "on"})
    top = graph.top
    nfs_port = top.nfs_port
    graph.init()
    graph.activate()
    assert top.nfs_port == nfs_port                 # served what the master bound
    assert top.registered == [] and top.portmapper is None   # the master registers
    assert top.svc.drc is shared.drc and top.verifier is shared.verifier
    assert top.dump_private()["write_verifier"] == shared.verifier.current().hex()
    with RpcClient("127.0.0.1", nfs_port, "udp") as udp:
        assert udp.call(100003, 3, 0) == b""
    mnt = MOUNT_PROCS["MNT"]
    with RpcClient("127.0.0.1", top.mount_port, cred=("sys", 0, 0, [], "t")) as client:
        status, res = client.call(M.MOUNT_PROGRAM, 3, mnt.number, mnt.arg, b"/gv0", mnt.res)
    assert status == M.MNT3_OK
    with Nfs3Client(nfs_port, ("sys", 0, 0, [], "t")) as nfs:
        handle = nfs.new_file(bytes(res.fhandle), b"f")
        status, reply = nfs.write(handle, 0, b"data", stable=N.UNSTABLE)
        assert status == OK and bytes(reply.verf) == shared.verifier.current()
        shared.verifier.data_may_be_lost()           # another worker saw a writeback error
        status, reply = nfs.call("COMMIT", file=fh3(handle), offset=0, count=0)
        assert status == OK and bytes(reply.verf) == shared.verifier.current()


def test_the_write_verifier_is_shared_across_fork_and_changes_for_everyone():
    verifier = SharedWriteVerifier()
    try:
        first = verifier.current()
        pid = os.fork()
        if pid == 0:
            try:
                verifier.data_may_be_lost()       # a writeback error seen by one worker
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert verifier.current() != first and len(verifier.current()) == 8
        assert SharedWriteVerifier(b"12345678").current() == b"12345678"
        with pytest.raises(ValueError):
            SharedWriteVerifier(b"short")
    finally:
        verifier.close()


def test_a_master_start_makes_a_new_verifier_and_a_bounded_drc(tmp_path):
    graph = construct(tmp_path, **{"nfs.drc-size": "100"})
    one, two = PreforkShared.create(graph.top), PreforkShared.create(graph.top)
    try:
        assert one.verifier.current() != two.verifier.current()
        assert isinstance(one.drc, SharedDuplicateRequestCache) and one.drc.size <= 100
    finally:
        one.close()
        two.close()


def test_probe_beats_only_while_event_and_stage_threads_answer(tmp_path, master_side):
    graph, _ = master_side(**{"nfs.stage-threads": "1"})
    graph.init()
    top = graph.top
    assert top.probe() is True
    assert wait(lambda: top.probe())               # the first tick went through
    release = threading.Event()
    top.svc.stage.submit(release.wait, 10)           # the only stage thread is now stuck
    deadline = time.monotonic() + 2
    answers = []
    while time.monotonic() < deadline and len(answers) < 3:
        answers.append(top.probe())
        time.sleep(0.1)
    assert answers[-1] is False
    release.set()
    assert wait(lambda: top.probe())


def test_retire_answers_the_call_in_flight_then_ends_the_connection(tmp_path, master_side):
    graph, _ = master_side()
    graph.init()
    graph.activate()
    top = graph.top
    gate, entered = threading.Event(), threading.Event()
    posix = graph.xlators["gv0"]
    real_statfs = posix.statfs

    def slow_statfs(caller, gfid):
        entered.set()
        gate.wait(10)
        return real_statfs(caller, gfid)
    posix.statfs = slow_statfs
    root = mount_root(top.mount_port)
    sock = socket.create_connection(("127.0.0.1", top.nfs_port))
    try:
        fsstat = NFS_PROCS["FSSTAT"]
        body = wire.build_call(0x5151, N.NFS_PROGRAM, 3, fsstat.number, 0, b"") + \
            bytes(fsstat.arg.encode(N.FSSTAT3args(fh3(root))))
        sock.sendall(struct.pack(">I", 0x80000000 | len(body)) + body)
        assert entered.wait(5)                       # the call is read and running
        result = []
        retiring = threading.Thread(target=lambda: result.append(top.retire(5)))
        retiring.start()
        time.sleep(0.2)
        assert retiring.is_alive()                   # waiting for the call
        gate.set()
        sock.settimeout(5)
        reply = read_all(sock)                       # the reply, then EOF (a half-close)
        retiring.join(10)
        assert result == [True]
        length = struct.unpack(">I", reply[:4])[0] & 0x7FFFFFFF
        assert len(reply) == 4 + length and reply[4:8] == struct.pack(">I", 0x5151)
    finally:
        sock.close()
        gate.set()


def mount_root(port: int) -> bytes:
    mnt = MOUNT_PROCS["MNT"]
    with RpcClient("127.0.0.1", port, cred=("sys", 0, 0, [], "t")) as client:
        status, res = client.call(M.MOUNT_PROGRAM, 3, mnt.number, mnt.arg, b"/gv0", mnt.res)
    assert status == M.MNT3_OK
    return bytes(res.fhandle)


def read_all(sock) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
