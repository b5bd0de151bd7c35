"""The dispatch's in-place slot lookup and the epoll backend's re-arm (mask cache, failures)."""
from __future__ import annotations

import errno
import os
import threading

import pytest

from event.pool import POLLIN
from event_helpers import WAIT, Recorder, wait_until


def test_events_for_slots_never_handed_out_are_dropped(pool):
    """The dispatch looks slots up in place: any idx the kernel could not have
    been given (negative, past the tables, in a table never allocated) is ignored."""
    for idx in (-1, 5000, (1 << 20) - 1, 1 << 21):
        pool._dispatch_event(idx, 0, POLLIN)        # nothing raises, nothing runs
    assert pool.registered_count() == 0


def test_epoll_rearm_writes_the_mask_only_when_the_interest_changed(pool, pairs):
    if pool.backend_name != "epoll":
        pytest.skip("the cached mask is the epoll backend's")
    from event.epoll import _ARM_BITS
    from event.pool import IN_BITS, OUT_BITS
    a, _ = pairs()
    idx, gen = pool.register(a.fileno(), Recorder(), None, True, False)
    slot = pool._slots.get(idx)
    event_struct = slot.kernel[0]
    assert slot.armed == event_struct.events == IN_BITS | _ARM_BITS
    pool.select_on(idx, -1, 1, gen)
    assert slot.armed == event_struct.events == IN_BITS | OUT_BITS | _ARM_BITS
    event_struct.events = 0                     # a re-arm with the same interest ...
    pool._kernel_arm(slot)
    assert event_struct.events == 0             # ... leaves the struct alone
    pool.select_on(idx, -1, 0, gen)
    assert slot.armed == event_struct.events == IN_BITS | _ARM_BITS
    pool.unregister(idx, gen)


def test_epoll_rearm_of_an_fd_closed_behind_the_pool_is_logged(pool, pairs, captured_log):
    if pool.backend_name != "epoll":
        pytest.skip("epoll_ctl is the epoll backend's")
    a, b = pairs()
    fd = a.detach()                             # the handler will close it itself
    closed = threading.Event()

    def close_own_fd(call):
        os.close(fd)
        closed.set()

    idx, gen = pool.register(fd, Recorder(close_own_fd), None, True, False)
    slot = pool._slots.get(idx)
    pool.dispatch()
    b.send(b"x")
    assert closed.wait(WAIT)
    assert wait_until(lambda: any("re-arming fd" in r.getMessage() for r in captured_log))
    with pytest.raises(OSError) as failure:
        pool._kernel_arm(slot)
    assert failure.value.errno in (errno.EBADF, errno.ENOENT)
    assert pool.live_threads == pool.threads
    pool.unregister(idx, gen)                   # removing it fails quietly (logged)
