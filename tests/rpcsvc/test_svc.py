"""Every reply the service names, proved with hand-built records over TCP (and UDP)."""
from __future__ import annotations

import logging
import socket
import struct

import pytest

from rpc_testkit import (FSSTAT, GETATTR, NFS3, NFS_PROG, NULL, PATHCONF, REMOVE, WRITE, RawPeer,
                         call_msg, frame, getattr_args, remove_args, sys_cred, udp_call)
from rpcsvc import wire, xdr
from rpcsvc.program import Program
from rpcsvc.svc import RpcService

RPC = xdr.load("rpc")
PM = xdr.load("portmap")


@pytest.fixture
def served(serve):
    return serve()


@pytest.fixture
def peer(served):
    p = RawPeer(served.tcp_port)
    yield p
    p.close()


def test_null_succeeds_on_tcp_and_udp(served, peer):
    reply = peer.call(call_msg(1))
    assert reply.success and reply.xid == 1
    reply = udp_call(served.udp_port, call_msg(2))
    assert reply.success and reply.xid == 2


def test_request_fields_reach_the_actor(served, peer):
    peer.call(call_msg(3, cred=sys_cred(1001, 100, (100, 4, 27), b"client-a")))
    req = served.actors.requests[-1]
    assert (req.xid, req.prog, req.vers, req.proc) == (3, NFS_PROG, 3, NULL)
    assert (req.caller.uid, req.caller.gid, req.caller.groups) == (1001, 100, (100, 4, 27))
    assert req.caller.client == "127.0.0.1" and req.machinename == b"client-a"
    assert req.cred_flavor == wire.AUTH_SYS and req.transport == "tcp"
    assert req.peer == peer.sock.getsockname() and req.local_port == served.tcp_port
    assert req.privileged is False
    udp_call(served.udp_port, call_msg(4))
    req = served.actors.requests[-1]
    assert req.transport == "udp" and req.caller.uid == 65534


def test_bad_rpc_version_is_rpc_mismatch(served, peer):
    reply = peer.call(call_msg(5, rpcvers=1))
    assert (reply.accepted, reply.stat, reply.low, reply.high) == (False, wire.RPC_MISMATCH, 2, 2)
    assert served.svc.stats()["errors"]["RPC_MISMATCH"] == 1


def test_unknown_program_is_prog_unavail(peer):
    reply = peer.call(call_msg(6, prog=100099))
    assert reply.accepted and reply.stat == wire.PROG_UNAVAIL


def test_unsupported_version_carries_the_real_range(peer):
    reply = peer.call(call_msg(7, vers=4))
    assert (reply.stat, reply.low, reply.high) == (wire.PROG_MISMATCH, 3, 3)


def test_version_range_spans_every_version_served(pool):
    svc = RpcService(pool, stage_threads=1)
    try:
        rpcb = PM.programs["RPCBPROG"]
        svc.add_program(Program(rpcb, 3, {0: lambda req: None}))
        svc.add_program(Program(rpcb, 4, {0: lambda req: None}))
        port = svc.listen("127.0.0.1", 0).getsockname()[1]
        p = RawPeer(port)
        reply = p.call(call_msg(8, prog=100000, vers=2))
        assert (reply.stat, reply.low, reply.high) == (wire.PROG_MISMATCH, 3, 4)
        p.close()
        with pytest.raises(ValueError):
            svc.add_program(Program(rpcb, 4, {}))
    finally:
        svc.close()


@pytest.mark.parametrize("proc", [WRITE, 22, 0xFFFFFFFF])
def test_unimplemented_or_unknown_procedure_is_proc_unavail(peer, proc):
    reply = peer.call(call_msg(9, proc=proc))
    assert reply.accepted and reply.stat == wire.PROC_UNAVAIL


def test_undecodable_arguments_are_garbage_args(served, peer):
    too_long_handle = struct.pack(">I", 65) + b"\0" * 68
    assert peer.call(call_msg(10, proc=REMOVE, args=too_long_handle)).stat == wire.GARBAGE_ARGS
    trailing = remove_args() + b"\0\0\0\0"
    assert peer.call(call_msg(11, proc=REMOVE, args=trailing)).stat == wire.GARBAGE_ARGS
    assert peer.call(call_msg(12, proc=REMOVE, args=b"\0\0")).stat == wire.GARBAGE_ARGS
    assert served.actors.removes == 0
    assert peer.call(call_msg(13, proc=REMOVE, args=remove_args())).success


def test_actor_may_answer_an_accept_stat(peer):
    args = NFS3.PATHCONF3args.encode(NFS3.PATHCONF3args(NFS3.nfs_fh3(b"h")))
    reply = peer.call(call_msg(14, proc=PATHCONF, args=args))
    assert reply.stat == wire.GARBAGE_ARGS


