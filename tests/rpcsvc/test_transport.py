"""TCP framing against hostile and awkward peers, partial writes, throttle, drain, UDP."""
from __future__ import annotations

import socket
import struct
import time

import psutil
import pytest

from rpc_testkit import (FSSTAT, NFS3, NULL, READ, RawPeer, call_msg, frame, record_mark,
                         udp_call)
from rpcsvc import wire


@pytest.fixture
def served(serve):
    return serve()


def fsstat_args() -> bytes:
    return NFS3.FSSTAT3args.encode(NFS3.FSSTAT3args(NFS3.nfs_fh3(b"fh")))


def read_args(count: int = 4096) -> bytes:
    return NFS3.READ3args.encode(NFS3.READ3args(NFS3.nfs_fh3(b"fh"), 0, count))


def test_two_gib_fragment_header_closes_without_buffering(served):
    rss_before = psutil.Process().memory_info().rss
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(struct.pack(">I", 0x7FFFFFFF) + b"\0" * 4096)   # non-last, 2 GiB - 1
        assert peer.closed_by_server()
        last = RawPeer(served.tcp_port)
        last.send(struct.pack(">I", 0xFFFFFFFF))                     # last, 2 GiB - 1
        assert last.closed_by_server()
        last.close()
    finally:
        peer.close()
    assert psutil.Process().memory_info().rss - rss_before < 32 << 20
    assert served.svc.stats()["errors"]["framing_errors"] == 2
    ok = RawPeer(served.tcp_port)                                   # the server lives on
    assert ok.call(call_msg(1)).success
    ok.close()


def test_record_over_max_record_closes(serve):
    served = serve(max_record=4096)
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(record_mark(3000, last=False) + b"\0" * 3000 + record_mark(2000))
        assert peer.closed_by_server()
    finally:
        peer.close()


def test_thousand_empty_fragments_then_the_call(served):
    peer = RawPeer(served.tcp_port)
    try:
        msg = call_msg(2)
        peer.send(record_mark(0, last=False) * 1000 + frame(msg))
        assert peer.call(call_msg(3)).xid in (2, 3)
        second = wire.parse_reply(peer.read_reply())
        assert second.success
    finally:
        peer.close()


def test_record_split_across_many_tiny_writes(served):
    peer = RawPeer(served.tcp_port)
    try:
        msg = call_msg(4, proc=FSSTAT, args=fsstat_args())
        data = record_mark(10, last=False) + msg[:10] + record_mark(len(msg) - 10) + msg[10:]
        served.actors.gate.set()
        for i in range(len(data)):
            peer.send(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.001)       # make sure the server sees separate segments
        reply = wire.parse_reply(peer.read_reply())
        assert reply.success and reply.xid == 4
    finally:
        peer.close()


def test_pipelined_calls_all_answered(served):
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(b"".join(frame(call_msg(1000 + i)) for i in range(200)))
        xids = {wire.parse_reply(peer.read_reply()).xid for _ in range(200)}
        assert xids == set(range(1000, 1200))
    finally:
        peer.close()


def test_pipelined_inline_calls_are_read_at_once_and_answered_together(serve, monkeypatch):
    from rpcsvc import transport
    batches = []
    real = transport.TcpConnection._send_record

    def spy(self, record, sizes):
        batches.append(len(sizes))
        return real(self, record, sizes)
    monkeypatch.setattr(transport.TcpConnection, "_send_record", spy)
    served = serve(program_kw={"inline": {NULL}})
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(b"".join(frame(call_msg(2000 + i)) for i in range(50)))
        xids = [wire.parse_reply(peer.read_reply()).xid for _ in range(50)]
        assert xids == list(range(2000, 2050))      # inline: in the order they came
        assert sum(batches) == 50 and 1 < max(batches) <= transport.CORK_REPLIES, batches
    finally:
        peer.close()


def test_unsent_parts_keeps_what_is_left_of_each_reply():
    from rpcsvc.transport import _unsent_parts
    assert _unsent_parts([10, 20, 30], 0) == [10, 20, 30]
    assert _unsent_parts([10, 20, 30], 15) == [15, 30]
    assert _unsent_parts([10, 20, 30], 30) == [30]
    assert _unsent_parts([10, 20, 30], 60) == []


