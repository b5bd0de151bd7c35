"""One event takes every call the client sent while earlier ones ran, and
writing replies skips the walk over buffers the kernel took whole."""
from __future__ import annotations

import errno
import logging
import socket

import pytest

from rpc_testkit import call_msg, frame
from rpcsvc import transport
from rpcsvc.record import HEADER_SIZE


class _Service:
    """What a TcpConnection asks of its service, recording the calls it gets."""

    max_record = 1 << 20
    outstanding_limit = 16
    reply_backlog = 2 << 20

    def __init__(self, on_record=None):
        self.pool = None
        self.records: list[bytes] = []
        self.counted: list[str] = []
        self._on = on_record

    def _on_record(self, conn, record, peer):
        self.records.append(bytes(record))
        if self._on is not None:
            self._on(len(self.records))

    def count(self, what):
        self.counted.append(what)

    def _forget_transport(self, conn):
        pass


class _CountingSocket:
    """A socket whose reads (recv_into inside a record, recv between records) are counted."""

    def __init__(self, sock):
        self._sock = sock
        self.recvs = 0

    def recv_into(self, buf):
        self.recvs += 1
        return self._sock.recv_into(buf)

    def recv(self, size):
        self.recvs += 1
        return self._sock.recv(size)

    def __getattr__(self, name):
        return getattr(self._sock, name)


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.setblocking(False)
    yield server, client
    server.close()
    client.close()


def _connection(svc, server):
    conn = transport.TcpConnection(svc, server, ("127.0.0.1", 900))
    conn.sock = _CountingSocket(server)
    return conn


def test_calls_sent_while_earlier_ones_ran_are_read_in_the_same_event(pair):
    server, client = pair
    later = b"".join(frame(call_msg(20 + i)) for i in range(2))

    def client_sends_more(handled):
        if handled == 3:            # the client answers our first replies with two more calls
            client.sendall(later)

    svc = _Service(client_sends_more)
    conn = _connection(svc, server)
    client.sendall(b"".join(frame(call_msg(10 + i)) for i in range(3)))
    conn._read()
    assert svc.records == [call_msg(10), call_msg(11), call_msg(12), call_msg(20), call_msg(21)]
    assert conn.sock.recvs == 3     # two that brought calls, one that found nothing (EAGAIN)


def test_a_read_that_completes_no_call_ends_the_event(pair):
    """Part of a call, and the socket empty: no second recv until the pool says so."""
    server, client = pair
    svc = _Service()
    conn = _connection(svc, server)
    whole = frame(call_msg(5))
    client.sendall(whole[:10])
    conn._read()
    assert svc.records == [] and conn.sock.recvs == 1
    client.sendall(whole[10:])
    conn._read()
    assert svc.records == [call_msg(5)]


def test_the_drain_stops_after_recvs_per_event(pair, monkeypatch):
    """A client that never stops sending cannot keep the event thread forever."""
    server, client = pair
    monkeypatch.setattr(transport, "RECVS_PER_EVENT", 4)

    def keep_sending(handled):
        client.sendall(frame(call_msg(100 + handled)))  # one more per call: two per read

    svc = _Service(keep_sending)
    conn = _connection(svc, server)
    client.sendall(frame(call_msg(98)) + frame(call_msg(99)))
    conn._read()
    assert conn.sock.recvs == 4 and len(svc.records) == 8      # two calls per read


def test_a_client_with_one_call_at_a_time_pays_no_extra_recv(pair):
    """After a read that brought one call the event ends, as it always did:
    such a client cannot have sent the next call before its reply."""
    server, client = pair

    def answer_comes_later(handled):
        client.sendall(frame(call_msg(50 + handled)))   # arrives, but is the next event's

    svc = _Service(answer_comes_later)
    conn = _connection(svc, server)
    client.sendall(frame(call_msg(50)))
    conn._read()
    assert svc.records == [call_msg(50)] and conn.sock.recvs == 1


class _Sink:
    """sendmsg that takes at most `cap` bytes per call."""

    def __init__(self, cap):
        self.cap = cap
        self.data = bytearray()
        self.calls = 0

    def sendmsg(self, buffers):
        self.calls += 1
        taken = 0
        for buf in buffers:
            piece = bytes(buf)[:self.cap - taken]
            self.data += piece
            taken += len(piece)
            if taken == self.cap:
                break
        if not taken and self.calls > 50:
            raise BlockingIOError
        return taken


@pytest.mark.parametrize("cap", [1, 3, 5, 7, 1 << 20])
def test_write_sends_every_byte_in_order_whatever_the_kernel_takes(pair, cap, monkeypatch):
    server, _ = pair
    conn = transport.TcpConnection(_Service(), server, ("127.0.0.1", 900))
    sink = _Sink(cap)
    conn.sock = sink
    buffers = [b"mark", b"", b"header-", memoryview(b"data" * 3), b"", b"p"]
    size = sum(len(b) for b in buffers)
    rest, sent = conn._write(list(buffers), size)
    assert rest == [] and sent == size
    assert bytes(sink.data) == b"".join(bytes(b) for b in buffers)
    if cap >= size:
        assert sink.calls == 1


def test_write_returns_the_unsent_rest_when_the_kernel_stops(pair):
    server, _ = pair
    conn = transport.TcpConnection(_Service(), server, ("127.0.0.1", 900))

    class Full:
        def __init__(self):
            self.calls = 0

        def sendmsg(self, buffers):
            self.calls += 1
            if self.calls == 1:
                return 6
            raise BlockingIOError

    conn.sock = Full()
    rest, sent = conn._write([b"abcd", b"efgh", b"ij"], 10)
    assert sent == 6 and [bytes(b) for b in rest] == [b"gh", b"ij"]


