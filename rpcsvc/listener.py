"""The TCP listener: accepts connections for the service, on the event pool.

Why its own module: accepting is a concern apart from moving records over a
connection (`rpcsvc.transport`).  The listening socket may be shared by the
prefork workers: whoever's epoll wakes first accepts, the others find the
backlog empty (EAGAIN) and go back to waiting.  When accept() runs out of
descriptors or memory the listener stops polling for ACCEPT_BACKOFF seconds
(the service's timer turns it back on) instead of sleeping: an event thread
never sleeps, and a readable listener would otherwise wake it in a loop.
"""
from __future__ import annotations

import errno
import socket
import threading

from event.errors import EventPoolError
from glusterfsd import log as gflog
from rpcsvc.transport import address_of

logger = gflog.get_logger("rpcsvc")

ACCEPTS_PER_EVENT = 64
ACCEPT_BACKOFF = 0.1        # seconds the listener rests after accept() ran out of fds
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class TcpListener:
    """Accepts connections on a listening socket (it may be shared with other workers)."""

    kind = "tcp-listener"

    def __init__(self, svc, sock: socket.socket):
        self.svc = svc
        self.pool = svc.pool
        self.sock = sock
        self.local = address_of(sock.getsockname())
        self.idx: int | None = None
        self.gen: int | None = None
        self.resting = False        # accept() ran out of descriptors: not polled for now
        self._rests = 0             # in a row, without an accept in between (log once)
        self._lock = threading.Lock()

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
                if error.errno in _OUT_OF_RESOURCES:
                    self._rest(error)
                else:
                    logger.error("accept on %s:%d failed: %s", *self.local, error)
                return
            self._rests = 0
            self.svc._accepted(conn, peer)

    def _rest(self, error: OSError) -> None:
        """Out of fds or memory: the listener stays readable, so stop polling it a while.

        Sleeping here would stall every connection served by this event
        thread; instead the service's ticker turns polling back on."""
        with self._lock:
            if self.resting or self.idx is None:
                return
            self.resting = True
            self._rests += 1
            first = self._rests == 1
            self._select(0)
        self.svc.count("accept_backoffs")
        log = logger.warning if first else logger.debug     # once per shortage, not 10/s
        log("accept on %s:%d failed: %s; not accepting for %.2fs", *self.local, error,
            ACCEPT_BACKOFF)
        if not self.svc._call_later(ACCEPT_BACKOFF, self._wake):
            self._wake()            # no ticker (service closing): nothing to rest for

    def _wake(self) -> None:
        with self._lock:
            if not self.resting:
                return
            self.resting = False
            self._select(1)

    def _select(self, poll_in: int) -> None:
        if self.idx is None:
            return
        try:
            self.pool.select_on(self.idx, poll_in, -1, self.gen)
        except EventPoolError:
            pass

    def stop(self) -> None:
        """Stop accepting (the socket stays open)."""
        with self._lock:
            idx, self.idx = self.idx, None
        if idx is not None:
            try:
                self.pool.unregister(idx, self.gen)
            except EventPoolError:
                pass

    def close(self) -> None:
        self.stop()
        try:
            self.sock.close()
        except OSError:
            pass
