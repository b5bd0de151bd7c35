"""One worker's life (glusterfsd.worker), run in a forked child with a stand-in service.

The test plays the master: it holds the other end of the channel, reads what
the worker says (fail / ready / beat / dump) and sends it signals.
"""
from __future__ import annotations

import errno
import os
import select
import signal
import time

import psutil
import pytest

from glusterfsd.channel import Channel
from glusterfsd.worker import EXIT_BOOT_ERROR, Worker, count_calls, set_parent_death_signal


class StandIn:
    """A service that records what the worker asked of it on a pipe."""

    kind = "nfs"

    def __init__(self, fail: str | None = None, healthy: bool = True, boot_seconds: float = 0):
        self.fail, self.healthy, self.boot_seconds = fail, healthy, boot_seconds
        self.read_fd, self.write_fd = os.pipe()

    def boot(self):
        time.sleep(self.boot_seconds)
        if self.fail:
            raise OSError(errno.ENOENT, self.fail)
        self._note("boot")

    def probe(self):
        return self.healthy

    def retire(self, timeout):
        self._note(f"retire {timeout}")
        return True

    def stop(self):
        self._note("stop")

    def calls(self):
        return 7

    def dump(self):
        return [("stand-in", {"answer": 42})]

    def _note(self, what: str) -> None:
        os.write(self.write_fd, what.encode() + b"\n")

    def notes(self) -> list[str]:
        os.set_blocking(self.read_fd, False)
        try:
            return os.read(self.read_fd, 4096).decode().split()
        except BlockingIOError:
            return []


class Forked:
    def __init__(self, service, timeout: float = 2.0, graceful: float = 1.0):
        self.service = service
        self.channel, worker_end = Channel.pair()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                self.channel.close()
                code = Worker(service, worker_end, os.getppid(), 1, 2, 1, timeout,
                              graceful).run()
            finally:
                os._exit(code)
        worker_end.close()
        self.messages: list[dict] = []

    def read_until(self, kind: str, timeout: float = 5.0) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, message in enumerate(self.messages):
                if message.get("t") == kind:
                    return self.messages.pop(i)
            ready, _, _ = select.select([self.channel], [], [], deadline - time.monotonic())
            if ready:
                got = self.channel.receive()
                if got is None:
                    break
                self.messages += got
        for i, message in enumerate(self.messages):
            if message.get("t") == kind:
                return self.messages.pop(i)
        return None

    def wait(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("the worker did not exit")

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.channel.close()


@pytest.fixture
def forked():
    made = []

    def make(service, **kw):
        child = Forked(service, **kw)
        made.append(child)
        return child
    yield make
    for child in made:
        child.kill()


def test_a_worker_that_cannot_boot_says_why_and_exits_with_the_boot_error(forked):
    worker = forked(StandIn(fail="the brick is gone"))
    message = worker.read_until("fail")
    assert message and "the brick is gone" in message["reason"]
    assert worker.wait() == EXIT_BOOT_ERROR


def test_ready_then_heartbeats_then_graceful_retire_on_sigterm(forked):
    service = StandIn()
    worker = forked(service, timeout=2.0, graceful=1.5)
    assert worker.read_until("ready")["pid"] == worker.pid
    assert worker.read_until("beat", 2) and worker.read_until("beat", 2)
    assert "glusterfs: nfs worker 1/2" in " ".join(psutil.Process(worker.pid).cmdline())
    os.kill(worker.pid, signal.SIGINT)          # a terminal's ^C is the master's business
    os.kill(worker.pid, signal.SIGHUP)
    time.sleep(0.2)
    assert psutil.Process(worker.pid).status() != psutil.STATUS_ZOMBIE
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait() == 0
    assert service.notes() == ["boot", "retire", "1.5", "stop"]


def test_no_heartbeat_while_the_threads_do_not_answer(forked):
    worker = forked(StandIn(healthy=False), timeout=2.0)
    assert worker.read_until("ready")
    assert worker.read_until("beat", 1.5) is None
    os.kill(worker.pid, signal.SIGQUIT)          # fast: no retire
    assert worker.wait() == 0
    assert worker.service.notes() == ["boot"]


def test_dump_and_title_requests(forked):
    worker = forked(StandIn())
    assert worker.read_until("ready")
    assert worker.channel.send("dump", id=5)
    reply = worker.read_until("dump")
    assert reply["id"] == 5 and reply["calls"] == 7
    titles = [title for title, _ in reply["sections"]]
    assert titles == ["process", "gc", "stand-in"]
    assert reply["sections"][0][1]["pid"] == worker.pid
    collector = reply["sections"][1][1]
    assert collector["frozen_objects"] > 1000      # the boot's objects, frozen once it served
    assert set(collector) == {"frozen_objects", "gen0", "gen1", "gen2"}
    assert worker.channel.send("title", number=3, total=5)
    assert _eventually(lambda: "nfs worker 3/5" in " ".join(psutil.Process(worker.pid).cmdline()))


def test_the_worker_retires_when_the_master_goes_away(forked):
    service = StandIn()
    worker = forked(service)
    assert worker.read_until("ready")
    worker.channel.close()                       # what the master's death looks like
    assert worker.wait() == 0
    assert service.notes()[:2] == ["boot", "retire"]


def test_a_boot_that_hangs_is_ended_by_the_alarm(forked):
    worker = forked(StandIn(boot_seconds=30), timeout=1.0)
    started = time.monotonic()
    assert worker.wait(10) == -signal.SIGALRM
    assert time.monotonic() - started < 5


def test_the_parent_death_signal_reaches_an_orphan():
    report_r, report_w = os.pipe()
    middle = os.fork()
    if middle == 0:
        code = 1
        try:
            grandchild = os.fork()
            if grandchild == 0:
                try:
                    ok = set_parent_death_signal(signal.SIGKILL)
                    os.write(report_w, f"{os.getpid()} {int(ok)}\n".encode())
                    time.sleep(30)
                finally:
                    os._exit(0)
            time.sleep(0.3)
            code = 0
        finally:
            os._exit(code)
    try:
        pid_text, ok = os.read(report_r, 64).decode().split()
        orphan = int(pid_text)
        assert ok == "1"
        os.waitpid(middle, 0)
        assert _eventually(lambda: not psutil.pid_exists(orphan) or
                           psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE, 5)
    finally:
        os.close(report_r)
        os.close(report_w)


def test_count_calls_sums_the_nested_counters():
    assert count_calls({"NFS3": {3: {"NULL": 2, "WRITE": 5}}, "MOUNT3": {3: {"MNT": 1}}}) == 8
    assert count_calls({}) == 0 and count_calls({"x": "not a count"}) == 0


def _eventually(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
