"""TCP and UDP transports on the event pool.

TCP: a listener accepts non-blocking connections; each connection reassembles
records (`record.RecordAssembler`) on its event thread and hands them to the
service.  A reply is `[record mark, header, payload buffers...]` written with
one `sendmsg`; what the kernel does not take is queued and POLLOUT armed, and
later replies queue behind it so records never interleave.

Who closes a connection: only its event handler (or the service's own close),
holding `_rlock`.  A stage thread that finds a connection broken shuts the
socket down instead; the resulting POLLHUP brings the handler, which closes.
Closing from any thread while another reads would let the fd number be
reused under the reader.

UDP: one datagram is one call; the reply goes back to the sender with
`sendmsg(..., address)`.  A reply the kernel refuses (EAGAIN, too big) is
dropped: the client retransmits, as with any lost datagram.

Throttle (gnfs `rpc.outstanding-rpc-limit`): each transport counts the calls
handed to the stage.  When `limit` are outstanding the transport stops reading
(`select_on(poll_in=0)`) and resumes when one finishes.  0 means no limit.
"""
from __future__ import annotations

import errno
import socket
import threading
import time
from collections import deque

from event.errors import EventPoolError
from glusterfsd import log as gflog
from rpcsvc.record import FramingError, RecordAssembler, record_mark

logger = gflog.get_logger("rpcsvc")

IOV_MAX = 1024
RECVS_PER_EVENT = 64        # fairness: yield the event thread after this many reads
ACCEPTS_PER_EVENT = 64
UDP_MAX_DATAGRAM = 65536
ACCEPT_BACKOFF = 0.05       # seconds, after accept() ran out of fds or memory
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _address(addr) -> tuple[str, int]:
    return (addr[0], addr[1]) if isinstance(addr, tuple) else (str(addr), 0)


def _advance(buffers: list, sent: int) -> list:
    """The part of `buffers` left after `sent` bytes were written."""
    for i, buf in enumerate(buffers):
        size = len(buf)
        if sent < size:
            rest = buffers[i:]
            if sent:
                rest[0] = memoryview(buf).cast("B")[sent:]
            return rest
        sent -= size
    return []


