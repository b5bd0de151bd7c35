"""What one TCP peer can pin in the server: unread replies, announced records, idle
connections, connection count, accept() out of descriptors.

Regression tests for the review's findings 3 and 4 (/tmp/review/exp_queue.py,
exp_slowloris.py): each measures what the hostile peer costs, with small counts
and generous bounds far below what the unbounded code used.
"""
from __future__ import annotations

import errno
import socket
import struct
import time

import psutil
import pytest

from rpc_testkit import FSSTAT, NFS3, READ, RawPeer, call_msg, frame, record_mark
from rpcsvc import wire
from rpcsvc.record import FIRST_CHUNK
from rpcsvc.listener import ACCEPT_BACKOFF
from rpcsvc.transport import TcpConnection

MIB = 1 << 20


def read_args(count: int = 4096) -> bytes:
    return NFS3.READ3args.encode(NFS3.READ3args(NFS3.nfs_fh3(b"fh"), 0, count))


def fsstat_args() -> bytes:
    return NFS3.FSSTAT3args.encode(NFS3.FSSTAT3args(NFS3.nfs_fh3(b"fh")))


def rss() -> int:
    return psutil.Process().memory_info().rss


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def non_reading_peer(port: int) -> RawPeer:
    """A client with a tiny receive window that will not read for a while."""
    peer = RawPeer.__new__(RawPeer)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    peer.sock, peer._buf = sock, b""
    return peer


def settled(svc, seconds: float = 0.3) -> bool:
    """True once the service's reply backlog stopped changing (nothing left to run)."""
    def still():
        first = (svc.stats()["queued_reply_bytes"], svc.inflight)
        time.sleep(seconds)
        return first == (svc.stats()["queued_reply_bytes"], svc.inflight) and not svc.inflight
    return wait_for(still, 10)


# --- finding 3: replies a client never reads --------------------------------------------

def test_unread_replies_stay_within_the_call_limit(serve):
    """exp_queue.py: READ(1 MiB) calls from a client that reads nothing."""
    served = serve(outstanding_limit=16)
    served.actors.read_size = MIB
    before = rss()
    peer = non_reading_peer(served.tcp_port)
    try:
        calls = 120
        peer.send(b"".join(frame(call_msg(i, proc=READ, args=read_args())) for i in range(calls)))
        assert settled(served.svc)
        stats = served.svc.stats()
        # a reply waiting in the queue still counts against the limit of 16
        assert stats["queued_reply_bytes"] <= 16 * (MIB + 64)
        assert stats["errors"]["throttled"] >= 1
        assert rss() - before < 64 * MIB          # unbounded: about 120 MiB
        # once the client reads, the throttle lets every call through
        xids = {wire.parse_reply(peer.read_reply(timeout=10)).xid for _ in range(calls)}
        assert xids == set(range(calls))
        assert served.svc.stats()["queued_reply_bytes"] == 0
    finally:
        peer.close()


def test_reply_backlog_stops_reading_without_a_call_limit(serve):
    """outstanding_limit=0: the queued bytes alone stop the reading."""
    served = serve(outstanding_limit=0, max_record=64 * 1024, stage_threads=1)
    svc = served.svc
    assert svc.reply_backlog == 2 * 64 * 1024
    served.actors.read_size = MIB
    peer = non_reading_peer(served.tcp_port)
    try:
        calls, highest = 30, 0
        for i in range(calls):          # one at a time: the server reads each as it comes
            peer.send(frame(call_msg(i, proc=READ, args=read_args())))
            time.sleep(0.02)
            highest = max(highest, svc.stats()["queued_reply_bytes"])
        assert settled(svc)
        highest = max(highest, svc.stats()["queued_reply_bytes"])
        # the ceiling, plus the replies of calls read before it was crossed
        assert highest <= svc.reply_backlog + 2 * (MIB + 64)
        assert svc.stats()["errors"]["throttled"] >= 1
        xids = {wire.parse_reply(peer.read_reply(timeout=10)).xid for _ in range(calls)}
        assert xids == set(range(calls))
    finally:
        peer.close()


def test_reply_backlog_must_not_be_negative(pool):
    from rpcsvc.svc import RpcService
    for bad in ({"reply_backlog": -1}, {"idle_timeout": -1}, {"max_connections": -1}):
        with pytest.raises(ValueError):
            RpcService(pool, **bad)


# --- finding 4: announced records, idle connections, connection count, EMFILE ----------

def test_record_marks_alone_pin_little_memory(served_many):
    """exp_slowloris.py: connections that send only a mark announcing ~1 MiB."""
    served = served_many
    before = rss()
    socks = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", served.tcp_port))
            s.sendall(record_mark(MIB + 60000))
            socks.append(s)

        def all_started():
            conns = [t for t in list(served.svc._transports) if isinstance(t, TcpConnection)]
            return sum(1 for c in conns if c._assembler._frag is not None) == 200
        assert wait_for(all_started)
        for conn in [t for t in list(served.svc._transports) if isinstance(t, TcpConnection)]:
            assert len(conn._assembler.want()) <= FIRST_CHUNK
        assert rss() - before < 48 * MIB          # unbounded: about 210 MiB
    finally:
        for s in socks:
            s.close()
    ok = RawPeer(served.tcp_port)
    try:
        assert ok.call(call_msg(1)).success
    finally:
        ok.close()


