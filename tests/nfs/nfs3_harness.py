"""An in-process nfs/server over storage/posix, and a small NFSv3/MOUNT client for tests.

The server is built from a real volfile through the graph (as the daemon
does), listens on 127.0.0.1 with ephemeral ports and never registers with a
portmapper unless a test asks.  `Nfs3Client.call("LOOKUP", what=...)` sends
one procedure with the project's RpcClient and returns the decoded
(status, resok|resfail); helpers wrap the common argument shapes.
"""
from __future__ import annotations

import os
import threading
import uuid

from glusterfsd.graph import Graph
from rpcsvc import xdr
from rpcsvc.client import RpcClient

N = xdr.load("nfs3")
M = xdr.load("mount3")
NFS_PROCS = {p.name.removeprefix("NFSPROC3_"): p
             for p in N.programs["NFS_PROGRAM"].versions[3].procs.values()}
MOUNT_PROCS = {p.name.removeprefix("MOUNTPROC3_"): p
               for p in M.programs["MOUNT_PROGRAM"].versions[3].procs.values()}
NOTHING = (False, None)
OK = N.NFS3_OK


def fh3(data) -> object:
    return N.nfs_fh3(data=bytes(data))


def sattr(mode=None, uid=None, gid=None, size=None, atime=None, mtime=None):
    """A sattr3; times: None (leave), "now", or (seconds, nseconds)."""
    def opt(value):
        return NOTHING if value is None else (True, value)

    def when(value):
        if value is None:
            return (N.DONT_CHANGE, None)
        if value == "now":
            return (N.SET_TO_SERVER_TIME, None)
        return (N.SET_TO_CLIENT_TIME, N.nfstime3(seconds=value[0], nseconds=value[1]))
    return N.sattr3(mode=opt(mode), uid=opt(uid), gid=opt(gid), size=opt(size),
                    atime=when(atime), mtime=when(mtime))


def volfile(tmp_path, volumes=("gv0",), server_options: dict | None = None,
            posix_options: dict | None = None) -> str:
    """Text of a volfile: one storage/posix per volume under nfs/server."""
    parts = []
    for name in volumes:
        directory = tmp_path / "bricks" / name
        directory.mkdir(parents=True, exist_ok=True)
        opts = {"directory": str(directory), **(posix_options or {}).get(name, {})}
        body = "".join(f"    option {k} {v}\n" for k, v in opts.items())
        parts.append(f"volume {name}\n    type storage/posix\n{body}end-volume\n")
    options = {"nfs.port": "0", "nfs.mount-port": "0", "rpc.register-with-portmap": "off",
               "nfs.bind-address": "127.0.0.1", "nfs.mount-rmtab": "/-",
               "nfs.event-threads": "1", "nfs.stage-threads": "4"}
    options.update(server_options or {})
    body = "".join(f"    option {k} {v}\n" for k, v in options.items())
    parts.append(f"volume nfs\n    type nfs/server\n{body}    subvolumes {' '.join(volumes)}\n"
                 "end-volume\n")
    return "\n".join(parts)


