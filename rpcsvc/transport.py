"""TCP and UDP transports on the event pool.

TCP: a listener (`rpcsvc.listener`) accepts non-blocking connections; each connection reassembles
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

Throttle (gnfs `rpc.outstanding-rpc-limit`): a call counts against `limit`
from the moment it is handed to the stage until its reply has left the write
queue (a reply the kernel took whole never waits there).  When `limit` are
outstanding the transport stops reading (`select_on(poll_in=0)`) and resumes
when one is gone.  0 means no limit.  Independently, a connection whose
queued reply bytes exceed the service's `reply_backlog` stops reading until
they fall to half of it: a client that sends READs and never reads the
replies costs a bounded amount of memory, whatever the limit says.

Resources a peer could pin without doing anything (see `RpcService`): a
connection that has neither received nor sent a byte for `idle_timeout`
(and has no call in the stage) is shut down by the service's sweep; above
`max_connections` a new connection is accepted and closed at once; when
accept() runs out of descriptors the listener rests (see `rpcsvc.listener`):
an event thread never sleeps.
"""
from __future__ import annotations

import errno
import socket
import struct
import threading
import time
from collections import deque

from event.errors import EventPoolError
from glusterfsd import log as gflog
from glusterfsd.after_reply import pending_here as _pending_here, run as _run_deferred
from rpcsvc.record import HEADER_SIZE, LAST_FRAGMENT, FramingError, RecordAssembler

logger = gflog.get_logger("rpcsvc")

IOV_MAX = 1024
BULK_READ = 64 * 1024      # one read between records takes this much (several small calls)
CORK_REPLIES = 16          # inline replies sent together at most (fio's usual iodepth)
CORK_BYTES = 256 * 1024    # ... or this many bytes of them
RECVS_PER_EVENT = 64        # fairness: yield the event thread after this many reads
UDP_MAX_DATAGRAM = 65536


_pack_word = struct.Struct(">I").pack
_monotonic = time.monotonic