def test_actor_that_raises_is_system_err_and_everything_stays_up(served, peer, rpc_log):
    reply = peer.call(call_msg(15, proc=GETATTR, args=getattr_args()))
    assert reply.accepted and reply.stat == wire.SYSTEM_ERR
    logged = [r for r in rpc_log if r.levelno >= logging.ERROR and r.exc_info]
    assert logged and "actor exploded on purpose" in str(logged[0].exc_info[1])
    assert peer.call(call_msg(16)).success                  # same connection still serves
    assert udp_call(served.udp_port, call_msg(17)).success
    assert served.svc.stats()["errors"]["SYSTEM_ERR"] == 1


@pytest.mark.parametrize("flavor", [RPC.AUTH_DH, RPC.RPCSEC_GSS])
def test_dh_and_gss_credentials_are_refused(peer, flavor):
    reply = peer.call(call_msg(18, cred=(flavor, b"\0" * 20)))
    assert (reply.accepted, reply.stat, reply.auth_stat) == \
        (False, wire.AUTH_ERROR, wire.AUTH_REJECTEDCRED)


def test_auth_sys_with_seventeen_groups_is_refused(served, peer):
    body = struct.pack(">II", 0, 4) + b"host" + struct.pack(">III", 0, 0, 17) + b"\0" * 68
    reply = peer.call(call_msg(19, cred=(wire.AUTH_SYS, body)))
    assert (reply.accepted, reply.stat, reply.auth_stat) == \
        (False, wire.AUTH_ERROR, wire.AUTH_BADCRED)
    assert peer.call(call_msg(20, cred=sys_cred(gids=tuple(range(16))))).success


def test_program_minimum_flavour_is_tooweak(serve):
    served = serve(program_kw={"min_auth": wire.AUTH_SYS})
    p = RawPeer(served.tcp_port)
    try:
        reply = p.call(call_msg(21))
        assert (reply.stat, reply.auth_stat) == (wire.AUTH_ERROR, wire.AUTH_TOOWEAK)
        assert p.call(call_msg(22, cred=sys_cred())).success
    finally:
        p.close()


def test_insecure_port_refused_unless_allowed(serve):
    served = serve(program_kw={"unprivileged": False}, allow_insecure=False)
    p = RawPeer(served.tcp_port)
    try:
        reply = p.call(call_msg(23))
        assert (reply.stat, reply.auth_stat) == (wire.AUTH_ERROR, wire.AUTH_TOOWEAK)
    finally:
        p.close()
    try:
        privileged = RawPeer(served.tcp_port, source_port=_free_reserved_port())
    except PermissionError:
        pytest.skip("binding a reserved source port needs root")
    try:
        assert privileged.call(call_msg(24)).success
        assert served.actors.requests[-1].privileged is True
    finally:
        privileged.close()
    # a program marked unprivileged takes calls from any port even then
    open_prog = serve(allow_insecure=False)
    p = RawPeer(open_prog.tcp_port)
    try:
        assert p.call(call_msg(25)).success
    finally:
        p.close()


def _free_reserved_port() -> int:
    for port in range(900, 1000):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return port
            except PermissionError:
                raise
            except OSError:
                continue
    pytest.skip("no reserved port free")


def test_peer_checks_refuse_with_auth_error(serve):
    seen = []

    def refuse_all(addr):
        seen.append(addr)
        return False

    served = serve(program_kw={"peer_check": refuse_all,
                               "peer_refusal": wire.AUTH_REJECTEDCRED})
    p = RawPeer(served.tcp_port)
    try:
        reply = p.call(call_msg(26))
        assert (reply.stat, reply.auth_stat) == (wire.AUTH_ERROR, wire.AUTH_REJECTEDCRED)
        assert seen == ["127.0.0.1"] and not served.actors.requests
    finally:
        p.close()
    glob = serve(peer_check=lambda addr: addr != "127.0.0.1")
    p = RawPeer(glob.tcp_port)
    try:
        reply = p.call(call_msg(27))
        assert (reply.stat, reply.auth_stat) == (wire.AUTH_ERROR, wire.AUTH_TOOWEAK)
    finally:
        p.close()


def test_messages_that_are_not_calls_are_dropped_not_answered(served, peer):
    peer.send(struct.pack(">I", 0x80000003) + b"abc")        # no room for xid + type
    peer.send(struct.pack(">I", 0x80000000 | 12) + wire.accepted_header(5)[:12])   # a REPLY
    assert peer.call(call_msg(28)).xid == 28                  # next answer is for the next call
    assert served.svc.stats()["errors"]["dropped_messages"] == 2


def test_stats_count_calls_per_procedure(served, peer):
    for xid in range(3):
        peer.call(call_msg(100 + xid))
    peer.call(call_msg(200, proc=REMOVE, args=remove_args()))
    assert served.svc.drain(5)          # the reply is out just before the call is counted done
    stats = served.svc.stats()
    assert stats["calls"]["NFS_PROGRAM"][3]["NFSPROC3_NULL"] == 3
    assert stats["calls"]["NFS_PROGRAM"][3]["NFSPROC3_REMOVE"] == 1
    assert stats["connections"] == 1 and stats["inflight"] == 0


def test_program_rejects_undefined_procedures():
    spec = xdr.load("nfs3").programs["NFS_PROGRAM"]
    with pytest.raises(ValueError):
        Program(spec, 3, {99: lambda req: None})
    with pytest.raises(ValueError):
        Program(spec, 2, {})
    with pytest.raises(ValueError):
        Program(spec, 3, {}, non_idempotent={FSSTAT, 77})