class NfsTestServer:
    """Start/stop/restart an nfs/server graph; `brick(name)` is the storage directory."""

    def __init__(self, tmp_path, volumes=("gv0",), server_options=None, posix_options=None):
        self.tmp_path = tmp_path
        self.volumes = volumes
        self.path = tmp_path / "nfs.vol"
        self.path.write_text(volfile(tmp_path, volumes, server_options, posix_options))
        self.graph = None

    def start(self) -> "NfsTestServer":
        graph = Graph.from_file(str(self.path))
        graph.init()
        graph.activate()
        self.graph = graph
        return self

    def stop(self) -> None:
        if self.graph is not None:
            self.graph.fini()
            self.graph = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def xlator(self):
        return self.graph.top

    @property
    def nfs_port(self) -> int:
        return self.xlator.nfs_port

    @property
    def mount_port(self) -> int:
        return self.xlator.mount_port

    def brick(self, name: str = "gv0"):
        return self.tmp_path / "bricks" / name

    def mount(self, path: str = "/gv0") -> bytes:
        """The root handle of a MOUNT (MNT must succeed)."""
        proc = MOUNT_PROCS["MNT"]
        with RpcClient("127.0.0.1", self.mount_port, cred=("sys", 0, 0, [], "test")) as client:
            status, res = client.call(M.MOUNT_PROGRAM, 3, proc.number, proc.arg,
                                      path.encode(), proc.res)
        assert status == M.MNT3_OK, f"MNT {path}: {status}"
        return bytes(res.fhandle)

    def client(self, uid=0, gid=0, groups=(), flavor="sys", proto="tcp") -> "Nfs3Client":
        cred = ("none",) if flavor == "none" else ("sys", uid, gid, list(groups), "test")
        return Nfs3Client(self.nfs_port, cred, proto)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Nfs3Client:
    def __init__(self, port: int, cred, proto: str = "tcp"):
        self.rpc = RpcClient("127.0.0.1", port, proto=proto, timeout=10.0, cred=cred)

    def close(self) -> None:
        self.rpc.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, name: str, args=None, **fields):
        proc = NFS_PROCS[name]
        if args is None and fields:
            args = getattr(N, f"{name}3args")(**fields)
        return self.rpc.call(N.NFS_PROGRAM, 3, proc.number, proc.arg, args, proc.res)

    # --- helpers returning (status, res) ------------------------------------
    def getattr(self, handle):
        return self.call("GETATTR", object=fh3(handle))

    def lookup(self, directory, name: bytes):
        return self.call("LOOKUP", what=N.diropargs3(dir=fh3(directory), name=name))

    def create(self, directory, name: bytes, mode=0o644, how=None, verf=None, **attrs):
        if verf is not None:
            createhow = (N.EXCLUSIVE, verf)
        else:
            createhow = (N.UNCHECKED if how is None else how, sattr(mode=mode, **attrs))
        return self.call("CREATE", where=N.diropargs3(dir=fh3(directory), name=name),
                         how=createhow)

    def mkdir(self, directory, name: bytes, mode=0o755):
        return self.call("MKDIR", where=N.diropargs3(dir=fh3(directory), name=name),
                         attributes=sattr(mode=mode))

    def write(self, handle, offset: int, data: bytes, stable=None):
        return self.call("WRITE", file=fh3(handle), offset=offset, count=len(data),
                         stable=N.FILE_SYNC if stable is None else stable, data=data)

    def read(self, handle, offset: int, count: int):
        return self.call("READ", file=fh3(handle), offset=offset, count=count)

    def remove(self, directory, name: bytes):
        return self.call("REMOVE", object=N.diropargs3(dir=fh3(directory), name=name))

    def readdir(self, directory, cookie=0, verf=bytes(8), count=4096):
        return self.call("READDIR", dir=fh3(directory), cookie=cookie, cookieverf=verf,
                         count=count)

    def readdirplus(self, directory, cookie=0, verf=bytes(8), dircount=4096, maxcount=16384):
        return self.call("READDIRPLUS", dir=fh3(directory), cookie=cookie, cookieverf=verf,
                         dircount=dircount, maxcount=maxcount)

    # --- helpers that must succeed -------------------------------------------
    def new_file(self, directory, name: bytes, data: bytes = b"", mode=0o644) -> bytes:
        status, res = self.create(directory, name, mode=mode)
        assert status == OK, status
        handle = bytes(res.obj[1].data)
        offset = 0
        while offset < len(data):   # the server may write less than asked (short write)
            status, res = self.write(handle, offset, data[offset:offset + (1 << 20)])
            assert status == OK and res.count > 0, status
            offset += res.count
        return handle

    def new_dir(self, directory, name: bytes, mode=0o755) -> bytes:
        status, res = self.mkdir(directory, name, mode)
        assert status == OK, status
        return bytes(res.obj[1].data)

    def handle_of(self, directory, name: bytes) -> bytes:
        status, res = self.lookup(directory, name)
        assert status == OK, status
        return bytes(res.object.data)

    def list_names(self, directory, plus: bool = False, count: int = 4096) -> list[bytes]:
        """Every name of a directory, following cookies until eof (bounded)."""
        names, cookie, verf = [], 0, bytes(8)
        for _ in range(100_000):
            if plus:
                status, res = self.readdirplus(directory, cookie, verf, count, count * 4)
            else:
                status, res = self.readdir(directory, cookie, verf, count)
            assert status == OK, status
            verf = bytes(res.cookieverf)
            for entry in res.reply.entries:
                names.append(bytes(entry.name))
                cookie = entry.cookie
            if res.reply.eof:
                return names
        raise AssertionError("listing never reached eof")


def thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def random_gfid() -> bytes:
    return uuid.uuid4().bytes


def own(path, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    os.chmod(path, mode)