def test_large_replies_survive_partial_writes(served):
    """Replies far above the socket buffer: sendmsg writes part, POLLOUT sends the rest."""
    served.actors.read_size = 6 << 20
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(frame(call_msg(5, proc=READ, args=read_args())) +
                  frame(call_msg(6, proc=READ, args=read_args())) + frame(call_msg(7)))
        time.sleep(0.3)              # let the server fill the socket and queue the rest
        expected = bytes(range(256)) * ((6 << 20) // 256)
        seen = set()
        for _ in range(3):
            msg = peer.read_reply(timeout=20)
            header = wire.parse_reply(msg)
            seen.add(header.xid)
            if header.xid in (5, 6):
                status, _, count, eof, length = struct.unpack_from(">IIIII", msg,
                                                                   header.body_offset)
                data = msg[header.body_offset + 20:]
                assert (status, count, length, len(data)) == (0, len(expected), len(expected),
                                                              len(expected))
                assert data == expected
        assert seen == {5, 6, 7}
        assert served.svc.stats()["errors"]["partial_writes"] >= 1
    finally:
        peer.close()


def test_throttle_stops_reading_at_the_limit(serve):
    served = serve(outstanding_limit=4)
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(b"".join(frame(call_msg(i, proc=FSSTAT, args=fsstat_args()))
                           for i in range(10)))
        assert served.actors.wait_for_gate(4)
        time.sleep(0.3)
        assert served.actors.in_gate == 4 and served.svc.inflight == 4
        assert served.svc.stats()["errors"]["throttled"] >= 1
        served.actors.gate.set()
        xids = {wire.parse_reply(peer.read_reply()).xid for _ in range(10)}
        assert xids == set(range(10))
        assert served.actors.max_in_gate == 4
    finally:
        peer.close()


def test_zero_limit_means_no_throttle(serve):
    served = serve(outstanding_limit=0, stage_threads=8)
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(b"".join(frame(call_msg(i, proc=FSSTAT, args=fsstat_args()))
                           for i in range(8)))
        assert served.actors.wait_for_gate(8)
        served.actors.gate.set()
        assert {wire.parse_reply(peer.read_reply()).xid for _ in range(8)} == set(range(8))
    finally:
        peer.close()


def test_drain_finishes_in_flight_calls_and_takes_no_new_ones(served):
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(frame(call_msg(40, proc=FSSTAT, args=fsstat_args())))
        assert served.actors.wait_for_gate(1)
        served.svc.stop_accepting()
        peer.send(frame(call_msg(41)))               # not read while draining
        assert served.svc.drain(0.2) is False
        late = RawPeer(served.tcp_port)          # the kernel's backlog takes it; we do not
        try:
            with pytest.raises(TimeoutError):
                late.call(call_msg(42), timeout=0.5)
        finally:
            late.close()
        served.actors.gate.set()
        assert served.svc.drain(5) is True
        reply = wire.parse_reply(peer.read_reply())
        assert reply.xid == 40
        with pytest.raises(TimeoutError):
            peer.read_reply(timeout=0.3)
    finally:
        peer.close()


def test_client_half_close_still_gets_its_replies(served):
    peer = RawPeer(served.tcp_port)
    try:
        peer.send(frame(call_msg(50, proc=FSSTAT, args=fsstat_args())) + frame(call_msg(51)))
        peer.sock.shutdown(socket.SHUT_WR)
        assert served.actors.wait_for_gate(1)
        served.actors.gate.set()
        assert {wire.parse_reply(peer.read_reply()).xid for _ in range(2)} == {50, 51}
        assert peer.closed_by_server()
    finally:
        peer.close()
    deadline = time.monotonic() + 5
    while served.svc.stats()["connections"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.svc.stats()["connections"] == 0


def test_many_connections_at_once(served):
    peers = [RawPeer(served.tcp_port) for _ in range(40)]
    try:
        for n, p in enumerate(peers):
            p.send(frame(call_msg(n)))
        for n, p in enumerate(peers):
            assert wire.parse_reply(p.read_reply()).xid == n
    finally:
        for p in peers:
            p.close()


def test_udp_garbage_and_calls(served):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x01\x02", ("127.0.0.1", served.udp_port))     # dropped, no answer
    reply = udp_call(served.udp_port, call_msg(60, rpcvers=5))
    assert (reply.stat, reply.low, reply.high) == (wire.RPC_MISMATCH, 2, 2)
    assert udp_call(served.udp_port, call_msg(61)).success


def test_close_ends_connections(serve):
    served = serve()
    peer = RawPeer(served.tcp_port)
    try:
        assert peer.call(call_msg(70)).success
        served.svc.close()
        assert peer.closed_by_server()
    finally:
        peer.close()


def test_poll_backend_serves_the_same(pool):
    """The transports only use the pool's contract, so the poll backend works as epoll."""
    from event import new_pool
    from rpc_testkit import TestActors, nfs_program
    from rpcsvc.svc import RpcService

    poll_pool = new_pool(slots=64, threads=1, backend="poll")
    poll_pool.dispatch()
    actors = TestActors()
    actors.read_size = 3 << 20
    svc = RpcService(poll_pool, stage_threads=2)
    try:
        svc.add_program(nfs_program(actors))
        port = svc.listen("127.0.0.1", 0).getsockname()[1]
        udp_port = svc.listen("127.0.0.1", 0, "udp").getsockname()[1]
        peer = RawPeer(port)
        try:
            peer.send(b"".join(frame(call_msg(i)) for i in range(50)) +
                      frame(call_msg(99, proc=READ, args=read_args())))
            replies = [peer.read_reply(timeout=10) for _ in range(51)]
            assert {wire.parse_reply(r).xid for r in replies} == set(range(50)) | {99}
            assert max(len(r) for r in replies) > 3 << 20
        finally:
            peer.close()
        assert udp_call(udp_port, call_msg(100)).success
    finally:
        svc.close()
        poll_pool.destroy()