class Transport:
    """What TCP connections and UDP endpoints share: the pool slot and the throttle."""

    kind = "?"

    def __init__(self, svc, sock: socket.socket):
        self.svc = svc
        self.pool = svc.pool
        self.sock = sock
        self.fd = sock.fileno()
        self.local = _address(sock.getsockname())
        self.idx: int | None = None
        self.gen: int | None = None
        self.outstanding = 0
        self.throttled = False
        self.paused = False       # draining or past EOF: no more reading, ever
        self.closed = False
        self._lock = threading.Lock()   # writes, counters, flags
        self._rlock = threading.RLock()  # the handler's; close takes it too

    def start(self) -> None:
        self.sock.setblocking(False)
        self.idx, self.gen = self.pool.register(self.fd, self._on_event, None, True, False)

    def _select(self, poll_in: int, poll_out: int) -> None:
        if self.idx is None:
            return
        try:
            self.pool.select_on(self.idx, poll_in, poll_out, self.gen)
        except EventPoolError:
            pass        # slot already gone: the transport is closing

    def call_started(self) -> None:
        """A call was handed to the stage; stop reading at the limit."""
        limit = self.svc.outstanding_limit
        with self._lock:
            self.outstanding += 1
            if limit and self.outstanding >= limit and not self.throttled:
                self.throttled = True
                self.svc.count("throttled")
                self._select(0, -1)

    def call_done(self) -> None:
        """A call's reply was sent (or dropped); read again below the limit."""
        limit = self.svc.outstanding_limit
        with self._lock:
            self.outstanding -= 1
            if self.throttled and (not limit or self.outstanding < limit):
                self.throttled = False
                if not self.paused and not self.closed:
                    self._select(1, -1)
            finish = self._finished_locked()
        if finish:
            self.shutdown()

    def pause(self) -> None:
        """Stop reading for good (drain); replies still go out."""
        with self._lock:
            self.paused = True
            self._select(0, -1)

    def _finished_locked(self) -> bool:
        return False

    def shutdown(self) -> None:
        """Ask the handler to close (safe from any thread)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        with self._rlock:
            with self._lock:
                if self.closed:
                    return
                self.closed = True
                self._closing_locked()
            if self.idx is not None:
                try:
                    self.pool.unregister(self.idx, self.gen)
                except EventPoolError:
                    pass
            try:
                self.sock.close()
            except OSError:
                pass
        self.svc._forget_transport(self)

    def _closing_locked(self) -> None:
        pass


class TcpConnection(Transport):
    kind = "tcp"

    def __init__(self, svc, sock: socket.socket, peer):
        super().__init__(svc, sock)
        self.peer = _address(peer)
        self.eof = False
        self._assembler = RecordAssembler(svc.max_record)
        self._queue: deque = deque()

    def _on_event(self, fd, idx, gen, data, poll_in, poll_out, poll_err) -> None:
        with self._rlock:
            if self.closed:
                return
            if poll_out:
                self._flush()
            if poll_in:
                self._read()
            elif poll_err:
                self.close()

    def _read(self) -> None:
        assembler = self._assembler
        for _ in range(RECVS_PER_EVENT):
            if self.throttled or self.paused or self.closed:
                return
            buf = assembler.want()
            try:
                count = self.sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                logger.debug("tcp %s:%d: read failed: %s", *self.peer, error)
                self.close()
                return
            if count == 0:
                self._at_eof()
                return
            try:
                records = assembler.filled(count)
            except FramingError as error:
                self.svc.count("framing_errors")
                logger.warning("tcp %s:%d: %s; closing the connection", *self.peer, error)
                self.close()
                return
            for rec in records:
                self.svc._on_record(self, rec, self.peer)
            if count < len(buf):
                return          # the socket is drained

    def _at_eof(self) -> None:
        with self._lock:
            self.eof = True
            self.paused = True
            finished = self._finished_locked()
            if not finished:
                self._select(0, -1)
        if finished:
            self.close()

    def _finished_locked(self) -> bool:
        return self.eof and self.outstanding == 0 and not self._queue

    def send_reply(self, buffers: list, peer=None) -> bool:
        """Write one reply record; False if the connection is gone."""
        total = 0
        for buf in buffers:
            total += len(buf)
        record = [record_mark(total)]
        record.extend(buffers)
        with self._lock:
            if self.closed:
                return False
            if self._queue:
                self._queue.extend(record)
                return True
            rest = self._write(record)
            if rest is None:
                broken = True
            else:
                broken = False
                if rest:
                    self._queue.extend(rest)
                    self._select(-1, 1)
                    self.svc.count("partial_writes")
        if broken:
            self.shutdown()
            return False
        return True

    def _write(self, buffers: list):
        """sendmsg until done or EAGAIN; the unsent rest, or None if the socket failed."""
        while buffers:
            try:
                sent = self.sock.sendmsg(buffers[:IOV_MAX])
            except (BlockingIOError, InterruptedError) as error:
                if isinstance(error, InterruptedError):
                    continue
                return buffers
            except OSError as error:
                if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.EBADF):
                    logger.warning("tcp %s:%d: write failed: %s", *self.peer, error)
                return None
            buffers = _advance(buffers, sent)
        return []

    def _flush(self) -> None:
        with self._lock:
            if not self._queue:
                self._select(-1, 0)
                return
            rest = self._write(list(self._queue))
            self._queue.clear()
            if rest is None:
                broken = True
            else:
                broken = False
                self._queue.extend(rest)
                if not rest:
                    self._select(-1, 0)
            finished = self._finished_locked()
        if broken or finished:
            self.close()

    def _closing_locked(self) -> None:
        self._queue.clear()


class TcpListener:
    """Accepts connections on a listening socket (it may be shared with other workers)."""

    kind = "tcp-listener"

    def __init__(self, svc, sock: socket.socket):
        self.svc = svc
        self.pool = svc.pool
        self.sock = sock
        self.local = _address(sock.getsockname())
        self.idx: int | None = None
        self.gen: int | None = None

    def start(self) -> None:
        self.sock.setblocking(False)
        self.idx, self.gen = self.pool.register(self.sock.fileno(), self._on_event, None,
                                                True, False)

    def _on_event(self, fd, idx, gen, data, poll_in, poll_out, poll_err) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return      # another worker took it, or the backlog is empty
            except OSError as error:
                logger.error("accept on %s:%d failed: %s", *self.local, error)
                if error.errno in _OUT_OF_RESOURCES:
                    time.sleep(ACCEPT_BACKOFF)   # the fd stays readable: do not spin
                return
            self.svc._accepted(conn, peer)

    def stop(self) -> None:
        """Stop accepting (the socket stays open)."""
        if self.idx is not None:
            try:
                self.pool.unregister(self.idx, self.gen)
            except EventPoolError:
                pass
            self.idx = None

    def close(self) -> None:
        self.stop()
        try:
            self.sock.close()
        except OSError:
            pass


class UdpEndpoint(Transport):
    kind = "udp"

    def _on_event(self, fd, idx, gen, data, poll_in, poll_out, poll_err) -> None:
        with self._rlock:
            if self.closed or not (poll_in or poll_err):
                return
            for _ in range(RECVS_PER_EVENT):
                if self.throttled or self.paused or self.closed:
                    return
                try:
                    datagram, peer = self.sock.recvfrom(UDP_MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as error:    # e.g. ICMP port unreachable for an earlier reply
                    logger.debug("udp %s:%d: recvfrom: %s", *self.local, error)
                    continue
                if len(datagram) > self.svc.max_record:
                    self.svc.count("framing_errors")
                    continue
                self.svc._on_record(self, memoryview(datagram), _address(peer))

    def send_reply(self, buffers: list, peer) -> bool:
        try:
            self.sock.sendmsg(buffers[:IOV_MAX] if len(buffers) <= IOV_MAX
                              else [b"".join(buffers)], (), 0, peer)
            return True
        except OSError as error:
            self.svc.count("udp_send_drops")
            logger.debug("udp reply to %s:%d dropped: %s", *peer, error)
            return False
