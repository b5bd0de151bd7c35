"""An ONC RPC client on the same codec: portmapper registration now, GETSPEC later.

TCP (or a Unix stream socket: `host` is a path) with record marking, or UDP.
Several threads may call at once on one client: each call gets its own xid,
sends under a lock, and whichever caller is waiting first reads the socket
for everybody (leader/follower), handing each reply to the caller whose xid
it carries.  No reader thread to leak.

Failures are typed: `RpcCallError` for a reply that is not SUCCESS (with the
accept or reject stat, the auth_stat and the mismatch range),
`RpcTimeout`, `RpcConnectionError`, `RpcProtocolError` for a reply that does
not decode.  UDP retransmits once (same xid) before timing out; TCP
reconnects once when the connection broke, resending the same xid, which a
duplicate request cache recognises.
"""
from __future__ import annotations

import itertools
import os
import random
import select
import socket
import threading
import time

from rpcsvc import wire, xdr
from rpcsvc.auth import encode_authsys
from rpcsvc.record import FramingError, RecordAssembler, record_mark

MAX_REPLY = 64 << 20
UDP_MAX_DATAGRAM = 65536


class RpcClientError(Exception):
    """Base of the client's errors."""


class RpcCallError(RpcClientError):
    """The server answered, but not with SUCCESS."""

    def __init__(self, header: wire.ReplyHeader):
        self.accepted = header.accepted
        self.stat = header.stat
        self.auth_stat = header.auth_stat
        self.low = header.low
        self.high = header.high
        self.xid = header.xid
        if header.accepted:
            what = wire.ACCEPT_STAT_NAMES.get(header.stat, f"accept_stat {header.stat}")
        elif header.stat == wire.RPC_MISMATCH:
            what = "RPC_MISMATCH"
        else:
            what = f"AUTH_ERROR (auth_stat {header.auth_stat})"
        if header.low is not None:
            what += f" (supported {header.low}..{header.high})"
        super().__init__(what)


class RpcTimeout(RpcClientError, TimeoutError):
    """No reply within the timeout."""


class RpcConnectionError(RpcClientError, ConnectionError):
    """The server could not be reached, or the connection broke twice."""


class RpcProtocolError(RpcClientError):
    """The reply did not decode."""


class _Broken(Exception):
    pass


def _cred_of(cred) -> tuple[int, bytes]:
    if cred in (None, "none", ("none",)):
        return wire.AUTH_NONE, b""
    if isinstance(cred, tuple) and cred and cred[0] == "sys":
        _, uid, gid, groups, machinename = (cred + (None,) * 5)[:5]
        name = machinename if machinename is not None else socket.gethostname()
        if isinstance(name, str):
            name = name.encode()
        return wire.AUTH_SYS, encode_authsys(int(time.time()) & 0xFFFFFFFF, name, uid, gid,
                                             tuple(groups or ()))
    raise ValueError(f"unknown credential {cred!r}; use 'none' or ('sys', uid, gid, groups, name)")


