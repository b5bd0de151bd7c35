"""The event pool's operations, shared by its backends (GlusterFS `gf-event.h`).

Why it is shaped this way: GlusterFS keeps one ops table (`struct event_ops`:
new, register, select_on, unregister, unregister_close, dispatch,
reconfigure_threads, destroy, handled) with an epoll and a poll
implementation, and picks epoll when it can.  Here the ops table is this
abstract class.  Everything that decides *when a handler may run* lives here,
once, so both backends keep the same contract; a backend only says how to tell
its kernel interface about an fd (`_kernel_add`, `_kernel_arm`,
`_kernel_remove`) and how its threads wait.

The contract (GlusterFS `event-epoll.c`'s one-shot model):

* An fd is armed for one event at a time.  When an event is dispatched the
  slot is marked `in_handler`; nothing re-arms the fd until the handler calls
  `handled(idx, gen)` or returns (then the pool re-arms it itself).  So two
  event threads never run one fd's handler at once, unless the handler asked
  for it by calling `handled()` early.
* `select_on` made while the slot is in its handler only changes the stored
  mask; the re-arm applies it.  Otherwise it reaches the kernel at once.
* `unregister_close` made while a handler runs on the slot defers the close
  (and the slot's reuse) until the last running handler returns.
* Every event carries `{idx, gen}`; an event or a `handled()` whose gen is not
  the slot's current gen belongs to an earlier owner and is ignored.
* A handler that raises is logged with its traceback; the thread lives on and
  the fd is re-armed.
"""
from __future__ import annotations

import abc
import errno
import os
import threading

from event.errors import PoolClosedError, UnknownSlotError
from event.slots import SlotTable

# Linux gives poll(2) and epoll(7) the same bits for these.
POLLIN = 0x001
POLLPRI = 0x002
POLLOUT = 0x004
POLLERR = 0x008
POLLHUP = 0x010
POLLNVAL = 0x020
IN_BITS = POLLIN | POLLPRI
OUT_BITS = POLLOUT
ERR_BITS = POLLERR | POLLHUP

MAX_THREADS = 1024          # GlusterFS EVENT_MAX_THREADS
_TRISTATE = (-1, 0, 1)


def check_thread_count(count) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"thread count must be an int, not {type(count).__name__}")
    if count < 1 or count > MAX_THREADS:
        raise ValueError(f"thread count must be 1..{MAX_THREADS}, not {count}")
    return count


def _check_fd(fd) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"fd must be an int, not {type(fd).__name__}")
    if fd < 0:
        raise ValueError(f"fd must be >= 0, not {fd}")
    return fd


def _check_tristate(value, name: str) -> int:
    if not isinstance(value, int) or value not in _TRISTATE:
        raise ValueError(f"{name} must be -1 (leave), 0 (off) or 1 (on), not {value!r}")
    return value


def _interest(poll_in, poll_out) -> int:
    return (IN_BITS if poll_in else 0) | (OUT_BITS if poll_out else 0)


