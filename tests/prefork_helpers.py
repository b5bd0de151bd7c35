"""The real prefork daemon (master + workers) over nfs/server, for tests.

Listens on 127.0.0.1 with ephemeral ports, no portmapper, a small footprint
per worker (1 event thread, 4 stage threads): the machine running the tests
has 2 cores.  `ports()` reads the bound ports from the master's log line.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import time

import psutil

from daemon_helpers import ROOT, alive, env, glusterfs_cmd, read_pid, wait_for
from rpcsvc import xdr

N = xdr.load("nfs3")
NFS_PROCS = {p.name.removeprefix("NFSPROC3_"): p
             for p in N.programs["NFS_PROGRAM"].versions[3].procs.values()}

BASE_OPTIONS = {"nfs.port": "0", "nfs.mount-port": "0", "rpc.register-with-portmap": "off",
                "nfs.bind-address": "127.0.0.1", "nfs.mount-rmtab": "/-",
                "nfs.event-threads": "1", "nfs.stage-threads": "4"}
PORTS = re.compile(r"NFS v3 on [\d.]+:(\d+), MOUNT v3/v1 on [\d.]+:(\d+)")


def volfile_text(brick, server_options: dict | None = None) -> str:
    options = {**BASE_OPTIONS, **(server_options or {})}
    body = "".join(f"    option {k} {v}\n" for k, v in options.items())
    return (f"volume gv0\n    type storage/posix\n    option directory {brick}\nend-volume\n\n"
            f"volume nfs\n    type nfs/server\n{body}    subvolumes gv0\nend-volume\n")


class PreforkDaemon:
    def __init__(self, tmp_path, workers: int = 2, server_options: dict | None = None,
                 graceful_timeout: float = 10.0, environment: dict | None = None):
        self.dir = tmp_path
        self.brick = tmp_path / "brick"
        self.brick.mkdir(exist_ok=True)
        self.vol = tmp_path / "nfs.vol"
        self.pidfile = tmp_path / "nfs.pid"
        self.log = tmp_path / "nfs.log"
        self.dumps = tmp_path / "dumps"
        self.workers_wanted = workers
        self.graceful_timeout = graceful_timeout
        self.environment = environment or {}
        self.write_volfile(server_options)
        self.master: int | None = None
        self._ports: tuple[int, int] | None = None

    def write_volfile(self, server_options: dict | None = None) -> None:
        options = {"nfs.workers": str(self.workers_wanted), **(server_options or {})}
        self.vol.write_text(volfile_text(self.brick, options))

    def start(self, *extra: str):
        argv = ["-f", str(self.vol), "-p", str(self.pidfile), "-l", str(self.log),
                "--statedump-dir", str(self.dumps), "--graceful-timeout",
                str(self.graceful_timeout), *extra]
        result = subprocess.run(glusterfs_cmd() + argv, capture_output=True, text=True,
                                timeout=60, env={**env(), **self.environment}, cwd=ROOT)
        if result.returncode == 0:
            self.master = read_pid(str(self.pidfile))
            assert wait_for(lambda: len(self.workers()) >= self.workers_wanted, 20)
            self._ports = None
            self._ports = self.ports()
        return result

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def ports(self) -> tuple[int, int]:
        """(NFS, MOUNT) ports, from the last start's log line (kept across log rotation)."""
        if self._ports is None:
            found = PORTS.findall(self.log_text())
            assert found, "no port line in the log"
            self._ports = int(found[-1][0]), int(found[-1][1])
        return self._ports

    def url(self, path: str) -> str:
        nfs_port, mount_port = self.ports()
        return f"nfs://127.0.0.1/gv0{path}?nfsport={nfs_port}&mountport={mount_port}"

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.master).children()
        except psutil.NoSuchProcess:
            return []

    def workers(self, include_retiring: bool = False) -> list[psutil.Process]:
        out = []
        for child in self.children():
            try:
                title = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "nfs worker" in title and (include_retiring or "retiring" not in title):
                out.append(child)
        return out

    def worker_pids(self) -> set[int]:
        return {p.pid for p in self.workers()}

    def send(self, sig: int) -> None:
        os.kill(self.master, sig)

    def statedump(self) -> str:
        """SIGUSR1 the master; the text of the dump it writes (a dump of the same second
        replaces the previous file, so files are told apart by inode)."""
        def dumps() -> dict:
            if not self.dumps.exists():
                return {}
            return {entry.name: entry.inode() for entry in os.scandir(self.dumps)
                    if not entry.name.endswith(".tmp")}
        before = dumps()
        self.send(signal.SIGUSR1)

        def new_dump():
            return next((name for name, inode in dumps().items()
                         if before.get(name) != inode), None)
        assert wait_for(lambda: new_dump() is not None, 15)
        return (self.dumps / new_dump()).read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
        """Stop the master; True if it ended by itself (all its children with it)."""
        if self.master is None or not alive(self.master):
            return True
        family = [self.master] + [c.pid for c in self.children()]
        os.kill(self.master, sig)
        ended = wait_for(lambda: not alive(self.master), timeout)
        for pid in family:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
                ended = False
        wait_for(lambda: not any(alive(p) for p in family), 5)
        return ended

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(signal.SIGKILL if exc[0] else signal.SIGTERM)


