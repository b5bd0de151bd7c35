"""RpcClient: typed errors, xid matching across threads, timeouts, UDP retry, reconnect."""
from __future__ import annotations

import socket
import struct
import threading

import pytest

from rpc_testkit import FSSTAT, NFS3, NFS_PROG, REMOVE, call_msg
from rpcsvc import wire
from rpcsvc.client import (RpcCallError, RpcClient, RpcConnectionError, RpcProtocolError,
                           RpcTimeout)
from rpcsvc.record import frame

FSSTAT_PROC = NFS3.programs["NFS_PROGRAM"].versions[3].procs[FSSTAT]
REMOVE_PROC = NFS3.programs["NFS_PROGRAM"].versions[3].procs[REMOVE]
FH = NFS3.nfs_fh3(b"fh")


@pytest.fixture
def served(serve):
    return serve()


def test_null_over_tcp_and_udp_with_auth_sys(served):
    for proto, port in (("tcp", served.tcp_port), ("udp", served.udp_port)):
        with RpcClient("127.0.0.1", port, proto, cred=("sys", 42, 43, (44, 45), "box")) as c:
            assert c.call(NFS_PROG, 3, 0) == b""
        req = served.actors.requests[-1]
        assert (req.caller.uid, req.caller.gid, req.caller.groups, req.machinename) == \
            (42, 43, (44, 45), b"box")
        assert req.transport == proto


def test_results_are_decoded_with_the_result_codec(served):
    with RpcClient("127.0.0.1", served.tcp_port) as c:
        status, resok = c.call(NFS_PROG, 3, REMOVE, REMOVE_PROC.arg,
                               NFS3.REMOVE3args(NFS3.diropargs3(FH, b"x")), REMOVE_PROC.res)
        assert status == NFS3.NFS3_OK and resok.dir_wcc.before == (False, None)


def test_typed_errors(serve):
    served = serve(program_kw={"min_auth": wire.AUTH_SYS})
    with RpcClient("127.0.0.1", served.tcp_port) as c:
        with pytest.raises(RpcCallError) as caught:
            c.call(100099, 1, 0)
        assert caught.value.accepted and caught.value.stat == wire.PROG_UNAVAIL
        with pytest.raises(RpcCallError) as caught:
            c.call(NFS_PROG, 4, 0)
        assert (caught.value.stat, caught.value.low, caught.value.high) == \
            (wire.PROG_MISMATCH, 3, 3)
        with pytest.raises(RpcCallError) as caught:
            c.call(NFS_PROG, 3, 0)                 # AUTH_NONE below the minimum
        assert not caught.value.accepted and caught.value.auth_stat == wire.AUTH_TOOWEAK
        raw = wire.parse_reply(c.call_raw(call_msg(0x55, rpcvers=9)))
        assert (raw.xid, raw.stat, raw.low, raw.high) == (0x55, wire.RPC_MISMATCH, 2, 2)
    with RpcClient("127.0.0.1", served.tcp_port, cred=("sys", 1, 1, (), "m")) as c:
        with pytest.raises(RpcProtocolError):      # NULL returns nothing to decode
            c.call(NFS_PROG, 3, 0, res_codec=REMOVE_PROC.res)


