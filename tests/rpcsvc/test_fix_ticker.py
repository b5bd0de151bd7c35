"""The service's housekeeping thread (rpcsvc.stage.Ticker): idle sweep and accept back-off."""
from __future__ import annotations

import threading
import time

import pytest

from rpcsvc.stage import Ticker


def test_call_later_runs_once_in_time_order():
    ticker = Ticker("t")
    seen, done = [], threading.Event()
    try:
        ticker.call_later(0.10, lambda: (seen.append("late"), done.set()))
        ticker.call_later(0.02, lambda: seen.append("early"))
        assert done.wait(3)
        time.sleep(0.1)
        assert seen == ["early", "late"]
    finally:
        ticker.stop()


def test_call_every_repeats_and_survives_a_failing_callback(rpc_log):
    ticker = Ticker("t")
    ticks = []

    def tick():
        ticks.append(time.monotonic())
        if len(ticks) == 2:
            raise RuntimeError("one bad tick")
    try:
        ticker.call_every(0.02, tick)
        deadline = time.monotonic() + 3
        while len(ticks) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(ticks) >= 5
    finally:
        ticker.stop()
    assert any("housekeeping callback" in r.getMessage() for r in rpc_log)
    with pytest.raises(ValueError):
        Ticker("t").call_every(0, tick)


def test_stop_ends_the_thread_and_drops_what_was_scheduled():
    ticker = Ticker("t")
    ran = []
    assert ticker.call_later(0.2, lambda: ran.append(1))
    ticker.stop()
    assert not any(t.name == "t-ticker" for t in threading.enumerate())
    assert ticker.call_later(0, lambda: ran.append(2)) is False
    time.sleep(0.3)
    assert ran == []


def test_no_thread_until_something_is_scheduled():
    ticker = Ticker("lazy")
    assert not any(t.name == "lazy-ticker" for t in threading.enumerate())
    ticker.stop()
