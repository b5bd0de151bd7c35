"""Helpers for the rpcsvc tests: hand-built calls, a raw socket peer, test programs.

The test program is NFS_PROGRAM v3 from the real nfs3.x, with actors chosen
to exercise the service: NULL, one that raises, a counting non-idempotent
REMOVE (for the DRC), a gated FSSTAT that blocks until released (throttle,
drain, in-transit duplicates), a READ that returns a pre-encoded `Reply`
of any size (partial writes), and procedures left without actors.
"""
from __future__ import annotations

import socket
import struct
import threading
import time

from rpcsvc import wire, xdr
from rpcsvc.auth import encode_authsys
from rpcsvc.program import Program, Reply, RpcError
from rpcsvc.record import frame, record_mark

NFS3 = xdr.load("nfs3")
NFS_SPEC = NFS3.programs["NFS_PROGRAM"]
NFS_PROG = 100003
NULL, GETATTR, ACCESS, READ, WRITE, REMOVE, FSSTAT, PATHCONF = 0, 1, 4, 6, 7, 12, 18, 20

FH = NFS3.nfs_fh3(b"\x01" * 16)


def call_msg(xid: int, prog: int = NFS_PROG, vers: int = 3, proc: int = 0, args: bytes = b"",
             cred=(0, b""), verf=(0, b""), rpcvers: int = 2) -> bytes:
    """A hand-built CALL message (no record mark)."""
    msg = bytearray(wire.build_call(xid, prog, vers, proc, cred[0], cred[1], verf[0], verf[1]))
    struct.pack_into(">I", msg, 8, rpcvers)
    return bytes(msg) + args


def sys_cred(uid=1000, gid=1000, gids=(1000,), name=b"testhost", stamp=7):
    return (wire.AUTH_SYS, encode_authsys(stamp, name, uid, gid, gids))


def remove_args(name: bytes = b"victim") -> bytes:
    return NFS3.REMOVE3args.encode(NFS3.REMOVE3args(NFS3.diropargs3(FH, name)))


def getattr_args() -> bytes:
    return NFS3.GETATTR3args.encode(NFS3.GETATTR3args(FH))


class RawPeer:
    """A client socket that sends exact bytes and reads whole reply records."""

    def __init__(self, port: int, host: str = "127.0.0.1", source_port: int = 0):
        self.sock = socket.socket()
        if source_port:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, source_port))
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, msg: bytes, timeout: float = 5.0) -> wire.ReplyHeader:
        self.send(frame(msg))
        return wire.parse_reply(self.read_reply(timeout))

    def read_reply(self, timeout: float = 5.0) -> bytes:
        """One whole reply record, reassembled from its fragments."""
        deadline = time.monotonic() + timeout
        body = b""
        while True:
            header = self._read_exact(4, deadline)
            word = struct.unpack(">I", header)[0]
            body += self._read_exact(word & 0x7FFFFFFF, deadline)
            if word & 0x80000000:
                return body

    def _read_exact(self, count: int, deadline: float) -> bytes:
        buf = bytearray(self._buf)
        while len(buf) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                self._buf = bytes(buf)
                raise TimeoutError(f"waited for {count} bytes, have {len(buf)}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                self._buf = bytes(buf)
                raise TimeoutError(f"waited for {count} bytes, have {len(buf)}") from None
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        out, self._buf = bytes(buf[:count]), bytes(buf[count:])
        return out

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True once the server closes (EOF or reset) within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return True
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def udp_call(port: int, msg: bytes, timeout: float = 5.0) -> wire.ReplyHeader:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(msg, ("127.0.0.1", port))
        data, _ = sock.recvfrom(65536)
        return wire.parse_reply(data)


class TestActors:
    """Actors with observable side effects (see the module doc)."""

    def __init__(self):
        self.removes = 0
        self.requests = []
        self.threads = []
        self.gate = threading.Event()
        self.in_gate = 0
        self.max_in_gate = 0
        self._lock = threading.Lock()
        self.read_size = 1024

    def null(self, req):
        self.threads.append(threading.current_thread().name)   # where the actor ran
        self.requests.append(req)
        return None

    def getattr_raises(self, req):
        raise RuntimeError("actor exploded on purpose")

    def remove(self, req):
        with self._lock:
            self.removes += 1
        return (NFS3.NFS3_OK, NFS3.REMOVE3resok(NFS3.wcc_data((False, None), (False, None))))

    def fsstat_gated(self, req):
        with self._lock:
            self.in_gate += 1
            self.max_in_gate = max(self.max_in_gate, self.in_gate)
        try:
            if not self.gate.wait(10):
                raise RuntimeError("gate never opened")
        finally:
            with self._lock:
                self.in_gate -= 1
        return (NFS3.NFS3ERR_IO, NFS3.FSSTAT3resfail((False, None)))

    def read_reply(self, req):
        data = bytes(range(256)) * (self.read_size // 256) + b"x" * (self.read_size % 256)
        head = struct.pack(">IIIII", NFS3.NFS3_OK, 0, len(data), 1, len(data))
        return Reply(head, data, b"\0" * (-len(data) % 4))

    def pathconf_error(self, req):
        raise RpcError(wire.GARBAGE_ARGS, "actor says the arguments are garbage")

    def wait_for_gate(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_gate >= count:
                return True
            time.sleep(0.005)
        return False


def nfs_program(actors: TestActors, **kw) -> Program:
    table = {NULL: actors.null, GETATTR: actors.getattr_raises, REMOVE: actors.remove,
             FSSTAT: actors.fsstat_gated, READ: actors.read_reply,
             PATHCONF: actors.pathconf_error}
    kw.setdefault("non_idempotent", {REMOVE})
    return Program(NFS_SPEC, 3, table, **kw)


__all__ = ["call_msg", "sys_cred", "remove_args", "getattr_args", "RawPeer", "udp_call",
           "TestActors", "nfs_program", "frame", "record_mark", "NFS3", "NFS_PROG"]