class EventPool(abc.ABC):
    """The ops table.  Subclasses: `event.epoll.EpollEventPool`, `event.poll.PollEventPool`."""

    backend_name = "abstract"

    def __init__(self, slots: int, logger):
        if isinstance(slots, bool) or not isinstance(slots, int):
            raise TypeError(f"slots must be an int, not {type(slots).__name__}")
        if slots < 1:
            raise ValueError(f"slots must be >= 1, not {slots}")
        self._slots = SlotTable(slots)
        self._log = logger
        self._fds: dict[int, int] = {}          # fd -> idx, for live registrations
        self._fd_lock = threading.Lock()
        self._threads_lock = threading.Lock()   # guards the fields below
        self._workers: list[threading.Thread] = []
        self._retired: list[threading.Thread] = []  # left after a shrink; joined on destroy
        self._started = False
        self._closed = False

    # ---- what a backend provides -------------------------------------------------

    @abc.abstractmethod
    def _kernel_add(self, slot) -> None:
        """Start watching slot.fd for slot.events, armed (slot.lock held)."""

    @abc.abstractmethod
    def _kernel_arm(self, slot) -> None:
        """(Re-)arm slot.fd for slot.events (slot.lock held)."""

    @abc.abstractmethod
    def _kernel_remove(self, slot) -> None:
        """Stop watching slot.fd (slot.lock held)."""

    @abc.abstractmethod
    def _start_threads(self) -> None:
        """Start the event threads (threads lock held)."""

    @abc.abstractmethod
    def _signal_stop(self) -> None:
        """Tell every event thread to leave its loop (threads lock held)."""

    @abc.abstractmethod
    def _close_kernel(self) -> None:
        """Release the kernel objects after all threads were joined."""

    @property
    @abc.abstractmethod
    def threads(self) -> int:
        """How many event threads the pool runs (or will run once dispatched)."""

    @abc.abstractmethod
    def reconfigure_threads(self, count: int) -> int:
        """Grow or shrink the event threads; returns the new count."""

    # ---- the operations -----------------------------------------------------------

    def register(self, fd: int, handler, data, poll_in: bool, poll_out: bool) -> tuple[int, int]:
        """Watch fd; returns (idx, gen).  The fd stays the caller's until unregister_close."""
        fd = _check_fd(fd)
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        if self._closed:
            raise PoolClosedError("event pool is destroyed")
        with self._fd_lock:
            if fd in self._fds:
                raise FileExistsError(errno.EEXIST, f"fd {fd} is already registered "
                                      f"(slot {self._fds[fd]})")
            self._fds[fd] = -1                  # reserved while we set up the slot
        try:
            slot = self._slots.alloc()
        except BaseException:
            with self._fd_lock:
                del self._fds[fd]
            raise
        with slot.lock:
            slot.fd = fd
            slot.handler = handler
            slot.data = data
            slot.events = _interest(poll_in, poll_out)
            slot.in_handler = False
            slot.running = 0
            try:
                self._kernel_add(slot)
            except BaseException:
                self._slots.free(slot)
                with self._fd_lock:
                    del self._fds[fd]
                raise
            idx, gen = slot.idx, slot.gen
        with self._fd_lock:
            self._fds[fd] = idx
        return idx, gen

    def select_on(self, idx: int, poll_in: int, poll_out: int, gen: int | None = None) -> bool:
        """Turn read/write interest on (1), off (0) or leave it (-1).

        Without gen, an idx with nothing registered raises UnknownSlotError; with
        gen, a stale (idx, gen) is ignored and answers False.
        """
        _check_tristate(poll_in, "poll_in")
        _check_tristate(poll_out, "poll_out")
        if self._closed:
            raise PoolClosedError("event pool is destroyed")
        slot = self._slots.get(idx)
        with slot.lock:
            if not self._owns(slot, idx, gen):
                return False
            events = slot.events
            if poll_in == 1:
                events |= IN_BITS
            elif poll_in == 0:
                events &= ~IN_BITS
            if poll_out == 1:
                events |= OUT_BITS
            elif poll_out == 0:
                events &= ~OUT_BITS
            if events != slot.events:
                slot.events = events
                if not slot.in_handler:         # else the re-arm after the handler applies it
                    self._kernel_arm(slot)
        return True

    def handled(self, idx: int, gen: int) -> bool:
        """The handler is done with this event: re-arm the fd now.  Stale gen: ignored."""
        slot = self._slots.lookup(idx) if isinstance(idx, int) else None
        if slot is None:
            return False
        with slot.lock:
            if slot.gen != gen or not slot.registered or not slot.in_handler:
                return False
            slot.in_handler = False
            self._rearm(slot)
        return True

    def unregister(self, idx: int, gen: int | None = None) -> bool:
        """Stop watching the fd of idx (the fd is left open)."""
        return self._unregister(idx, gen, close=False)

    def unregister_close(self, idx: int, gen: int | None = None) -> bool:
        """Stop watching and close the fd; deferred while a handler runs on it."""
        return self._unregister(idx, gen, close=True)

    def dispatch(self) -> bool:
        """Start the event threads and return; False if they already run."""
        with self._threads_lock:
            if self._closed:
                raise PoolClosedError("event pool is destroyed")
            if self._started:
                return False
            self._started = True
            self._start_threads()
        return True

    def destroy(self) -> None:
        """Stop and join every event thread, release the kernel objects.  Idempotent.

        Registered fds are not closed: they belong to whoever registered them.
        """
        with self._threads_lock:
            if self._closed:
                return
            if threading.current_thread() in self._workers:
                raise RuntimeError("destroy() called from an event thread would join itself")
            self._closed = True
            self._signal_stop()
            workers = self._workers + self._retired
        for worker in workers:
            worker.join()
        with self._threads_lock:
            self._workers.clear()
            self._retired.clear()
        self._close_kernel()

    @property
    def live_threads(self) -> int:
        """Event threads alive right now (after a shrink, falls to `threads` soon)."""
        with self._threads_lock:
            return sum(1 for worker in self._workers if worker.is_alive())

    @property
    def destroyed(self) -> bool:
        return self._closed

    def interest(self, idx: int) -> tuple[bool, bool]:
        """The stored (poll_in, poll_out) of a registered idx."""
        slot = self._slots.get(idx)
        with slot.lock:
            if not slot.registered:
                raise UnknownSlotError(f"nothing is registered at event slot {idx}")
            return bool(slot.events & IN_BITS), bool(slot.events & OUT_BITS)

    def registered_count(self) -> int:
        with self._fd_lock:
            return len(self._fds)

    # ---- shared machinery ---------------------------------------------------------

    def _spawn(self, target, name: str) -> None:
        """Start one event thread (threads lock held)."""
        worker = threading.Thread(target=target, name=name, daemon=True)
        self._workers.append(worker)
        worker.start()

    def _forget_worker(self, worker: threading.Thread) -> None:
        """A retiring thread leaves the list (threads lock held)."""
        if worker in self._workers:
            self._workers.remove(worker)
            self._retired.append(worker)

    @staticmethod
    def _owns(slot, idx: int, gen: int | None) -> bool:
        if not slot.registered:
            if gen is not None:
                return False
            raise UnknownSlotError(f"nothing is registered at event slot {idx}")
        return gen is None or gen == slot.gen

    def _rearm(self, slot) -> None:
        """Re-arm on the handler paths, where a failure can only be logged."""
        if self._closed:
            return
        try:
            self._kernel_arm(slot)
        except OSError as error:
            self._log.warning("re-arming fd %d (slot %d gen %d) failed: %s",
                              slot.fd, slot.idx, slot.gen, error)

    def _unregister(self, idx: int, gen: int | None, close: bool) -> bool:
        slot = self._slots.get(idx)
        with slot.lock:
            if not self._owns(slot, idx, gen):
                return False
            fd = slot.fd
            if not self._closed:
                try:
                    self._kernel_remove(slot)
                except OSError as error:        # fd already closed behind our back
                    self._log.debug("removing fd %d (slot %d) from %s: %s",
                                    fd, idx, self.backend_name, error)
            with self._fd_lock:
                if self._fds.get(fd) == idx:
                    del self._fds[fd]
            if slot.running:
                slot.dead = True
                slot.do_close = close
            else:
                if close:
                    self._close_fd(fd)
                self._slots.free(slot)
        return True

    def _close_fd(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError as error:
            self._log.warning("closing fd %d: %s", fd, error)

    def _dispatch_event(self, idx: int, gen: int, revents: int) -> None:
        """Run the handler for one kernel event (called by the event threads)."""
        slot = self._slots.lookup(idx)
        if slot is None:
            return
        lock = slot.lock
        with lock:
            if slot.gen != gen or slot.fd < 0 or slot.dead or slot.in_handler:
                return          # stale, or a handler already owns this arming
            slot.in_handler = True
            slot.running += 1
            token = slot.token = slot.token + 1
            fd, handler = slot.fd, slot.handler
            data = slot.data
        try:
            handler(fd, idx, gen, data, (revents & IN_BITS) != 0,
                    (revents & OUT_BITS) != 0, (revents & ERR_BITS) != 0)
        except Exception:
            self._log.exception("handler %r of fd %d (slot %d gen %d) raised; fd re-armed",
                                handler, fd, idx, gen)
        finally:
            with lock:
                slot.running -= 1
                if slot.dead:
                    self._free_if_idle(slot)
                elif slot.in_handler and slot.token == token:
                    slot.in_handler = False
                    self._rearm(slot)

    def _free_if_idle(self, slot) -> None:
        """A dead slot whose last handler returned is closed and freed (slot.lock held)."""
        if slot.running == 0:
            if slot.do_close:
                self._close_fd(slot.fd)
            self._slots.free(slot)
