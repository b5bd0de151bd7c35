"""Fixtures of the event-pool tests: a pool of each backend, socket pairs, the pool's log."""
from __future__ import annotations

import logging
import socket

import pytest

from event import new_pool
from event_helpers import BACKENDS, event_threads


@pytest.fixture(params=BACKENDS)
def pool(request):
    made = new_pool(slots=64, threads=2, backend=request.param)
    yield made
    made.destroy()
    assert not event_threads(), "event threads left behind"


@pytest.fixture
def pairs():
    """socketpair factory; every socket still owned is closed after the test."""
    made: list[socket.socket] = []

    def make():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        made.extend((a, b))
        return a, b

    yield make
    for sock in made:
        sock.close()


@pytest.fixture
def captured_log(pool):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger(f"glusterfs.{pool.backend_name}")
    keep = Keep(level=logging.DEBUG)
    logger.addHandler(keep)
    yield records
    logger.removeHandler(keep)
