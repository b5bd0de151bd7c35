"""One suite for both event backends: the handler contract must not depend on
whether epoll or poll sits underneath (GlusterFS keeps the two behind one ops
table for the same reason)."""
from __future__ import annotations

import errno
import itertools
import logging
import os
import select
import threading
import time

import pytest

import event
from event import EventPool, new_pool
from event.errors import PoolClosedError, UnknownSlotError
from event.pool import MAX_THREADS, POLLIN
from event_helpers import BACKENDS, QUIET, WAIT, Recorder, event_threads, wait_until


def test_read_event_on_socketpair(pool, pairs):
    a, b = pairs()
    handler = Recorder()
    marker = object()
    idx, gen = pool.register(a.fileno(), handler, marker, True, False)
    pool.dispatch()
    b.send(b"hello")
    assert wait_until(lambda: handler.count() >= 1)
    call = handler.calls[0]
    assert (call["fd"], call["idx"], call["gen"]) == (a.fileno(), idx, gen)
    assert call["data"] is marker
    assert (call["poll_in"], call["poll_out"], call["poll_err"]) == (True, False, False)
    assert call["payload"] == b"hello"
    assert pool.interest(idx) == (True, False)


def test_write_readiness_via_select_on_from_another_thread(pool, pairs):
    a, _ = pairs()

    def on_call(call):
        if call["poll_out"]:
            pool.select_on(call["idx"], -1, 0)      # enough: switch it off from inside

    handler = Recorder(on_call)
    idx, _gen = pool.register(a.fileno(), handler, None, True, False)
    pool.dispatch()
    other = threading.Thread(target=pool.select_on, args=(idx, -1, 1))
    other.start()
    other.join()
    assert wait_until(lambda: handler.count() >= 1)
    time.sleep(QUIET)
    assert handler.count() == 1, "poll_out stayed on after select_on(-1, 0)"
    assert handler.calls[0]["poll_out"] is True
    assert handler.calls[0]["poll_in"] is False
    assert pool.interest(idx) == (True, False)


def test_one_shot_never_runs_one_fd_handler_concurrently(pool, pairs):
    a, b = pairs()
    state = {"active": 0, "max": 0}
    lock = threading.Lock()
    entered = threading.Event()

    def on_call(call):
        with lock:
            state["active"] += 1
            state["max"] = max(state["max"], state["active"])
        entered.set()
        time.sleep(0.05)
        with lock:
            state["active"] -= 1

    handler = Recorder(on_call)
    pool.register(a.fileno(), handler, None, True, False)
    pool.dispatch()
    assert wait_until(lambda: pool.live_threads == pool.threads)
    b.send(b"1")
    assert entered.wait(WAIT)
    for chunk in (b"2", b"3", b"4"):        # arrive while the handler sleeps
        b.send(chunk)
        time.sleep(0.01)
    assert wait_until(lambda: handler.payload() == b"1234")
    assert wait_until(lambda: state["active"] == 0)
    assert state["max"] == 1
    assert handler.count() >= 2


def test_select_on_while_handler_runs_is_applied_by_the_rearm(pool, pairs):
    a, b = pairs()
    release = threading.Event()
    overlap = []
    busy = threading.Lock()

    def on_call(call):
        if not busy.acquire(blocking=False):
            overlap.append(call)
            return
        try:
            if call["poll_in"]:
                release.wait(WAIT)
            else:
                pool.select_on(call["idx"], -1, 0)
        finally:
            busy.release()

    handler = Recorder(on_call)
    idx, _ = pool.register(a.fileno(), handler, None, True, False)
    pool.dispatch()
    b.send(b"x")
    assert wait_until(lambda: handler.count() == 1)
    pool.select_on(idx, -1, 1)              # socket is writable: an early MOD would fire now
    time.sleep(QUIET)
    assert handler.count() == 1 and not overlap
    assert pool.interest(idx) == (True, True)
    release.set()
    assert wait_until(lambda: any(c["poll_out"] for c in handler.calls))
    assert not overlap


