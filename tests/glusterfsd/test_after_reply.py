"""glusterfsd.after_reply: deferred work runs on the thread that deferred it,
in order, once; a failing item does not stop the rest; a thread that serves
no calls is refused."""
from __future__ import annotations

import logging
import threading

from glusterfsd import after_reply


def in_fresh_thread(fn):
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def test_a_thread_that_serves_no_calls_is_refused():
    assert in_fresh_thread(lambda: after_reply.defer(lambda: None)) is False


def test_deferred_work_runs_in_order_once_on_its_thread():
    def serve():
        pending = after_reply.pending_here()
        assert after_reply.pending_here() is pending      # one list per thread
        ran = []
        assert after_reply.defer(lambda: ran.append(("a", threading.get_ident())))
        assert after_reply.defer(lambda: ran.append(("b", threading.get_ident())))
        after_reply.run(pending)
        after_reply.run(pending)                            # nothing twice
        return ran, threading.get_ident()
    ran, ident = in_fresh_thread(serve)
    assert ran == [("a", ident), ("b", ident)]


def test_a_failing_item_is_logged_and_the_rest_run(caplog):
    def serve():
        pending = after_reply.pending_here()
        ran = []
        after_reply.defer(lambda: 1 / 0)
        after_reply.defer(lambda: ran.append("after"))
        with caplog.at_level(logging.ERROR):
            after_reply.run(pending)
        return ran, list(pending)
    ran, left = in_fresh_thread(serve)
    assert ran == ["after"] and left == []
    assert any("deferred after a reply failed" in r.getMessage() for r in caplog.records)


def test_work_that_defers_more_is_bounded():
    def serve():
        pending = after_reply.pending_here()
        runs = []

        def again():
            runs.append(1)
            after_reply.defer(again)
        after_reply.defer(again)
        after_reply.run(pending)
        return len(runs), list(pending)
    count, left = in_fresh_thread(serve)
    assert count == after_reply.MAX_RUNS and left == []
