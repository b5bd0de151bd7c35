"""The poll backend (GlusterFS `event-poll.c`), for systems without epoll.

Why it is shaped this way: poll(2) has no kernel-side registration to change
from another thread, so -- as in GlusterFS -- one thread owns the poll set and
everyone else tells it what to change.  Registrations, mask changes and
re-arms are queued and a byte is written to the "breaker" pipe, which sits in
the poll set, so the poll thread wakes, applies the queue and polls again.
The poll thread never waits on a timer.

There is exactly one event thread (GlusterFS forces eventthreadcount to 1 for
poll), so one-shot holds by construction; the slot bookkeeping (`in_handler`,
`{idx, gen}`, deferred close) is the shared one from `event.pool`, so handlers
see the same contract as with epoll.  The poll thread keeps fd -> packed
`{idx, gen}` as of the registrations it applied before each poll() call, so a
result for a registration that went away meanwhile fails the gen check.

An fd closed while still registered answers POLLNVAL; epoll would silently
forget such an fd, so the poll thread drops it from the set instead of
spinning on it.
"""
from __future__ import annotations

import os
import select
import threading

from event.errors import PoolClosedError
from event.pool import POLLIN, POLLNVAL, EventPool, check_thread_count
from event.slots import IDX_BITS, IDX_MASK, pack
from glusterfsd import log as gflog


class PollEventPool(EventPool):
    """One poll thread, woken by a breaker pipe when its set must change."""

    backend_name = "poll"

    def __init__(self, slots: int = 1024, threads: int = 1):
        check_thread_count(threads)
        super().__init__(slots, gflog.get_logger("poll"))
        if threads != 1:
            self._log.info("poll backend runs one event thread; %d asked for", threads)
        self._poller = select.poll()
        self._breaker_r, self._breaker_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller.register(self._breaker_r, POLLIN)
        self._pending: list[tuple[int, int | None, int]] = []    # (fd, packed or None, mask)
        self._pending_lock = threading.Lock()
        self._watch: dict[int, int] = {}    # fd -> packed {idx, gen}; poll thread only
        self._poll_ident = None
        self._stopping = False

    # ---- kernel side (queued for the poll thread) ---------------------------------

    def _queue(self, fd: int, packed: int | None, mask: int) -> None:
        with self._pending_lock:
            first = not self._pending       # a wake-up is already due for a non-empty queue
            self._pending.append((fd, packed, mask))
        if first and threading.get_ident() != self._poll_ident:
            self._poke_breaker()

    def _kernel_add(self, slot) -> None:
        os.fstat(slot.fd)       # poll would accept a closed fd; answer EBADF as epoll does
        self._queue(slot.fd, pack(slot.idx, slot.gen), slot.events)

    def _kernel_arm(self, slot) -> None:
        self._queue(slot.fd, pack(slot.idx, slot.gen), slot.events)

    def _kernel_remove(self, slot) -> None:
        self._queue(slot.fd, None, 0)

    def _close_kernel(self) -> None:
        for fd in (self._breaker_r, self._breaker_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _poke_breaker(self) -> None:
        try:
            os.write(self._breaker_w, b"x")
        except BlockingIOError:
            pass                # pipe full: a wake-up is already pending
        except OSError:
            if not self._closed:
                raise

    def _drain_breaker(self) -> None:
        try:
            while os.read(self._breaker_r, 512):
                pass
        except BlockingIOError:
            pass

    def _apply_pending(self) -> None:
        with self._pending_lock:
            ops, self._pending = self._pending, []
        for fd, packed, mask in ops:
            if packed is None:
                if self._watch.pop(fd, None) is not None:
                    self._poller.unregister(fd)
            else:
                self._watch[fd] = packed
                self._poller.register(fd, mask)

    # ---- the thread -----------------------------------------------------------------

    @property
    def threads(self) -> int:
        return 1

    def reconfigure_threads(self, count: int) -> int:
        """poll has one thread whatever is asked (GlusterFS does the same)."""
        check_thread_count(count)
        if self._closed:
            raise PoolClosedError("event pool is destroyed")
        if count != 1:
            self._log.info("poll backend keeps one event thread; %d asked for", count)
        return 1

    def _start_threads(self) -> None:
        self._spawn(self._worker, "glfs_poller")

    def _signal_stop(self) -> None:
        self._stopping = True
        self._poke_breaker()

    def _worker(self) -> None:
        self._poll_ident = threading.get_ident()
        poll = self._poller.poll
        dispatch = self._dispatch_event
        breaker = self._breaker_r
        watch = self._watch
        while not self._stopping:
            if self._pending:
                self._apply_pending()
            try:
                events = poll()
            except OSError as error:
                self._log.critical("poll failed, event thread exits: %s", error)
                return
            for fd, revents in events:
                if self._stopping:
                    return
                if fd == breaker:
                    self._drain_breaker()
                    continue
                packed = watch.get(fd)
                if packed is None:
                    continue
                if revents & POLLNVAL:
                    self._drop_closed_fd(fd, packed)
                    continue
                dispatch(packed & IDX_MASK, packed >> IDX_BITS, revents)

    def _drop_closed_fd(self, fd: int, packed: int) -> None:
        del self._watch[fd]
        self._poller.unregister(fd)
        self._log.warning("fd %d (slot %d) was closed while registered; no longer polled",
                          fd, packed & IDX_MASK)