class RpcClient:
    def __init__(self, host: str, port: int = 0, proto: str = "tcp", timeout: float = 5.0,
                 cred=("none"), privileged: bool = False):
        if proto not in ("tcp", "udp"):
            raise ValueError(f"unknown protocol {proto!r}")
        self.host = host
        self.port = port
        self.proto = proto
        self.timeout = timeout
        self.privileged = privileged
        self._cred_flavor, self._cred_body = _cred_of(cred)
        self._xids = itertools.count(random.getrandbits(31))
        self._xid_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._conn_gen = 0
        self._reading = False
        self._waiting: set[int] = set()
        self._replies: dict[int, bytes] = {}
        self._assembler: RecordAssembler | None = None
        self._closed = False

    # ---- public -----------------------------------------------------------------------

    def call(self, prog: int, vers: int, proc: int, arg_codec=None, arg_value=None,
             res_codec=None):
        """Call a procedure; returns the decoded result (raw bytes if res_codec is None)."""
        xid = self._next_xid()
        args = arg_codec.encode(arg_value) if arg_codec is not None else b""
        message = wire.build_call(xid, prog, vers, proc, self._cred_flavor, self._cred_body) \
            + bytes(args)
        reply = self._exchange(xid, message)
        try:
            header = wire.parse_reply(reply)
        except ValueError as error:
            raise RpcProtocolError(str(error)) from None
        if not header.success:
            raise RpcCallError(header)
        if res_codec is None:
            return bytes(reply[header.body_offset:])
        try:
            value, end = res_codec.decode(reply, header.body_offset)
        except (xdr.XdrError, ValueError, IndexError) as error:
            raise RpcProtocolError(f"result does not decode: {error}") from None
        if end != len(reply):
            raise RpcProtocolError(f"{len(reply) - end} bytes after the result")
        return value

    def call_raw(self, message: bytes) -> bytes:
        """Send a hand-built call message (xid in its first 4 bytes); the reply message."""
        if len(message) < 4:
            raise ValueError("a call message starts with its xid")
        return bytes(self._exchange(int.from_bytes(message[:4], "big"), bytes(message)))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._drop_locked()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- internals --------------------------------------------------------------------

    def _next_xid(self) -> int:
        with self._xid_lock:
            return next(self._xids) & 0xFFFFFFFF

    def _connect(self) -> socket.socket:
        if self.host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = self.host
        else:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            kind = socket.SOCK_STREAM if self.proto == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(family, kind)
            address = (self.host, self.port)
        try:
            sock.settimeout(self.timeout)
            if self.privileged and sock.family != socket.AF_UNIX:
                _bind_reserved(sock)
            sock.connect(address)
            if sock.type == socket.SOCK_STREAM and sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            sock.close()
            raise RpcConnectionError(f"connect to {address}: {error}") from None
        return sock

    def _stream(self) -> bool:
        return self.proto == "tcp" or self.host.startswith("/")

    def _ensure_socket(self) -> tuple[socket.socket, int]:
        with self._cond:
            if self._closed:
                raise RpcConnectionError("client closed")
            if self._sock is None:
                self._sock = self._connect()
                self._conn_gen += 1
                self._assembler = RecordAssembler(MAX_REPLY)
            return self._sock, self._conn_gen

    def _drop_locked(self, gen: int | None = None) -> None:
        if self._sock is not None and (gen is None or gen == self._conn_gen):
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
            self._assembler = None
            self._cond.notify_all()

    def _send(self, message: bytes) -> int:
        sock, gen = self._ensure_socket()
        try:
            with self._send_lock:
                if self._stream():
                    sock.sendall(record_mark(len(message)) + message)
                else:
                    sock.send(message)
        except OSError:
            with self._cond:
                self._drop_locked(gen)
            raise _Broken() from None
        return gen

    def _exchange(self, xid: int, message: bytes):
        deadline = time.monotonic() + self.timeout
        with self._cond:
            self._waiting.add(xid)
        try:
            if self._stream():
                for attempt in (0, 1):
                    try:
                        gen = self._send(message)
                        return self._wait(xid, gen, deadline)
                    except _Broken:
                        if attempt:
                            raise RpcConnectionError(
                                f"connection to {self.host}:{self.port} broke") from None
            # UDP: send, wait half the time, retransmit the same xid once
            halfway = time.monotonic() + self.timeout / 2
            for attempt, stop in enumerate((halfway, deadline)):
                try:
                    gen = self._send(message)
                    return self._wait(xid, gen, stop)
                except RpcTimeout:
                    if attempt:
                        raise
                except _Broken:
                    raise RpcConnectionError(f"{self.host}:{self.port} refused") from None
            raise AssertionError("unreachable")
        finally:
            with self._cond:
                self._waiting.discard(xid)
                self._replies.pop(xid, None)

    def _wait(self, xid: int, gen: int, deadline: float):
        while True:
            with self._cond:
                if xid in self._replies:
                    return self._replies.pop(xid)
                if self._sock is None or self._conn_gen != gen:
                    raise _Broken()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RpcTimeout(f"no reply to xid {xid:#x} in {self.timeout}s")
                if self._reading:
                    self._cond.wait(left)
                    continue
                self._reading = True
                sock, assembler = self._sock, self._assembler
            try:
                messages = self._receive(sock, assembler, left)
            except _Broken:
                with self._cond:
                    self._reading = False
                    self._drop_locked(gen)
                raise
            with self._cond:
                self._reading = False
                for msg in messages:
                    if len(msg) >= 4:
                        got = int.from_bytes(msg[:4], "big")
                        if got in self._waiting:
                            self._replies[got] = msg
                self._cond.notify_all()

    def _receive(self, sock: socket.socket, assembler, timeout: float) -> list:
        """Whatever complete messages one readable wake-up gives (maybe none)."""
        try:
            ready, _, _ = select.select([sock], [], [], timeout)
        except (OSError, ValueError):
            raise _Broken() from None
        if not ready:
            return []
        try:
            if not self._stream():
                return [sock.recv(UDP_MAX_DATAGRAM)]
            buf = assembler.want()
            count = sock.recv_into(buf)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return []
        except OSError:
            raise _Broken() from None
        if count == 0:
            raise _Broken()
        try:
            return assembler.filled(count)
        except FramingError:
            raise _Broken() from None


def _bind_reserved(sock: socket.socket) -> None:
    """Bind a source port below 1024 (root only): some portmappers want one for SET."""
    if os.geteuid() != 0:
        raise RpcConnectionError("a reserved source port needs root")
    ports = list(range(600, 1024))
    random.shuffle(ports)
    for port in ports:
        try:
            sock.bind(("", port))
            return
        except OSError:
            continue
    raise RpcConnectionError("no reserved source port free")