def test_handled_early_lets_another_event_proceed(pool, pairs):
    a, b = pairs()
    can_overlap = pool.threads > 1          # poll has one thread: it can only run them in turn
    numbers = itertools.count()
    first_rearmed = threading.Event()
    second_entered = threading.Event()
    results = {}

    def handler(fd, idx, gen, data, poll_in, poll_out, poll_err):
        number = next(numbers)
        os.read(fd, 1)
        if number == 0:
            results["handled"] = pool.handled(idx, gen)
            results["handled_again"] = pool.handled(idx, gen)
            first_rearmed.set()
            if can_overlap:
                results["overlapped"] = second_entered.wait(WAIT)
            results["first_done"] = True
        else:
            results["second_saw_first_done"] = results.get("first_done", False)
            second_entered.set()

    pool.register(a.fileno(), handler, None, True, False)
    pool.dispatch()
    b.send(b"1")
    assert first_rearmed.wait(WAIT)
    b.send(b"2")
    assert second_entered.wait(WAIT)
    assert wait_until(lambda: results.get("first_done"))
    assert results["handled"] is True
    assert results["handled_again"] is False        # already re-armed
    if can_overlap:
        assert results["overlapped"] is True
        assert results["second_saw_first_done"] is False
    else:
        assert results["second_saw_first_done"] is True


def test_unregister_stops_events_and_leaves_fd_open(pool, pairs):
    a, b = pairs()
    handler = Recorder()
    idx, gen = pool.register(a.fileno(), handler, None, True, False)
    pool.dispatch()
    b.send(b"1")
    assert wait_until(lambda: handler.count() == 1)
    assert pool.unregister(idx) is True
    b.send(b"2")
    time.sleep(QUIET)
    assert handler.count() == 1
    assert pool.registered_count() == 0
    os.fstat(a.fileno())                    # still open
    assert a.recv(10) == b"2"
    with pytest.raises(UnknownSlotError):
        pool.unregister(idx)
    assert pool.unregister(idx, gen) is False   # with gen: a stale slot is just ignored
    with pytest.raises(UnknownSlotError):
        pool.select_on(idx, 1, 1)
    with pytest.raises(UnknownSlotError):
        pool.interest(idx)


def fd_is_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as error:
        return error.errno == errno.EBADF
    return False


def test_unregister_close_closes_the_fd(pool, pairs):
    a, _ = pairs()
    fd = a.detach()                         # the pool now owns it
    idx, _ = pool.register(fd, Recorder(), None, True, False)
    pool.dispatch()
    assert pool.unregister_close(idx) is True
    assert fd_is_closed(fd)


def test_unregister_close_from_inside_the_handler_closes_after_return(pool, pairs):
    a, b = pairs()
    fd = a.detach()
    seen = {}

    def on_call(call):
        seen["returned"] = pool.unregister_close(call["idx"])
        seen["open_inside"] = not fd_is_closed(fd)

    handler = Recorder(on_call)
    pool.register(fd, handler, None, True, False)
    pool.dispatch()
    b.send(b"bye")
    assert wait_until(lambda: "open_inside" in seen)
    assert seen == {"returned": True, "open_inside": True}
    assert wait_until(lambda: fd_is_closed(fd))
    assert handler.count() == 1
    assert pool.registered_count() == 0


def test_unregister_close_from_another_thread_waits_for_the_handler(pool, pairs):
    a, b = pairs()
    fd = a.detach()
    inside = threading.Event()
    release = threading.Event()

    def on_call(call):
        inside.set()
        release.wait(WAIT)

    idx, _ = pool.register(fd, Recorder(on_call), None, True, False)
    pool.dispatch()
    b.send(b"x")
    assert inside.wait(WAIT)
    assert pool.unregister_close(idx) is True
    assert not fd_is_closed(fd)             # the handler still uses it
    release.set()
    assert wait_until(lambda: fd_is_closed(fd))


def test_stale_gen_is_ignored_after_slot_reuse(pool, pairs):
    a, b = pairs()
    c, d = pairs()
    old = Recorder()
    idx, old_gen = pool.register(a.fileno(), old, None, True, False)
    pool.unregister(idx)
    new = Recorder()
    new_idx, new_gen = pool.register(c.fileno(), new, None, True, False)
    assert new_idx == idx and new_gen != old_gen
    pool._dispatch_event(idx, old_gen, POLLIN)      # an event fetched for the old owner
    assert new.count() == 0 and old.count() == 0
    assert pool.handled(idx, old_gen) is False
    assert pool.select_on(idx, 0, 0, gen=old_gen) is False
    assert pool.unregister(idx, gen=old_gen) is False
    assert pool.interest(idx) == (True, False)      # untouched by the stale calls
    pool.dispatch()
    d.send(b"new")
    b.send(b"old")
    assert wait_until(lambda: new.count() == 1)
    time.sleep(QUIET)
    assert new.calls[0]["gen"] == new_gen and new.calls[0]["payload"] == b"new"
    assert old.count() == 0


def test_poll_err_on_peer_close(pool, pairs):
    a, b = pairs()

    def on_call(call):
        if call["poll_err"]:
            pool.unregister(call["idx"])

    handler = Recorder(on_call)
    pool.register(a.fileno(), handler, None, True, False)
    pool.dispatch()
    b.close()
    assert wait_until(lambda: handler.count() >= 1)
    assert handler.calls[-1]["poll_err"] is True
    assert wait_until(lambda: pool.registered_count() == 0)     # the handler unregistered