def test_serve_an_already_bound_socket_and_remove_a_program(pool):
    """The prefork master binds; a worker serves the socket it inherited."""
    from rpc_testkit import TestActors, nfs_program

    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    svc = RpcService(pool, stage_threads=1)
    try:
        prog = nfs_program(TestActors())
        svc.add_program(prog)
        svc.serve(tcp, "tcp")
        svc.serve(udp, "udp")
        assert sorted(svc.mappings()) == sorted([
            (NFS_PROG, 3, "tcp", tcp.getsockname()[1]), (NFS_PROG, 3, "udp", udp.getsockname()[1])])
        p = RawPeer(tcp.getsockname()[1])
        assert p.call(call_msg(1)).success
        svc.remove_program(prog)
        assert p.call(call_msg(2)).stat == wire.PROG_UNAVAIL
        p.close()
        assert udp_call(udp.getsockname()[1], call_msg(3)).stat == wire.PROG_UNAVAIL
        with socket.socket() as extra, pytest.raises(ValueError):
            svc.serve(extra, "sctp")
    finally:
        svc.close()


def test_inline_procedures_run_on_the_event_thread_others_on_a_stage(serve):
    from rpcsvc.client import RpcClient
    served = serve(program_kw={"inline": {0}}, stage_threads=2)
    void = NFS3.programs["NFS_PROGRAM"].versions[3].procs[0].arg
    with RpcClient("127.0.0.1", served.tcp_port, "tcp", timeout=5) as client:
        client.call(100003, 3, 0, void, None, void)
    inline_thread = served.actors.threads[-1]
    assert inline_thread.startswith("glfs_epoll") or inline_thread.startswith("glfs_poll")
    other = serve(stage_threads=2)
    with RpcClient("127.0.0.1", other.tcp_port, "tcp", timeout=5) as client:
        client.call(100003, 3, 0, void, None, void)
    assert "-stage" in other.actors.threads[-1]


def test_inline_if_decides_per_call_from_the_undecoded_call(serve):
    """NULL runs inline when the predicate says so (here: an even xid) and on a
    stage otherwise; the predicate gets the record and the arguments' offset."""
    seen = []

    def even_xid(record, offset):
        seen.append((struct.unpack_from(">I", record, 0)[0], offset, len(record)))
        return seen[-1][0] % 2 == 0
    served = serve(program_kw={"inline_if": {NULL: even_xid}}, stage_threads=2)
    peer = RawPeer(served.tcp_port)
    try:
        for xid in (10, 11):
            assert peer.call(call_msg(xid)).success
    finally:
        peer.close()
    first, second = served.actors.threads[-2:]
    assert first.startswith("glfs_"), first
    assert "-stage" in second, second
    assert [x for x, _, _ in seen] == [10, 11]
    assert all(offset == size for _, offset, size in seen)   # NULL: no arguments after the header


# ---- void arguments and results skip the codec, with the codec's answers -------------------

def test_program_knows_which_procedures_have_void_arguments_and_results(served):
    prog = served.svc.programs()[0]
    assert NULL in prog.void_args and NULL in prog.void_results
    assert GETATTR not in prog.void_args and GETATTR not in prog.void_results
    assert REMOVE not in prog.void_args


def test_null_with_bytes_after_its_void_arguments_is_garbage_args(served, peer):
    reply = peer.call(call_msg(40, args=b"\0\0\0\0"))
    assert reply.accepted and reply.stat == wire.GARBAGE_ARGS
    assert served.svc.stats()["errors"]["GARBAGE_ARGS"] == 1
    assert peer.call(call_msg(41)).success       # and a well-formed one still succeeds


def test_a_void_procedure_replies_with_the_header_alone(served, peer):
    """The shortcut sends exactly what encoding void sent: no result bytes."""
    peer.sock.sendall(frame(call_msg(42)))
    mark = _recv_exactly(peer.sock, 4)
    (word,) = struct.unpack(">I", mark)
    body = _recv_exactly(peer.sock, word & 0x7FFFFFFF)
    assert body == wire.accepted_header(42)                   # SUCCESS and nothing after it


def test_an_actor_returning_a_value_for_a_void_result_is_system_err(pool, rpc_log):
    """What the codec did before the shortcut: a value where void is due fails to encode."""
    def chatty_null(req):
        return 7
    svc = RpcService(pool, stage_threads=1)
    try:
        svc.add_program(Program(NFS3.programs["NFS_PROGRAM"], 3, {NULL: chatty_null},
                                inline=[NULL]))
        port = svc.listen("127.0.0.1", 0, "tcp").getsockname()[1]
        p = RawPeer(port)
        try:
            reply = p.call(call_msg(43))
        finally:
            p.close()
        assert reply.accepted and reply.stat == wire.SYSTEM_ERR
    finally:
        svc.close()


def _recv_exactly(sock, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = sock.recv(size - len(got))
        assert chunk, "connection closed early"
        got += chunk
    return got
