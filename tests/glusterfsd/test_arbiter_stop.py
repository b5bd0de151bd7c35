"""Stopping the prefork daemon under load: no call the server read goes unanswered.

Each client thread sends CREATEs of new names, one at a time, until its
connection ends.  A CREATE that was answered must have made its file; one
that failed (the connection ended first) must not have: the server never
read it.  A file that exists for a CREATE the client saw fail would be a
call accepted and then dropped -- exactly what a graceful stop must not do.
"""
from __future__ import annotations

import signal
import threading
import time

import pytest

from daemon_helpers import alive
from prefork_helpers import N, PinnedClient, PreforkDaemon, mount_root, sattr3, wait_until

THREADS = 4


class CreateLoop(threading.Thread):
    def __init__(self, port: int, root: bytes, tag: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.client = PinnedClient(port)
        self.root, self.tag, self.stop_flag = root, tag, stop
        self.answered: list[str] = []
        self.failed: str | None = None
        self.not_ok: list = []

    def run(self) -> None:
        for number in range(100000):
            if self.stop_flag.is_set():
                return
            name = f"t{self.tag}-{number}"
            try:
                status, _ = self.client.nfs("CREATE", where=N.diropargs3(
                    dir=N.nfs_fh3(self.root), name=name.encode()), how=(N.UNCHECKED, sattr3()))
            except (OSError, ConnectionError):
                self.failed = name
                return
            if status != N.NFS3_OK:
                self.not_ok.append((name, status))
            self.answered.append(name)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_graceful_stop_under_load_answers_every_call_it_read(tmp_path, sig):
    srv = PreforkDaemon(tmp_path, workers=2, graceful_timeout=10)
    try:
        assert srv.start().returncode == 0
        nfs_port, mount_port = srv.ports()
        root = mount_root(mount_port)
        stop = threading.Event()
        loops = [CreateLoop(nfs_port, root, tag, stop) for tag in range(THREADS)]
        for loop in loops:
            loop.start()
        assert wait_until(lambda: all(len(loop.answered) > 20 for loop in loops), 20)
        started = time.monotonic()
        srv.send(sig)
        assert wait_until(lambda: not alive(srv.master), 15)
        took = time.monotonic() - started
        stop.set()
        for loop in loops:
            loop.join(10)
            loop.client.close()
        assert took < srv.graceful_timeout
        assert "shutting down gracefully" in srv.log_text()
        assert "calls still in flight" not in srv.log_text()
        on_disk = {p.name for p in srv.brick.iterdir() if p.name.startswith("t")}
        for loop in loops:
            assert loop.not_ok == []
            assert set(loop.answered) <= on_disk            # every answer was real
            assert loop.failed is None or loop.failed not in on_disk, loop.failed
        assert sum(len(loop.answered) for loop in loops) == len(on_disk)
        assert not srv.pidfile.exists()
    finally:
        srv.stop(signal.SIGKILL)


def test_sigquit_stops_at_once(tmp_path):
    srv = PreforkDaemon(tmp_path, workers=2, graceful_timeout=30)
    try:
        assert srv.start().returncode == 0
        workers = srv.worker_pids()
        started = time.monotonic()
        srv.send(signal.SIGQUIT)
        assert wait_until(lambda: not alive(srv.master), 10)
        assert time.monotonic() - started < 5
        assert not any(alive(pid) for pid in workers)
        assert "shutting down now" in srv.log_text() and not srv.pidfile.exists()
    finally:
        srv.stop(signal.SIGKILL)