def test_concurrent_calls_on_one_connection_match_their_xids(served):
    """A call blocked in the server does not hold up the others sharing the socket."""
    results, errors = {}, []
    with RpcClient("127.0.0.1", served.tcp_port, cred=("sys", 0, 0, (), "c")) as c:
        def slow():
            try:
                results["slow"] = c.call(NFS_PROG, 3, FSSTAT, FSSTAT_PROC.arg,
                                         NFS3.FSSTAT3args(FH), FSSTAT_PROC.res)
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

        def quick(n):
            try:
                for i in range(25):
                    name = b"f%d-%d" % (n, i)
                    status, _ = c.call(NFS_PROG, 3, REMOVE, REMOVE_PROC.arg,
                                       NFS3.REMOVE3args(NFS3.diropargs3(FH, name)),
                                       REMOVE_PROC.res)
                    results[name] = status
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

        blocker = threading.Thread(target=slow)
        blocker.start()
        assert served.actors.wait_for_gate(1)
        workers = [threading.Thread(target=quick, args=(n,)) for n in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(20)
        assert not errors and len(results) == 150       # all done while slow still waits
        served.actors.gate.set()
        blocker.join(10)
    assert not errors and results["slow"][0] == NFS3.NFS3ERR_IO
    assert served.actors.removes == 150


def test_timeout_then_the_connection_still_works(served):
    with RpcClient("127.0.0.1", served.tcp_port, timeout=0.3) as c:
        with pytest.raises(RpcTimeout):
            c.call(NFS_PROG, 3, FSSTAT, FSSTAT_PROC.arg, NFS3.FSSTAT3args(FH))
        served.actors.gate.set()
        c.timeout = 5
        assert c.call(NFS_PROG, 3, 0) == b""      # the late FSSTAT reply is discarded


def test_reconnects_after_the_server_drops_the_connection(served):
    with RpcClient("127.0.0.1", served.tcp_port) as c:
        assert c.call(NFS_PROG, 3, 0) == b""
        for transport in list(served.svc._transports):
            if transport.kind == "tcp":
                transport.shutdown()
        assert c.call(NFS_PROG, 3, 0) == b""
        assert c.call(NFS_PROG, 3, 0) == b""
    assert served.svc.stats()["errors"]["connections_accepted"] >= 2


def test_broken_connection_resends_the_same_xid():
    """The first connection dies after reading the call; the retry carries the same xid."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    seen = []

    def server():
        for answer in (False, True):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                head = conn.recv(4)
                length = struct.unpack(">I", head)[0] & 0x7FFFFFFF
                body = b""
                while len(body) < length:
                    body += conn.recv(length - len(body))
                xid = struct.unpack_from(">I", body)[0]
                seen.append(xid)
                if answer:
                    conn.sendall(frame(wire.accepted_header(xid) + b"\0\0\0\7"))

    thread = threading.Thread(target=server)
    thread.start()
    try:
        with RpcClient("127.0.0.1", listener.getsockname()[1]) as c:
            assert c.call(400000, 1, 1) == b"\0\0\0\7"
    finally:
        thread.join(10)
        listener.close()
    assert len(seen) == 2 and seen[0] == seen[1]


def test_udp_retransmits_once_with_the_same_xid():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    seen = []

    def server():
        sock.settimeout(5)
        for answer in (False, True):
            data, addr = sock.recvfrom(65536)
            xid = struct.unpack_from(">I", data)[0]
            seen.append(xid)
            if answer:
                sock.sendto(wire.accepted_header(xid), addr)

    thread = threading.Thread(target=server)
    thread.start()
    try:
        with RpcClient("127.0.0.1", sock.getsockname()[1], "udp", timeout=1.0) as c:
            assert c.call(400000, 1, 0) == b""
    finally:
        thread.join(10)
        sock.close()
    assert len(seen) == 2 and seen[0] == seen[1]


def test_udp_timeout_after_the_retry():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        with RpcClient("127.0.0.1", sock.getsockname()[1], "udp", timeout=0.4) as c:
            with pytest.raises(RpcTimeout):
                c.call(400000, 1, 0)
        sock.settimeout(1)
        assert sock.recv(100)[:4] == sock.recv(100)[:4]      # two sends, same xid
    finally:
        sock.close()


def test_nothing_listening():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                  # bound, not listening: refused
        with RpcClient("127.0.0.1", port, timeout=1) as c:
            with pytest.raises(RpcConnectionError):
                c.call(100000, 2, 0)


def test_bad_credential_spec():
    with pytest.raises(ValueError):
        RpcClient("127.0.0.1", 1, cred=("kerberos",))
    with pytest.raises(ValueError):
        RpcClient("127.0.0.1", 1, proto="sctp")


def test_reserved_source_port_when_asked(served):
    import os
    if os.geteuid() != 0:
        pytest.skip("a reserved source port needs root")
    with RpcClient("127.0.0.1", served.tcp_port, privileged=True) as c:
        c.call(NFS_PROG, 3, 0)
    req = served.actors.requests[-1]
    assert req.privileged and req.peer[1] < 1024