def test_corked_replies_leave_framed_and_counted(pair):
    server, client = pair
    conn = transport.TcpConnection(_Service(), server, ("127.0.0.1", 900))
    sent = []
    conn._send_record = lambda record, sizes: sent.append(([bytes(b) for b in record], sizes))
    conn._cork, conn._cork_sizes = [], []
    conn.defer_reply([b"one", b"", b"1"])
    conn.defer_reply([b"second"])
    conn._uncork()
    assert sent == [([frame(b"one1")[:HEADER_SIZE], b"one", b"", b"1",
                      frame(b"second")[:HEADER_SIZE], b"second"],
                     [HEADER_SIZE + 4, HEADER_SIZE + 6])]
    conn._uncork()                  # nothing corked: nothing sent
    assert len(sent) == 1


class _ScriptedSocket:
    """sendmsg answers from a script: a byte count (taken from the front) or an exception."""

    def __init__(self, *script):
        self.script = list(script)
        self.data = bytearray()
        self.calls = 0
        self.shut = False

    def sendmsg(self, buffers):
        self.calls += 1
        step = self.script.pop(0) if self.script else BlockingIOError()
        if isinstance(step, BaseException):
            raise step
        joined = b"".join(bytes(b) for b in buffers)
        self.data += joined[:step]
        return min(step, len(joined))

    def shutdown(self, how):
        self.shut = True


def _sending_connection(pair, sock):
    conn = transport.TcpConnection(_Service(), pair[0], ("127.0.0.1", 900))
    conn.sock = sock
    conn.last_active = 0.0
    return conn


def test_send_record_taken_whole_in_one_sendmsg(pair):
    sock = _ScriptedSocket(1 << 20)
    conn = _sending_connection(pair, sock)
    assert conn.send_reply([b"header", b"body"]) is True
    assert sock.calls == 1 and bytes(sock.data) == frame(b"headerbody")
    assert not conn._queue and conn._queued_bytes == 0 and conn.last_active > 0


def test_send_record_cut_short_queues_the_rest_of_each_reply(pair):
    sock = _ScriptedSocket(6, 3, BlockingIOError())    # 6 bytes, 3 more, then the kernel is full
    conn = _sending_connection(pair, sock)
    record = [frame(b"abcd")[:4], b"abcd", frame(b"efgh")[:4], b"efgh"]
    assert conn._send_record(record, [8, 8]) is True
    assert bytes(sock.data) == (frame(b"abcd") + frame(b"efgh"))[:9] and conn.last_active > 0
    assert b"".join(bytes(b) for b in conn._queue) == (frame(b"abcd") + frame(b"efgh"))[9:]
    assert list(conn._queued_records) == [7] and conn._queued_bytes == 7
    assert conn.svc.counted == ["partial_writes"]


def test_send_record_the_kernel_refuses_at_once_is_queued_whole(pair):
    sock = _ScriptedSocket(BlockingIOError(), BlockingIOError())
    conn = _sending_connection(pair, sock)
    assert conn.send_reply([b"later"]) is True
    assert b"".join(bytes(b) for b in conn._queue) == frame(b"later")
    assert conn._queued_bytes == len(frame(b"later")) and conn.last_active == 0.0


@pytest.mark.parametrize("code, logged", [(errno.EPIPE, False), (errno.ECONNRESET, False),
                                          (errno.EIO, True)])
def test_send_record_on_a_broken_socket_shuts_it_down(pair, code, logged, caplog):
    sock = _ScriptedSocket(OSError(code, "broken"))
    conn = _sending_connection(pair, sock)
    with caplog.at_level(logging.WARNING):
        assert conn.send_reply([b"lost"]) is False
    assert sock.shut and not conn._queue
    assert any("write failed" in r.getMessage() for r in caplog.records) is logged


def test_send_record_of_more_buffers_than_iov_max_goes_out_in_rounds(pair):
    sock = _ScriptedSocket(1 << 20, 1 << 20)
    conn = _sending_connection(pair, sock)
    pieces = [bytes([i % 251]) for i in range(transport.IOV_MAX + 10)]
    assert conn.send_reply(pieces) is True
    assert sock.calls == 2 and bytes(sock.data) == frame(b"".join(pieces))


def test_pause_waits_for_a_call_being_read_to_be_handed_on(pair):
    """A graceful stop pauses every connection, then waits until nothing is in
    flight.  A call an event thread has read but not yet counted in flight must
    be counted before pause returns, or the stop half-closes the connection
    under it and its reply never leaves (its CREATE done, its client told the
    connection ended)."""
    import threading
    server, client = pair
    reading, release = threading.Event(), threading.Event()

    def hold_the_call(handled):
        reading.set()
        release.wait(10)

    conn = _connection(_Service(hold_the_call), server)
    client.sendall(frame(call_msg(7)))
    handler = threading.Thread(target=conn._on_event, args=(server.fileno(), 0, 0, None,
                                                             True, False, False))
    handler.start()
    assert reading.wait(10)
    pauser = threading.Thread(target=conn.pause)
    pauser.start()
    pauser.join(0.3)
    assert pauser.is_alive()        # the call is still between read and hand-off
    release.set()
    handler.join(10)
    pauser.join(10)
    assert not pauser.is_alive() and conn.paused
    client.sendall(frame(call_msg(8)))
    conn._on_event(server.fileno(), 0, 0, None, True, False, False)
    assert conn.svc.records == [call_msg(7)]         # nothing read once paused