def address_of(addr) -> tuple[str, int]:
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
        self.local = address_of(sock.getsockname())
        self.idx: int | None = None
        self.gen: int | None = None
        self.outstanding = 0      # calls in the stage (their replies not yet written)
        self.throttled = False    # reading stopped: call limit or reply backlog
        self.paused = False       # draining or past EOF: no more reading, ever
        self.closed = False
        self.last_active = time.monotonic()   # last byte received or sent
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

    def _backlog_locked(self) -> tuple[int, int]:
        """(replies, bytes) waiting in the write queue."""
        return 0, 0

    def _may_read_locked(self) -> bool:
        limit = self.svc.outstanding_limit
        replies, queued = self._backlog_locked()
        if limit and self.outstanding + replies >= limit:
            return False
        ceiling = self.svc.reply_backlog
        if ceiling and (queued > ceiling or (self.throttled and queued > ceiling // 2)):
            return False
        return True

    def _rethrottle_locked(self) -> None:
        """Stop or resume reading after the counts above changed."""
        may_read = self._may_read_locked()
        if not may_read and not self.throttled:
            self.throttled = True
            self.svc.count("throttled")
            self._select(0, -1)
        elif may_read and self.throttled:
            self.throttled = False
            if not self.paused and not self.closed:
                self._select(1, -1)
                self._wake_for_held_locked()

    def defer_reply(self, buffers: list, peer=None) -> bool:
        """send_reply for a call run inline; TCP batches them (see TcpConnection)."""
        return self.send_reply(buffers, peer)

    def _wake_for_held_locked(self) -> None:
        """The throttle opened: calls read but not yet run need the event thread."""

    def call_started(self) -> None:
        """A call was handed to the stage; stop reading at the limit."""
        with self._lock:
            self.outstanding += 1
            self._rethrottle_locked()

    def call_done(self) -> None:
        """A call's reply was written or queued (or dropped); read again below the limit."""
        with self._lock:
            self.outstanding -= 1
            self._rethrottle_locked()
            finish = self._finished_locked()
        if finish:
            self.shutdown()

    def _on_event(self, fd, idx, gen, data, poll_in, poll_out, poll_err) -> None:
        """The event pool's handler: `_handle` the event, then run the work its
        calls deferred (glusterfsd.after_reply): the replies are out, and the
        connection's next call waits in the socket until it is done."""
        pending = _pending_here()
        try:
            self._handle(poll_in, poll_out, poll_err)
        finally:
            if pending:
                _run_deferred(pending)

    def _handle(self, poll_in, poll_out, poll_err) -> None:
        """Read, write or close as the event says (each transport its own way)."""
        raise NotImplementedError

    def pause(self) -> None:
        """Stop reading for good (drain); replies still go out.

        Taken under the handler's `_rlock` too: an event thread may be between
        reading a call and counting it in flight (`RpcService._on_record`), and
        `drain` must not find nothing in flight before that call is counted (it
        would then half-close, and the call's reply would never leave: a CREATE
        done, its client told the connection ended)."""
        with self._rlock, self._lock:
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
        self.peer = address_of(peer)
        self.eof = False
        self.reaped = False         # the idle sweep shut it down
        self._assembler = RecordAssembler(svc.max_record, bulk=BULK_READ)
        self._cork: list | None = None        # inline replies of the records being handled
        self._cork_sizes: list = []           # ... the size of each, its mark included
        self._held: deque = deque()           # records read while the throttle was closed
        self._cork_bytes = 0
        self._queue: deque = deque()          # buffers not yet written, in order
        self._queued_records: deque = deque()  # bytes left of each reply in _queue
        self._queued_bytes = 0

    @property
    def has_queued_replies(self) -> bool:
        return bool(self._queue) and not self.closed

    def half_close(self) -> None:
        """Send FIN after the replies already written; the client's close ends it."""
        if self.closed:
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _handle(self, poll_in, poll_out, poll_err) -> None:
        with self._rlock:
            if self.closed:
                return
            if poll_out:
                self._flush()
            if self._held and not self.throttled:
                self._dispatch_held()
            if poll_in and not self._held:
                self._read()
            elif poll_err:
                self.close()

    def _read(self) -> None:
        """Read and dispatch until EAGAIN, or a short read that brought at
        most one call; at most RECVS_PER_EVENT reads.  After a read of several
        calls it reads again: a pipelining client (fio, iodepth 16) sent more
        while they ran, and one recv is cheaper than a re-arm, an epoll_wait
        and a wake-up of the pool's other thread, which then waits for our
        GIL (randread, 4 s: 6 325 epoll_waits and 11 586 futex calls before,
        149 and 401 after).  One call at a time (ls, cp): no extra recv."""
        assembler = self._assembler
        sock = self.sock
        on_record = self.svc._on_record
        for _ in range(RECVS_PER_EVENT):
            if self.throttled or self.paused or self.closed:
                return
            size = assembler.chunk_wanted()
            buf = None
            try:
                if size:        # between records: a chunk of several calls, if sent
                    data = sock.recv(size)
                    count = len(data)
                else:           # inside a record: straight into its buffer
                    buf = assembler.want()
                    size = len(buf)
                    count = sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                logger.debug("tcp %s:%d: read failed: %s", *self.peer, error)
                self.close()
                return
            if count == 0:
                self._at_eof()
                return
            self.last_active = _monotonic()
            try:
                records = assembler.filled_chunk(data) if buf is None else assembler.filled(count)
            except FramingError as error:
                self.svc.count("framing_errors")
                logger.warning("tcp %s:%d: %s; closing the connection", *self.peer, error)
                self.close()
                return
            if records:
                if len(records) == 1 and not (self._held or self.throttled or self.closed):
                    # One call (a client waiting for each reply): no cork, no hold.
                    on_record(self, records[0], self.peer)
                else:
                    self._dispatch(records)
                    if self._held:
                        return  # the throttle closed: read nothing more until they are in
                    if len(records) > 1:
                        continue    # a client that pipelines (see the docstring)
            if count < size:
                return          # the socket is drained

    def _dispatch(self, records: list) -> None:
        """Hand complete records to the service in order.

        One bulk read may bring many calls.  The replies of those run inline
        are corked and leave together in one sendmsg (at most CORK_REPLIES or
        CORK_BYTES at a time, so that the throttle below sees them); and when
        the throttle closes midway (calls waiting in the stage, or replies the
        client does not read), the rest are held here, not run:
        `_rethrottle_locked` arms POLLOUT when it opens again, so the event
        thread comes back for them even if the client sends nothing more."""
        corking = len(records) > 1
        if corking:
            self._cork = []
            self._cork_sizes = []
        try:
            for index, rec in enumerate(records):
                if self.throttled or self.closed:
                    if not self.closed:
                        self._held.extend(records[index:])
                        with self._lock:    # it may have opened since we looked
                            if not self.throttled:
                                self._wake_for_held_locked()
                    break
                self.svc._on_record(self, rec, self.peer)
        finally:
            if corking:
                self._uncork()
                self._cork = None

    def _dispatch_held(self) -> None:
        records = list(self._held)
        self._held.clear()
        self._dispatch(records)

    def _wake_for_held_locked(self) -> None:
        if self._held:
            self._select(-1, 1)     # writable at once: _on_event runs and takes them

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

    def _backlog_locked(self) -> tuple[int, int]:
        return len(self._queued_records), self._queued_bytes

    def idle_for(self, now: float) -> float:
        """Seconds without traffic; 0 while a call is in the stage or once closed."""
        with self._lock:
            if self.closed or self.outstanding:
                return 0.0
            return now - self.last_active

    def defer_reply(self, buffers: list, peer=None) -> bool:
        """send_reply for a call run on the event thread while it handles the
        records of one read: the replies leave together, in one sendmsg.
        The cork holds them already framed (mark, buffers, mark, buffers ...)
        with the size of each in `_cork_sizes`, as `_send_record` wants them."""
        size = 0
        for buf in buffers:
            size += len(buf)
        cork = self._cork
        if cork is None:        # send_reply, without its frame
            return self._send_record([_pack_word(LAST_FRAGMENT | size), *buffers],
                                     [size + HEADER_SIZE])
        cork.append(_pack_word(LAST_FRAGMENT | size))   # record_mark(size), inline
        cork.extend(buffers)
        sizes = self._cork_sizes
        sizes.append(size + HEADER_SIZE)
        self._cork_bytes += size
        if len(sizes) >= CORK_REPLIES or self._cork_bytes >= CORK_BYTES:
            self._uncork()
        return not self.closed

    def _uncork(self) -> None:
        """Send the corked replies as one write (and let the throttle count them)."""
        sizes = self._cork_sizes
        if not sizes:
            return
        record = self._cork
        self._cork = []
        self._cork_sizes = []
        self._cork_bytes = 0
        self._send_record(record, sizes)

    def send_reply(self, buffers: list, peer=None) -> bool:
        """Write one reply record; False if the connection is gone."""
        size = 0
        for buf in buffers:
            size += len(buf)
        return self._send_record([_pack_word(LAST_FRAGMENT | size), *buffers],
                                 [size + HEADER_SIZE])

    def _send_record(self, record: list, sizes: list[int]) -> bool:
        """Write buffers holding whole replies of `sizes` bytes each (marks included)."""
        total = sum(sizes)
        with self._lock:
            if self.closed:
                return False
            if self._queue:
                self._queue.extend(record)
                self._queued_records.extend(sizes)
                self._queued_bytes += total
                self._rethrottle_locked()
                return True
            if len(record) > IOV_MAX:
                rest, sent = self._write(record, total)
            else:   # _write's first round, written out: the kernel nearly always takes it all
                try:
                    sent = self.sock.sendmsg(record)
                except (BlockingIOError, InterruptedError):
                    rest, sent = self._write(record, total)
                except OSError as error:
                    self._write_failed(error)
                    rest, sent = None, 0
                else:
                    self.last_active = _monotonic()
                    if sent == total:
                        return True
                    rest, more = self._write(_advance(record, sent), total - sent)
                    sent += more
            if rest is None:
                broken = True
            else:
                broken = False
                if rest:
                    self._queue.extend(rest)
                    self._queued_records.extend(_unsent_parts(sizes, sent))
                    self._queued_bytes += total - sent
                    self._select(-1, 1)
                    self.svc.count("partial_writes")
                    self._rethrottle_locked()
        if broken:
            self.shutdown()
            return False
        return True

    def _write(self, buffers: list, size: int) -> tuple[list | None, int]:
        """sendmsg the `size` bytes of `buffers` until done or EAGAIN.

        Returns (the unsent rest, or None if the socket failed; bytes sent).
        Knowing `size` spares the usual case (all taken) a walk over the
        buffers: a tenth of the event thread's time with 16 corked READs."""
        total = 0
        sendmsg = self.sock.sendmsg
        while buffers:
            try:
                sent = sendmsg(buffers if len(buffers) <= IOV_MAX else buffers[:IOV_MAX])
            except (BlockingIOError, InterruptedError) as error:
                if isinstance(error, InterruptedError):
                    continue
                break
            except OSError as error:
                self._write_failed(error)
                return None, total
            total += sent
            if total == size:
                buffers = []        # the usual case: all taken, no walk to find the rest
                break
            buffers = _advance(buffers, sent)
        if total:
            self.last_active = time.monotonic()
        return buffers, total

    def _write_failed(self, error: OSError) -> None:
        """A write met `error`: the connection is broken (logged unless it is the usual hang-up)."""
        if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.EBADF):
            logger.warning("tcp %s:%d: write failed: %s", *self.peer, error)

    def _dequeue_locked(self, sent: int) -> None:
        """`sent` bytes of the queue were written: retire the replies that are complete."""
        self._queued_bytes -= sent
        records = self._queued_records
        while sent and records:
            if sent < records[0]:
                records[0] -= sent
                return
            sent -= records.popleft()

    def _flush(self) -> None:
        with self._lock:
            if not self._queue:
                self._select(-1, 0)
                return
            rest, sent = self._write(list(self._queue), self._queued_bytes)
            self._queue.clear()
            if rest is None:
                broken = True
            else:
                broken = False
                self._queue.extend(rest)
                self._dequeue_locked(sent)
                if not rest:
                    self._select(-1, 0)
                self._rethrottle_locked()
            finished = self._finished_locked()
        if broken or finished:
            self.close()

    def _closing_locked(self) -> None:
        self._queue.clear()
        self._queued_records.clear()
        self._queued_bytes = 0


class UdpEndpoint(Transport):
    kind = "udp"

    def _handle(self, poll_in, poll_out, poll_err) -> None:
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
                self.svc._on_record(self, memoryview(datagram), address_of(peer))

    def send_reply(self, buffers: list, peer) -> bool:
        try:
            self.sock.sendmsg(buffers[:IOV_MAX] if len(buffers) <= IOV_MAX
                              else [b"".join(buffers)], (), 0, peer)
            return True
        except OSError as error:
            self.svc.count("udp_send_drops")
            logger.debug("udp reply to %s:%d dropped: %s", *peer, error)
            return False


def _unsent_parts(sizes: list[int], sent: int) -> list[int]:
    """What is left of each reply after the first `sent` bytes of them were written."""
    left = []
    for size in sizes:
        if sent >= size:
            sent -= size
            continue
        left.append(size - sent)
        sent = 0
    return left
