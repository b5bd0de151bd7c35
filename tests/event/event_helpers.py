"""What the event-pool tests share: bounded waits and a handler that records its calls."""
from __future__ import annotations

import os
import threading
import time

BACKENDS = ["epoll", "poll"]
WAIT = 3.0          # upper bound for anything we wait for
QUIET = 0.15        # how long "nothing happens" is watched


def wait_until(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.003)
    return predicate()


def event_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("glfs_")]


class Recorder:
    """A handler that remembers each call; `on_call` may act on the pool."""

    def __init__(self, on_call=None, read=True):
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        self.on_call = on_call
        self.read = read

    def __call__(self, fd, idx, gen, data, poll_in, poll_out, poll_err):
        payload = b""
        if self.read and poll_in:
            try:
                payload = os.read(fd, 65536)
            except BlockingIOError:
                pass
        call = dict(fd=fd, idx=idx, gen=gen, data=data, poll_in=poll_in,
                    poll_out=poll_out, poll_err=poll_err, payload=payload)
        with self.lock:
            self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)

    def count(self) -> int:
        with self.lock:
            return len(self.calls)

    def payload(self) -> bytes:
        with self.lock:
            return b"".join(c["payload"] for c in self.calls)
