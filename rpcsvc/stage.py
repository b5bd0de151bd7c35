"""Stage threads: the worker pool that runs actors off the event threads.

The event threads only reassemble records and decode call headers; anything
that may block (a fop down the graph, a disk read) runs here, so one slow
call never stops a socket from being polled.  The queue is bounded: if every
worker is busy and the queue is full, the event thread waits in `submit`,
which is back-pressure on all sockets, not unbounded memory.  (Per
connection, the outstanding-RPC throttle normally stops reading long before.)

`Ticker` is the service's one housekeeping thread: the idle-connection sweep
and the listener's re-enable after accept() ran out of descriptors.  Those
must not run on an event thread (nothing may sleep there) and are too rare
and too light to take a stage worker from calls.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque

from glusterfsd import log as gflog

logger = gflog.get_logger("rpcsvc")

_STOP = object()


FULL_WAIT = 0.001   # how long submit naps while the queue is over its bound


class StagePool:
    """Worker threads fed by one queue, each woken on its own when work comes.

    Idle workers wait each on a lock of their own, on a stack: `submit`
    wakes the one that went idle last (its stack and caches are the warmest)
    and only that one.  All of them blocked in one `queue.SimpleQueue.get`
    instead: with the default 8 threads one entry op (REMOVE, one call at a
    time from libnfs) made about 18 futex calls, as woken threads raced for
    the GIL and went back to sleep, against 5 with a single stage thread; the
    worker CPU of the hand-off showed in every entry op.  The bound is kept
    by `submit` checking the queue's length: a full queue makes the caller
    nap, the back-pressure a blocking put gave.
    """

    def __init__(self, threads: int = 4, queue_size: int = 4096, name: str = "rpcsvc"):
        if threads < 1:
            raise ValueError("a stage needs at least one thread")
        if queue_size < 1:
            raise ValueError("a stage queue holds at least one item")
        self._work: deque = deque()
        self._idle: list = []           # the wake-up locks of idle workers, last idle on top
        self._mutex = threading.Lock()  # guards _work and _idle together
        self._size = queue_size
        self._threads = []
        self._stopped = False
        for n in range(threads):
            thread = threading.Thread(target=self._run, name=f"{name}-stage{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, fn, *args) -> None:
        """Queue `fn(*args)`; waits while the queue is full."""
        if self._stopped:
            raise RuntimeError("stage pool stopped")
        while len(self._work) >= self._size and not self._stopped:
            time.sleep(FULL_WAIT)
        self._put((fn, args))

    def _put(self, item) -> None:
        with self._mutex:
            self._work.append(item)
            wake = self._idle.pop() if self._idle else None
        if wake is not None:
            wake.release()

    @property
    def pending(self) -> int:
        return len(self._work)

    def _run(self) -> None:
        wake = threading.Lock()
        wake.acquire()                  # held: acquiring it again sleeps until a submit
        work, idle, mutex = self._work, self._idle, self._mutex
        while True:
            with mutex:
                item = work.popleft() if work else None
                if item is None:
                    idle.append(wake)
            if item is None:
                wake.acquire()
                continue
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:  # a work item must never kill its worker
                logger.error("stage work item %r failed", fn, exc_info=True)

    def stop(self, timeout: float = 5.0) -> bool:
        """Finish the queued work, then end the threads; True if all ended in time."""
        if not self._stopped:
            self._stopped = True
            for _ in self._threads:
                self._put(_STOP)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        return not any(t.is_alive() for t in self._threads if t is not threading.current_thread())


class Ticker:
    """Runs short callbacks later or periodically on one lazily started thread.

    Callbacks must be quick and must not block (they run one after another);
    one that raises is logged and, if periodic, stays scheduled.  After
    `stop()` nothing runs and new schedules are ignored.
    """

    def __init__(self, name: str = "rpcsvc"):
        self._name = f"{name}-ticker"
        self._cond = threading.Condition()
        self._heap: list = []               # (when, seq, fn, interval or 0)
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_later(self, delay: float, fn) -> bool:
        """Run `fn()` once, `delay` seconds from now; False if stopped."""
        return self._schedule(delay, fn, 0.0)

    def call_every(self, interval: float, fn) -> bool:
        """Run `fn()` every `interval` seconds (> 0), first after one interval."""
        if interval <= 0:
            raise ValueError("interval must be > 0")
        return self._schedule(interval, fn, interval)

    def _schedule(self, delay: float, fn, interval: float) -> bool:
        with self._cond:
            if self._stopped:
                return False
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq),
                                        fn, interval))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                if self._stopped:
                    return
                when, _, fn, interval = heapq.heappop(self._heap)
                if interval:
                    heapq.heappush(self._heap, (max(when + interval, time.monotonic()),
                                                next(self._seq), fn, interval))
            try:
                fn()
            except Exception:
                logger.error("housekeeping callback %r failed", fn, exc_info=True)

    def stop(self, timeout: float = 5.0) -> None:
        """Drop everything scheduled and end the thread (idempotent)."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
