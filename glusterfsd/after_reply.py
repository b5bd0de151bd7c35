"""Work a call leaves for after its reply, run by the thread that served it.

Why: some work is worth doing between two calls of a client that waits for
each reply, while the client reads the last one: the next batch of a
directory listing (`performance/readdir-ahead`).  Done in a thread of its
own, it fought the serving threads for Python's GIL (a 50 000-entry `ls -l`
went from ~1 200 to ~25 000 context switches in the worker and used more
CPU than without it).  Done here, it runs on the thread that served the
call, after the reply was handed to the kernel and before that thread reads
the connection's next call: no other thread waits for it, and the client's
next call finds it done.

The threads that serve calls (the transports' event handlers and the stage
threads, see rpcsvc) take `pending_here()` before they run a call and
`run(pending)` once its reply is out.  On any other thread `defer` refuses
(returns False), so nothing is queued that no one would run.
"""
from __future__ import annotations

import threading

from glusterfsd import log as gflog

logger = gflog.get_logger("after-reply")

MAX_RUNS = 16       # work items one `run` does at most (work may defer more work)

_local = threading.local()


def pending_here() -> list:
    """This thread's deferred work (made on first use): the caller will `run` it."""
    try:
        return _local.pending
    except AttributeError:
        _local.pending = pending = []
        return pending


def defer(fn) -> bool:
    """Have `fn()` run on this thread once the reply of the call it serves is out;
    False (not queued) on a thread that serves no calls."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        return False
    pending.append(fn)
    return True


def run(pending: list) -> None:
    """Run the deferred work, oldest first; an item that raises is logged and the
    rest still run.  Whatever is left after MAX_RUNS is dropped: deferred work is
    what may be done, never what must be."""
    for _ in range(MAX_RUNS):
        if not pending:
            return
        fn = pending.pop(0)
        try:
            fn()
        except Exception:
            logger.error("work deferred after a reply failed: %r", fn, exc_info=True)
    pending.clear()
