"""The event pool: threads that wait on fds and call their handlers.

GlusterFS (`libglusterfs/src/event.c`) builds one pool per process from an
ops table and prefers epoll, falling back to poll when epoll cannot be set up;
`new_pool` does the same.  See `event.pool` for the handler contract.
"""
from __future__ import annotations

import select

from event.errors import EventPoolError, PoolClosedError, PoolFullError, UnknownSlotError
from event.pool import MAX_THREADS, EventPool
from glusterfsd import log as gflog

BACKENDS = ("epoll", "poll")

__all__ = ["EventPool", "new_pool", "BACKENDS", "MAX_THREADS", "EventPoolError",
           "PoolClosedError", "PoolFullError", "UnknownSlotError"]


def new_pool(slots: int = 1024, threads: int = 2, backend: str | None = None) -> EventPool:
    """A new, not yet dispatched pool.  backend: None (epoll if it works, else poll),
    "epoll" or "poll".  Create it in the process that will use it (after fork)."""
    from event.epoll import EpollEventPool
    from event.poll import PollEventPool

    if backend is None:
        if hasattr(select, "epoll"):
            try:
                return EpollEventPool(slots, threads)
            except OSError as error:
                gflog.get_logger("epoll").warning(
                    "epoll unavailable (%s); falling back to poll", error)
        return PollEventPool(slots, threads)
    if backend == "epoll":
        return EpollEventPool(slots, threads)
    if backend == "poll":
        return PollEventPool(slots, threads)
    raise ValueError(f"unknown event backend {backend!r}; expected one of {BACKENDS} or None")