def dump_sections(text: str) -> dict[str, dict[str, str]]:
    """A statedump's sections as {title: {key: value}}."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key] = value
    return sections


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class PinnedClient:
    """One TCP connection to the daemon, and which worker serves it.

    A connection belongs to the worker that accepted it; psutil shows which.
    Calls are sent one at a time with explicit xids (`message()` + `exchange()`
    also let a test send the very same bytes again, as a retransmission)."""

    def __init__(self, port: int, uid: int = 0, gid: int = 0):
        from rpcsvc import wire
        from rpcsvc.auth import encode_authsys
        self.port = port
        self.cred = (wire.AUTH_SYS, encode_authsys(1, b"test", uid, gid, [gid]))
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._xid = int.from_bytes(os.urandom(3), "big") << 4
        self.call(100003, 3, 0)          # NULL: the connection is now accepted and read

    def message(self, prog, vers, proc, arg_codec=None, value=None, xid=None) -> bytes:
        from rpcsvc import wire
        if xid is None:
            self._xid += 1
            xid = self._xid
        args = bytes(arg_codec.encode(value)) if arg_codec is not None else b""
        return wire.build_call(xid, prog, vers, proc, *self.cred) + args

    def exchange(self, message: bytes) -> bytes:
        """Send one call record, return its reply record."""
        self.sock.sendall(struct.pack(">I", 0x80000000 | len(message)) + message)
        body = b""
        while True:
            word = struct.unpack(">I", self._exact(4))[0]
            body += self._exact(word & 0x7FFFFFFF)
            if word & 0x80000000:
                return body

    def call(self, prog, vers, proc, arg_codec=None, value=None, res_codec=None):
        from rpcsvc import wire
        reply = self.exchange(self.message(prog, vers, proc, arg_codec, value))
        header = wire.parse_reply(reply)
        assert header.accepted and header.stat == wire.SUCCESS, (header.stat, header.auth_stat)
        if res_codec is None:
            return reply[header.body_offset:]
        return res_codec.decode(reply, header.body_offset)[0]

    def nfs_message(self, name: str, xid=None, **fields) -> bytes:
        """An NFSv3 call by procedure name ("CREATE", ...) with the fields of its args."""
        proc = NFS_PROCS[name]
        args = getattr(N, f"{name}3args")(**fields)
        return self.message(100003, 3, proc.number, proc.arg, args, xid)

    def nfs(self, name: str, **fields):
        """(status, resok | resfail) of one NFSv3 call."""
        from rpcsvc import wire
        reply = self.exchange(self.nfs_message(name, **fields))
        header = wire.parse_reply(reply)
        assert header.accepted and header.stat == wire.SUCCESS, header.stat
        return NFS_PROCS[name].res.decode(reply, header.body_offset)[0]

    def _exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    def owner(self, srv: "PreforkDaemon") -> int | None:
        mine = self.sock.getsockname()
        for worker in srv.workers(include_retiring=True):
            try:
                for conn in worker.net_connections("tcp"):
                    if conn.raddr and tuple(conn.raddr) == mine:
                        return worker.pid
            except psutil.Error:
                continue
        return None

    def close(self) -> None:
        self.sock.close()


def sattr3(mode: int = 0o644):
    return N.sattr3(mode=(True, mode), uid=(False, None), gid=(False, None), size=(False, None),
                    atime=(N.DONT_CHANGE, None), mtime=(N.DONT_CHANGE, None))


def one_client_per_worker(srv: "PreforkDaemon", port: int, tries: int = 60) -> dict:
    """{worker pid: PinnedClient}: connect until every worker owns one connection."""
    wanted = srv.worker_pids()
    found: dict = {}
    for _ in range(tries):
        client = PinnedClient(port)
        owner = client.owner(srv)
        if owner in wanted and owner not in found:
            found[owner] = client
        else:
            client.close()
        if set(found) == wanted:
            return found
    for client in found.values():
        client.close()
    raise AssertionError(f"could not reach every worker of {wanted} in {tries} connections")


def mount_root(mount_port: int) -> bytes:
    """The root handle of /gv0, from MOUNT v3 MNT."""
    from rpcsvc import xdr
    from rpcsvc.client import RpcClient
    mount = xdr.load("mount3")
    mnt = next(p for p in mount.programs["MOUNT_PROGRAM"].versions[3].procs.values()
               if p.name == "MOUNTPROC3_MNT")
    with RpcClient("127.0.0.1", mount_port, cred=("sys", 0, 0, [], "test")) as client:
        status, res = client.call(mount.MOUNT_PROGRAM, 3, mnt.number, mnt.arg, b"/gv0", mnt.res)
    assert status == mount.MNT3_OK, status
    return bytes(res.fhandle)
