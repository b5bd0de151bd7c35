"""READs from a client that does not read its replies cost bounded memory (review finding 3).

/tmp/review/exp_queue.py against the real nfs/server: 400 READ(1 MiB) calls
from a client that never reads grew the server by ~400 MiB; a reply waiting
in the write queue now counts against rpc.outstanding-rpc-limit (16).
"""
from __future__ import annotations

import socket
import struct
import time

import psutil

from nfs3_harness import NFS_PROCS, N, fh3
from rpcsvc import wire
from rpcsvc.auth import encode_authsys
from rpcsvc.record import frame

MIB = 1 << 20


def _read_record(sock: socket.socket, deadline: float) -> bytes:
    def exact(n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(min(n - len(out), MIB))
            if not chunk:
                raise ConnectionError("server closed")
            out += chunk
        return bytes(out)
    body = b""
    while True:
        word = struct.unpack(">I", exact(4))[0]
        body += exact(word & 0x7FFFFFFF)
        if word & 0x80000000:
            return body


def test_unread_read_replies_are_bounded(server, root, nfs):
    handle = nfs.new_file(root, b"big", b"x" * MIB)
    proc = NFS_PROCS["READ"]
    args = bytes(proc.arg.encode(N.READ3args(file=fh3(handle), offset=0, count=MIB)))
    cred = encode_authsys(0, b"t", 0, 0, [])
    svc = server.xlator.svc
    before = psutil.Process().memory_info().rss
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.nfs_port))
    calls = 100
    try:
        sock.sendall(b"".join(frame(wire.build_call(i + 1, 100003, 3, proc.number, 1, cred) + args)
                              for i in range(calls)))
        deadline = time.monotonic() + 10
        last = None
        while time.monotonic() < deadline:          # until the server has nothing left to do
            now = (svc.stats()["queued_reply_bytes"], svc.inflight)
            if now == last and not svc.inflight:
                break
            last = now
            time.sleep(0.3)
        assert svc.stats()["queued_reply_bytes"] <= 16 * (MIB + 256)
        grown = psutil.Process().memory_info().rss - before
        assert grown < 64 * MIB         # bounded: ~12 MiB; unbounded: ~100 MiB
        deadline = time.monotonic() + 20
        xids = {wire.parse_reply(_read_record(sock, deadline)).xid for _ in range(calls)}
        assert xids == set(range(1, calls + 1))
    finally:
        sock.close()