def test_raising_handler_does_not_kill_the_pool(pool, pairs, captured_log):
    a, b = pairs()

    def on_call(call):
        if call["payload"] == b"bad":
            raise RuntimeError("boom")

    handler = Recorder(on_call)
    pool.register(a.fileno(), handler, None, True, False)
    pool.dispatch()
    b.send(b"bad")
    assert wait_until(lambda: handler.count() == 1)
    time.sleep(0.02)
    b.send(b"good")
    assert wait_until(lambda: handler.count() == 2)
    assert handler.calls[1]["payload"] == b"good"
    assert pool.live_threads == pool.threads
    errors = [r for r in captured_log if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info[0] is RuntimeError
    assert "boom" in logging.Formatter().formatException(errors[0].exc_info)


@pytest.mark.parametrize("backend", BACKENDS)
def test_destroy_joins_all_threads_and_is_idempotent(backend, pairs):
    baseline = threading.active_count()
    pool = new_pool(slots=8, threads=3, backend=backend)
    a, b = pairs()
    handler = Recorder()
    idx, _ = pool.register(a.fileno(), handler, None, True, False)
    pool.dispatch()
    assert pool.dispatch() is False                 # already running
    assert threading.active_count() == baseline + pool.threads
    b.send(b"x")
    assert wait_until(lambda: handler.count() == 1)
    pool.destroy()
    assert threading.active_count() == baseline
    assert pool.destroyed
    pool.destroy()                                  # idempotent
    with pytest.raises(PoolClosedError):
        pool.register(b.fileno(), handler, None, True, False)
    with pytest.raises(PoolClosedError):
        pool.select_on(idx, 1, 1)
    with pytest.raises(PoolClosedError):
        pool.dispatch()
    with pytest.raises(PoolClosedError):
        pool.reconfigure_threads(2)
    fd = a.detach()
    assert pool.unregister_close(idx) is True       # teardown paths still work
    assert fd_is_closed(fd)


@pytest.mark.parametrize("backend", BACKENDS)
def test_destroy_from_inside_a_handler_is_refused(backend, pairs):
    pool = new_pool(slots=8, threads=2, backend=backend)
    a, b = pairs()
    seen = []

    def on_call(call):
        try:
            pool.destroy()
        except RuntimeError as error:
            seen.append(error)

    pool.register(a.fileno(), Recorder(on_call), None, True, False)
    pool.dispatch()
    b.send(b"x")
    assert wait_until(lambda: seen)
    assert "join itself" in str(seen[0])
    pool.destroy()
    assert not event_threads()


def test_many_fds_all_delivered(pool, pairs):
    count = 200
    received = {}
    lock = threading.Lock()

    def handler(fd, idx, gen, data, poll_in, poll_out, poll_err):
        with lock:
            received[data] = received.get(data, b"") + os.read(fd, 64)

    peers = []
    for number in range(count):
        a, b = pairs()
        pool.register(a.fileno(), handler, number, True, False)
        peers.append(b)
    assert pool.registered_count() == count
    pool.dispatch()
    for number, peer in enumerate(peers):
        peer.send(b"%d" % number)
    assert wait_until(lambda: len(received) == count)
    assert received == {number: b"%d" % number for number in range(count)}


def test_select_on_minus_one_leaves_a_direction_as_is(pool, pairs):
    a, b = pairs()

    def on_call(call):
        if call["poll_out"]:
            pool.select_on(call["idx"], 1, 0)
        elif call["poll_in"]:
            pool.select_on(call["idx"], 0, -1)     # we do not read: stop the level trigger

    handler = Recorder(on_call, read=False)
    idx, _ = pool.register(a.fileno(), handler, None, True, False)
    assert pool.select_on(idx, -1, -1) is True
    assert pool.interest(idx) == (True, False)
    assert pool.select_on(idx, 0, -1) is True
    assert pool.interest(idx) == (False, False)
    pool.dispatch()
    b.send(b"pending")
    time.sleep(QUIET)
    assert handler.count() == 0                     # reading is off, writing untouched
    pool.select_on(idx, -1, 1)
    assert wait_until(lambda: handler.count() >= 1)
    first = handler.calls[0]
    assert (first["poll_in"], first["poll_out"]) == (False, True)
    assert wait_until(lambda: any(c["poll_in"] for c in handler.calls))
    assert wait_until(lambda: pool.interest(idx) == (False, False))
    assert a.recv(64) == b"pending"


@pytest.mark.parametrize("backend", BACKENDS)
def test_reconfigure_threads(backend, pairs):
    baseline = threading.active_count()
    pool = new_pool(slots=8, threads=2, backend=backend)
    a, b = pairs()
    handler = Recorder()
    pool.register(a.fileno(), handler, None, True, False)
    try:
        expected_before = 3 if backend == "epoll" else 1
        assert pool.reconfigure_threads(3) == expected_before      # before dispatch
        pool.dispatch()
        assert wait_until(lambda: pool.live_threads == expected_before)
        grown = 5 if backend == "epoll" else 1
        assert pool.reconfigure_threads(5) == grown
        assert pool.threads == grown
        assert wait_until(lambda: pool.live_threads == grown)
        b.send(b"a")
        assert wait_until(lambda: handler.payload() == b"a")
        assert pool.reconfigure_threads(1) == 1
        assert pool.threads == 1
        assert wait_until(lambda: pool.live_threads == 1)
        b.send(b"b")
        assert wait_until(lambda: handler.payload() == b"ab")
        if backend == "epoll":                  # shrink then grow before the retirements run
            pool.reconfigure_threads(4)
            pool.reconfigure_threads(2)
            pool.reconfigure_threads(3)
            assert wait_until(lambda: pool.live_threads == 3)
            time.sleep(0.05)
            assert pool.live_threads == 3
        for bad in (0, -1, MAX_THREADS + 1):
            with pytest.raises(ValueError):
                pool.reconfigure_threads(bad)
        with pytest.raises(TypeError):
            pool.reconfigure_threads("2")
    finally:
        pool.destroy()
    assert threading.active_count() == baseline


def test_bad_registrations_get_named_errors(pool, pairs):
    a, _ = pairs()
    handler = Recorder()
    with pytest.raises(ValueError):
        pool.register(-1, handler, None, True, False)
    with pytest.raises(TypeError):
        pool.register("3", handler, None, True, False)
    with pytest.raises(TypeError):
        pool.register(a.fileno(), "not callable", None, True, False)
    closed_r, closed_w = os.pipe()
    os.close(closed_r)
    os.close(closed_w)
    with pytest.raises(OSError) as raised:
        pool.register(closed_r, handler, None, True, False)
    assert raised.value.errno == errno.EBADF
    idx, gen = pool.register(a.fileno(), handler, None, True, False)
    with pytest.raises(FileExistsError):
        pool.register(a.fileno(), handler, None, True, False)
    assert pool.registered_count() == 1             # failures left no slot behind
    for bad in (2, -2, "1", None):
        with pytest.raises(ValueError):
            pool.select_on(idx, bad, -1)
        with pytest.raises(ValueError):
            pool.select_on(idx, -1, bad)
    with pytest.raises(UnknownSlotError):
        pool.select_on(63, 1, 1)                    # in a table, never registered
    with pytest.raises(UnknownSlotError):
        pool.select_on(5_000_000, 1, 1)             # past the table
    with pytest.raises(TypeError):
        pool.unregister("0")
    assert pool.handled(5_000_000, 0) is False
    assert pool.handled(idx, gen) is False          # not in a handler: nothing to re-arm


def test_new_pool_choices(monkeypatch):
    with pytest.raises(ValueError):
        new_pool(backend="kqueue")
    with pytest.raises(ValueError):
        new_pool(slots=0)
    with pytest.raises(ValueError):
        new_pool(threads=0)
    with pytest.raises(ValueError):
        new_pool(threads=MAX_THREADS + 1)
    with pytest.raises(TypeError):
        new_pool(slots="many")
    default = new_pool(threads=2)
    try:
        assert isinstance(default, EventPool)
        expected = "epoll" if hasattr(select, "epoll") else "poll"
        assert default.backend_name == expected
        assert default.threads == (2 if expected == "epoll" else 1)
    finally:
        default.destroy()
    poll_pool = new_pool(threads=4, backend="poll")
    try:
        assert poll_pool.backend_name == "poll" and poll_pool.threads == 1
    finally:
        poll_pool.destroy()
    monkeypatch.delattr(select, "epoll", raising=False)
    fallback = new_pool()
    try:
        assert fallback.backend_name == "poll"
    finally:
        fallback.destroy()
    with pytest.raises(OSError) as raised:
        new_pool(backend="epoll")
    assert raised.value.errno == errno.ENOSYS


def test_package_exports():
    assert event.new_pool is new_pool
    assert issubclass(event.UnknownSlotError, LookupError)
    assert issubclass(event.PoolClosedError, event.EventPoolError)
