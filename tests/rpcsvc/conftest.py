"""Fixtures for the rpcsvc tests: an event pool and services built on it."""
from __future__ import annotations

import threading

import pytest

from rpc_testkit import TestActors, nfs_program
from rpcsvc.svc import RpcService
from log_capture import capture_log


class Served:
    """A running service with the test NFS program on ephemeral TCP and UDP ports."""

    def __init__(self, svc, actors, tcp_port, udp_port):
        self.svc = svc
        self.actors = actors
        self.tcp_port = tcp_port
        self.udp_port = udp_port


@pytest.fixture
def serve(pool):
    """serve(program_kw={}, **service_kw) -> Served; everything is closed afterwards."""
    made = []

    def make(program_kw=None, **service_kw):
        actors = TestActors()
        service_kw.setdefault("stage_threads", 4)
        svc = RpcService(pool, **service_kw)
        svc.add_program(nfs_program(actors, **(program_kw or {})))
        tcp = svc.listen("127.0.0.1", 0, "tcp")
        udp = svc.listen("127.0.0.1", 0, "udp")
        served = Served(svc, actors, tcp.getsockname()[1], udp.getsockname()[1])
        made.append(served)
        return served

    yield make
    for served in made:
        served.actors.gate.set()
        served.svc.close()


@pytest.fixture
def rpc_log():
    """Records of the 'glusterfs.rpcsvc' logger during the test."""
    yield from capture_log("rpcsvc")


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Every test must end the threads it started (stage, event, client)."""
    before = set(threading.enumerate())
    yield
    import time
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads left behind: {extra}")
