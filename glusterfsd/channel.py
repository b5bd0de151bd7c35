"""The master <-> worker channel: JSON lines over a Unix socketpair.

One channel per child, made before the fork.  The worker says `ready` (or
`fail` with the reason) once its graph is up, `beat` while its threads make
progress, and answers `dump` requests with its statedump sections; the master
asks for dumps, log reopening and title changes.  A socketpair rather than a
heartbeat file (gunicorn's WorkerTmp) because the statedump needs a reply
channel anyway, and because the master sees EOF at once when a worker dies
and the worker sees EOF at once when the master dies.

Both ends are used by one thread each (the master's loop, the worker's main
thread), so there is no locking.  Receiving never blocks; sending waits at
most SEND_TIMEOUT (the peer always reads).
"""
from __future__ import annotations

import json
import socket

SEND_TIMEOUT = 5.0
MAX_PENDING = 16 << 20       # a line longer than this is not a message: drop the channel


class Channel:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.setblocking(False)
        self._pending = b""
        self.closed = False

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        """(master's end, worker's end)."""
        master, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(master), cls(worker)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: str, **fields) -> bool:
        """Send one message; False if the peer is gone or stuck."""
        if self.closed:
            return False
        line = json.dumps({"t": kind, **fields}, default=str, separators=(",", ":")) + "\n"
        try:
            self.sock.settimeout(SEND_TIMEOUT)
            self.sock.sendall(line.encode())
            return True
        except OSError:
            return False
        finally:
            if not self.closed:
                self.sock.setblocking(False)

    def receive(self) -> list[dict] | None:
        """The whole messages that arrived so far ([] if none); None once the peer closed
        (the last messages before the end are returned first, then None)."""
        chunks = []
        eof = False
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                eof = True
                break
            if not data:
                eof = True
                break
            chunks.append(data)
        buffer = self._pending + b"".join(chunks)
        *lines, self._pending = buffer.split(b"\n")
        if len(self._pending) > MAX_PENDING:
            eof = True
        messages = []
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue            # never from our own peer; ignore rather than die
            if isinstance(message, dict):
                messages.append(message)
        if eof:
            self.close()
            return messages or None
        return messages

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()
