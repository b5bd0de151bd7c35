"""The epoll backend (GlusterFS `event-epoll.c`).

Why it is shaped this way:

* Every fd is registered EPOLLONESHOT: once the kernel has handed one event of
  an fd to one event thread, it hands none to the others until the pool
  re-arms the fd with EPOLL_CTL_MOD (after `handled()` or when the handler
  returns).  This is how N threads share one epoll set without ever running
  one fd's handler twice at once, and without a lock around the handler.
* The kernel's `epoll_event.data` carries `{idx, gen}`, not the fd, so an
  event that was already fetched for a registration which then went away
  (and whose slot or fd number was reused) is recognised and dropped.
  `select.epoll.register()` always stores the fd there, so registration goes
  through `epoll_ctl(2)` called with ctypes (see `_load_epoll_ctl`); waiting
  is `select.epoll.poll()`, which returns `data.fd` -- the packed
  `{idx, gen}` -- as it stands.
* Each event thread waits for ONE event at a time (maxevents=1), as GlusterFS
  does: a thread never holds events that an idle thread could be running.
* A "breaker" pipe, registered one-shot with a data value no slot can have,
  tells threads to leave: on destroy every thread that meets it re-arms it for
  the next and exits; on a shrink, as many threads as asked for exit.  Nothing
  polls on a timer.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import select
import threading

from event.errors import PoolClosedError
from event.pool import EventPool, check_thread_count
from event.slots import IDX_BITS, IDX_MASK, pack
from glusterfsd import log as gflog

EPOLLONESHOT = 1 << 30
_ARM_BITS = EPOLLONESHOT | 0x008 | 0x010        # ONESHOT | ERR | HUP
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
BREAKER_DATA = -1               # packed {idx, gen} values are always >= 0


class _EpollData(ctypes.Union):
    _fields_ = [("ptr", ctypes.c_void_p), ("fd", ctypes.c_int),
                ("u32", ctypes.c_uint32), ("u64", ctypes.c_uint64)]


class _EpollEvent(ctypes.Structure):
    # <sys/epoll.h> declares struct epoll_event packed on x86-64 only.
    if platform.machine().lower() in ("x86_64", "amd64"):
        _pack_ = 1
    _fields_ = [("events", ctypes.c_uint32), ("data", _EpollData)]


def _load_epoll_ctl():
    """epoll_ctl(2) from libc, called without argument conversion.

    Why this way: a ctypes call with `argtypes` spends about 1.2 us
    converting its four arguments, more than the system call itself; every
    RPC pays one re-arm.  Called bare, the three ints go as C ints and the
    event as a `byref` made once per slot (~0.9 us in all, against ~2.3).
    It is loaded through `PyDLL`, which keeps the GIL across the call:
    EPOLL_CTL_* never sleeps for long (at most on the epoll's mutex while
    another thread copies out its event), and dropping and retaking the GIL
    around a sub-microsecond call only invites the other event thread in."""
    try:
        libc = ctypes.PyDLL(None, use_errno=True)
        function = libc.epoll_ctl
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    return function


_epoll_ctl = _load_epoll_ctl()
_byref = ctypes.byref


def _ctl_failed(op: int, fd: int):
    """Raise the OSError of the epoll_ctl that just failed (errno from ctypes)."""
    code = ctypes.get_errno()
    raise OSError(code, f"epoll_ctl(op {op}, fd {fd}): {os.strerror(code)}")


def _new_event(events: int, data: int) -> _EpollEvent:
    event = _EpollEvent()
    event.events = events
    event.data.fd = data
    return event


class EpollEventPool(EventPool):
    """N event threads on one epoll set, one-shot per fd."""

    backend_name = "epoll"

    def __init__(self, slots: int = 1024, threads: int = 2):
        if not hasattr(select, "epoll") or _epoll_ctl is None:
            raise OSError(errno.ENOSYS, "epoll is not available on this system")
        check_thread_count(threads)
        super().__init__(slots, gflog.get_logger("epoll"))
        self._target = threads          # threads alive minus retirements pending
        self._retire = 0
        self._stopping = False
        self._seq = 0
        self._epoll = select.epoll()    # close-on-exec
        self._epfd = self._epoll.fileno()
        try:
            self._breaker_r, self._breaker_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self._epoll.close()
            raise
        self._breaker_event = _new_event(0x001 | EPOLLONESHOT, BREAKER_DATA)
        try:
            self._ctl(EPOLL_CTL_ADD, self._breaker_r, _byref(self._breaker_event))
        except OSError:
            self._close_kernel()
            raise

    # ---- kernel side ----------------------------------------------------------------

    def _ctl(self, op: int, fd: int, ref) -> None:
        """epoll_ctl with `ref`, a byref of the epoll_event."""
        if _epoll_ctl(self._epfd, op, fd, ref) != 0:
            _ctl_failed(op, fd)

    # slot.kernel is (the slot's epoll_event, a byref of it), made once and
    # reused by every later owner of the slot; slot.armed is the mask last
    # written into that event, so a re-arm with the same interest (nearly
    # every one) does not pay for setting a ctypes field.

    def _kernel_add(self, slot) -> None:
        if slot.kernel is None:
            event = _EpollEvent()
            slot.kernel = (event, _byref(event))
        event, ref = slot.kernel
        mask = slot.events | _ARM_BITS
        event.events = mask
        slot.armed = mask
        event.data.fd = pack(slot.idx, slot.gen)
        self._ctl(EPOLL_CTL_ADD, slot.fd, ref)

    def _kernel_arm(self, slot) -> None:
        mask = slot.events | _ARM_BITS
        event, ref = slot.kernel
        if slot.armed != mask:
            event.events = mask
            slot.armed = mask
        if _epoll_ctl(self._epfd, EPOLL_CTL_MOD, slot.fd, ref) != 0:     # _ctl, one call less
            _ctl_failed(EPOLL_CTL_MOD, slot.fd)

    def _kernel_remove(self, slot) -> None:
        self._ctl(EPOLL_CTL_DEL, slot.fd, slot.kernel[1])

    def _close_kernel(self) -> None:
        self._epoll.close()
        for fd in (self._breaker_r, self._breaker_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # ---- threads ----------------------------------------------------------------------

    @property
    def threads(self) -> int:
        return self._target

    def _start_threads(self) -> None:
        for _ in range(self._target):
            self._spawn_one()

    def _spawn_one(self) -> None:
        name = f"glfs_epoll{self._seq:03d}"
        self._seq += 1
        self._spawn(self._worker, name)

    def _signal_stop(self) -> None:
        self._stopping = True
        self._poke_breaker()

    def _poke_breaker(self) -> None:
        try:
            os.write(self._breaker_w, b"x")
        except BlockingIOError:
            pass                # the pipe is full: the breaker is already pending

    def reconfigure_threads(self, count: int) -> int:
        """Grow or shrink the event threads (GlusterFS event_reconfigure_threads)."""
        check_thread_count(count)
        with self._threads_lock:
            if self._closed:
                raise PoolClosedError("event pool is destroyed")
            old, self._target = self._target, count
            if not self._started:
                return count
            if count > old:
                cancelled = min(self._retire, count - old)
                self._retire -= cancelled
                for _ in range(count - old - cancelled):
                    self._spawn_one()
            elif count < old:
                self._retire += old - count
                self._poke_breaker()
            self._retired = [w for w in self._retired if w.is_alive()]
        self._log.info("event threads reconfigured from %d to %d", old, count)
        return count

    def _breaker_fired(self) -> bool:
        """One thread met the breaker: should it leave?  Re-arms the breaker."""
        with self._threads_lock:
            if self._stopping:
                leave = True
            elif self._retire > 0:
                self._retire -= 1
                leave = True
            else:
                leave = False
            if leave and not self._stopping:
                self._forget_worker(threading.current_thread())
            if not (self._stopping or self._retire > 0):
                try:
                    while os.read(self._breaker_r, 512):
                        pass
                except BlockingIOError:
                    pass
            self._ctl(EPOLL_CTL_MOD, self._breaker_r, _byref(self._breaker_event))
        return leave

    def _worker(self) -> None:
        poll = self._epoll.poll
        dispatch = self._dispatch_event
        while True:
            try:
                events = poll(-1, 1)
            except (OSError, ValueError) as error:
                if not self._stopping:
                    self._log.critical("epoll_wait failed, event thread exits: %s", error)
                return
            if not events:
                continue
            data, revents = events[0]
            if data == BREAKER_DATA:
                if self._breaker_fired():
                    return
                continue
            dispatch(data & IDX_MASK, data >> IDX_BITS, revents)
