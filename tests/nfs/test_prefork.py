"""Prefork workers against real NFS clients: kills, reloads, COMMIT across workers, the DRC.

What the issue asks to be shown: a kill -9 of the worker serving a 200 MiB
nfs-cp (write, then read) does not fail the copy; a SIGHUP every second for
60 s under a loop of libnfs operations fails none of them; a COMMIT through
one worker vouches for writes made through another; a retransmission that
lands on another worker is answered from the shared duplicate request cache.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from libnfs_ffi import LibNfs
from prefork_helpers import (N, PinnedClient, PreforkDaemon, dump_sections, mount_root,
                             one_client_per_worker, sattr3, wait_until)
from rpcsvc import wire

MIB = 1 << 20
TOOLS = ("nfs-cp",)
needs_tools = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                 reason="libnfs utilities (nfs-cp) not installed")
needs_libnfs = pytest.mark.skipif(not LibNfs.available(), reason="libnfs.so.13 not available")


@pytest.fixture
def srv(tmp_path):
    daemon = PreforkDaemon(tmp_path, workers=2)
    yield daemon
    daemon.stop(signal.SIGKILL)


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def owner_of_connections(srv, port: int) -> int | None:
    """The worker holding an established connection on `port` (the copy's)."""
    for worker in srv.workers():
        try:
            if any(c.status == "ESTABLISHED" and c.laddr.port == port
                   for c in worker.net_connections("tcp")):
                return worker.pid
        except Exception:
            continue
    return None


@needs_tools
@pytest.mark.timeout(600)
def test_kill9_of_the_serving_worker_during_a_200mib_copy_in_and_out(srv, tmp_path):
    source = tmp_path / "source"
    with open(source, "wb") as handle:
        for _ in range(200):
            handle.write(os.urandom(MIB))
    assert srv.start().returncode == 0
    nfs_port, _ = srv.ports()
    for direction in ("write", "read"):
        if direction == "write":
            argv, progress = [str(source), srv.url("/big")], srv.brick / "big"
        else:
            argv, progress = [srv.url("/big"), str(tmp_path / "back")], tmp_path / "back"
        copy = subprocess.Popen(["timeout", "300", "nfs-cp", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert wait_until(lambda: progress.exists() and progress.stat().st_size > 30 * MIB,
                          60, 0.002)
        victim = owner_of_connections(srv, nfs_port)
        assert victim is not None and copy.poll() is None   # killed while copying
        os.kill(victim, signal.SIGKILL)
        out, err = copy.communicate(timeout=320)
        assert copy.returncode == 0, err
        assert sha256(progress) == sha256(source)
        assert wait_until(lambda: victim not in srv.worker_pids()
                          and len(srv.worker_pids()) == 2, 15)    # replaced
    assert srv.log_text().count("was killed by signal 9") == 2


@needs_libnfs
@pytest.mark.timeout(300)
def test_a_sighup_every_second_for_a_minute_fails_no_libnfs_operation(srv):
    assert srv.start().returncode == 0
    nfs_port, mount_port = srv.ports()
    first = srv.worker_pids()
    stop = threading.Event()
    reloads = []

    def hup_every_second():
        for number in range(1, 1000):
            if stop.wait(1.0):
                return
            size = "512KB" if number % 2 else "256KB"        # a change every time
            srv.write_volfile({"nfs3.read-size": size})
            srv.send(signal.SIGHUP)
            reloads.append(size)
    hupper = threading.Thread(target=hup_every_second)
    operations, failures = 0, []
    deadline = time.monotonic() + 60
    hupper.start()
    try:
        with LibNfs(nfs_port, mount_port) as client:
            for number in range(1000000):
                if time.monotonic() >= deadline:
                    break
                name, data = f"/loop-{number}", os.urandom(4096 + number % 8192)
                step = "create"
                try:
                    handle = client.create(name)
                    step = "write"
                    client.pwrite(handle, 0, data)
                    client.close_file(handle)
                    step = "read"
                    handle = client.open(name, os.O_RDONLY)
                    assert client.pread(handle, 0, len(data)) == data
                    client.close_file(handle)
                    step = "getattr"
                    assert client.stat(name).nfs_size == len(data)
                    step = "remove"
                    client.unlink(name)
                    operations += 5
                except (OSError, AssertionError) as error:
                    failures.append((step, name, repr(error)))
    finally:
        stop.set()
        hupper.join(10)
    assert failures == []
    assert operations > 500 and len(reloads) >= 50
    assert wait_until(lambda: srv.log_text().count("reload done") >= len(reloads) // 2, 20)
    assert "calls still in flight" not in srv.log_text()
    assert wait_until(lambda: len(srv.worker_pids()) == 2 and not first & srv.worker_pids(), 20)
    time.sleep(1.5)                                   # let the last reload finish
    assert wait_until(lambda: len(srv.workers(include_retiring=True)) == 2, 20)
    client = PinnedClient(nfs_port)
    try:
        status, info = client.nfs("FSINFO", fsroot=N.nfs_fh3(mount_root(mount_port)))
        assert status == N.NFS3_OK and info.rtmax == int(reloads[-1][:3]) * 1024
    finally:
        client.close()


def test_a_commit_through_one_worker_covers_writes_through_another(srv):
    assert srv.start().returncode == 0
    nfs_port, mount_port = srv.ports()
    root = mount_root(mount_port)
    clients = one_client_per_worker(srv, nfs_port)
    (pid_a, a), (pid_b, b) = sorted(clients.items())
    data = os.urandom(300000)
    try:
        status, created = a.nfs("CREATE", where=N.diropargs3(dir=N.nfs_fh3(root), name=b"f"),
                                how=(N.UNCHECKED, sattr3()))
        assert status == N.NFS3_OK
        handle = created.obj[1]
        offset, verifiers = 0, set()
        while offset < len(data):
            chunk = data[offset:offset + 65536]
            status, written = a.nfs("WRITE", file=handle, offset=offset, count=len(chunk),
                                    stable=N.UNSTABLE, data=chunk)
            assert status == N.NFS3_OK
            offset += written.count
            verifiers.add(bytes(written.verf))
        status, committed = b.nfs("COMMIT", file=handle, offset=0, count=0)
        assert status == N.NFS3_OK
        assert verifiers == {bytes(committed.verf)}      # one verifier, whoever answers
    finally:
        a.close()
        b.close()
    os.kill(pid_a, signal.SIGKILL)
    os.kill(pid_b, signal.SIGKILL)
    assert wait_until(lambda: len(srv.worker_pids()) == 2
                      and not {pid_a, pid_b} & srv.worker_pids(), 15)
    assert (srv.brick / "f").read_bytes() == data
    again = PinnedClient(nfs_port)
    try:
        status, read = again.nfs("READ", file=handle, offset=0, count=len(data))
        assert status == N.NFS3_OK and bytes(read.data) == data
        status, committed_again = again.nfs("COMMIT", file=handle, offset=0, count=0)
        assert bytes(committed_again.verf) == bytes(committed.verf)   # respawn: same verifier
    finally:
        again.close()
    assert srv.stop()
    assert srv.start().returncode == 0                 # a master restart: a new verifier
    nfs_port, mount_port = srv.ports()
    after = PinnedClient(nfs_port)
    try:
        status, read = after.nfs("READ", file=handle, offset=0, count=len(data))
        assert status == N.NFS3_OK and bytes(read.data) == data
        status, committed_later = after.nfs("COMMIT", file=handle, offset=0, count=0)
        assert bytes(committed_later.verf) != bytes(committed.verf)
    finally:
        after.close()


def test_a_retransmission_at_another_worker_is_answered_from_the_shared_cache(srv):
    assert srv.start().returncode == 0
    nfs_port, mount_port = srv.ports()
    root = mount_root(mount_port)
    clients = one_client_per_worker(srv, nfs_port)
    (_, a), (_, b) = sorted(clients.items())
    try:
        guarded = a.nfs_message("CREATE", xid=0x7E57, where=N.diropargs3(
            dir=N.nfs_fh3(root), name=b"once"), how=(N.GUARDED, sattr3()))
        first = a.exchange(guarded)
        second = b.exchange(guarded)       # the client reconnected elsewhere and resent it
        third = b.exchange(a.nfs_message("CREATE", xid=0x7E58, where=N.diropargs3(
            dir=N.nfs_fh3(root), name=b"once"), how=(N.GUARDED, sattr3())))
    finally:
        a.close()
        b.close()
    assert second == first
    assert nfsstat_of(first) == N.NFS3_OK
    assert nfsstat_of(third) == N.NFS3ERR_EXIST             # a new call does run again
    drc = dump_sections(srv.statedump())["master"]
    assert int(drc["drc.duplicate_request_count"]) >= 1


def nfsstat_of(reply: bytes) -> int:
    """The nfsstat3 at the start of a successful reply's results."""
    return int.from_bytes(reply[wire.parse_reply(reply).body_offset:][:4], "big")