@pytest.fixture
def served_many(serve):
    return serve()


def test_idle_connections_are_closed(serve):
    served = serve(idle_timeout=0.3)
    silent = RawPeer(served.tcp_port)
    busy = RawPeer(served.tcp_port)
    chatty = RawPeer(served.tcp_port)
    try:
        silent.send(record_mark(1000))                  # a record that never comes
        busy.send(frame(call_msg(7, proc=FSSTAT, args=fsstat_args())))
        assert served.actors.wait_for_gate(1)
        for n in range(12):                             # 1.2 s of traffic, > 3 timeouts
            assert chatty.call(call_msg(100 + n)).success
            time.sleep(0.1)
        assert silent.closed_by_server(timeout=3)
        assert served.actors.in_gate == 1               # a call in the stage is not idleness
        served.actors.gate.set()
        assert wire.parse_reply(busy.read_reply()).xid == 7
        assert busy.closed_by_server(timeout=3)         # idle once answered
        assert served.svc.stats()["errors"]["idle_closed"] >= 2
    finally:
        for peer in (silent, busy, chatty):
            peer.close()


def test_zero_idle_timeout_never_closes(serve):
    served = serve(idle_timeout=0)
    peer = RawPeer(served.tcp_port)
    try:
        time.sleep(0.4)
        assert peer.call(call_msg(1)).success
        assert "idle_closed" not in served.svc.stats()["errors"]
    finally:
        peer.close()


def test_connections_above_the_cap_are_closed_at_once(serve):
    served = serve(max_connections=3)
    peers = [RawPeer(served.tcp_port) for _ in range(3)]
    try:
        for n, peer in enumerate(peers):
            assert peer.call(call_msg(n)).success
        extra = RawPeer(served.tcp_port)
        try:
            assert extra.closed_by_server(timeout=3)
        finally:
            extra.close()
        stats = served.svc.stats()
        assert stats["errors"]["connections_refused"] == 1 and stats["connections"] == 3
        peers.pop().close()
        assert wait_for(lambda: served.svc.stats()["connections"] == 2)
        again = RawPeer(served.tcp_port)
        peers.append(again)
        assert again.call(call_msg(9)).success
    finally:
        for peer in peers:
            peer.close()


class _OutOfFds:
    """A listening socket whose accept() fails with EMFILE `failures` times."""

    def __init__(self, sock, failures: int):
        self._sock = sock
        self.failures = failures

    def accept(self):
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self._sock.accept()

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_accept_out_of_fds_never_sleeps_on_the_event_thread(served, pool):
    listener = served.svc._listeners[0]
    fake = _OutOfFds(listener.sock, failures=1)
    listener.sock = fake
    started = time.monotonic()
    listener._on_event(None, listener.idx, listener.gen, None, 1, 0, 0)
    assert time.monotonic() - started < ACCEPT_BACKOFF / 2      # the old code slept here
    assert listener.resting and pool.interest(listener.idx) == (False, False)
    assert served.svc.stats()["errors"]["accept_backoffs"] == 1
    assert wait_for(lambda: pool.interest(listener.idx) == (True, False), 3)
    assert not listener.resting


def test_accept_out_of_fds_recovers(served):
    listener = served.svc._listeners[0]
    listener.sock = _OutOfFds(listener.sock, failures=3)
    peer = RawPeer(served.tcp_port)         # the kernel completes it; accept() fails 3 times
    try:
        assert peer.call(call_msg(5), timeout=5).success
        assert served.svc.stats()["errors"]["accept_backoffs"] == 3
    finally:
        peer.close()


@pytest.fixture
def served(serve):
    return serve()


def test_partial_reply_counts_until_written(serve):
    """The unit of the throttle: a call is outstanding until its reply left the queue."""
    served = serve(outstanding_limit=2)
    served.actors.read_size = 8 * MIB
    peer = non_reading_peer(served.tcp_port)
    try:
        peer.send(frame(call_msg(1, proc=READ, args=read_args())) +
                  frame(call_msg(2, proc=READ, args=read_args())) +
                  frame(call_msg(3)))
        assert settled(served.svc)
        conn = next(t for t in list(served.svc._transports) if isinstance(t, TcpConnection))
        assert conn.outstanding == 0 and len(conn._queued_records) == 2 and conn.throttled
        replies = [peer.read_reply(timeout=10) for _ in range(3)]
        xids = [wire.parse_reply(r).xid for r in replies]
        # the two READs run on two stage threads, so either may answer first; call 3 is
        # only read once the throttle lets go, so it is answered last
        assert sorted(xids[:2]) == [1, 2] and xids[2] == 3
        body = replies[0][wire.parse_reply(replies[0]).body_offset:]
        assert struct.unpack_from(">I", body, 8)[0] == 8 * MIB
        assert not conn.throttled and not conn._queued_records
    finally:
        peer.close()
