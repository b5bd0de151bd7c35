"""Stage threads: the worker pool that runs actors off the event threads.

The event threads only reassemble records and decode call headers; anything
that may block (a fop down the graph, a disk read) runs here, so one slow
call never stops a socket from being polled.  The queue is bounded: if every
worker is busy and the queue is full, the event thread waits in `submit`,
which is back-pressure on all sockets, not unbounded memory.  (Per
connection, the outstanding-RPC throttle normally stops reading long before.)
"""
from __future__ import annotations

import queue
import threading

from glusterfsd import log as gflog

logger = gflog.get_logger("rpcsvc")

_STOP = object()


class StagePool:
    def __init__(self, threads: int = 4, queue_size: int = 4096, name: str = "rpcsvc"):
        if threads < 1:
            raise ValueError("a stage needs at least one thread")
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._threads = []
        self._stopped = False
        for n in range(threads):
            thread = threading.Thread(target=self._run, name=f"{name}-stage{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, fn, *args) -> None:
        """Queue `fn(*args)`; blocks while the queue is full."""
        if self._stopped:
            raise RuntimeError("stage pool stopped")
        self._queue.put((fn, args))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
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
                self._queue.put(_STOP)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        return not any(t.is_alive() for t in self._threads if t is not threading.current_thread())
