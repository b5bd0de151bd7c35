"""The prefork master for real: titles, spreading, supervision, signals, statedump.

Every test runs the real daemon (master + 2 workers on 127.0.0.1, ephemeral
ports, no portmapper) and plays the operator with signals and psutil.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import psutil
import pytest

from daemon_helpers import alive, env, glusterfs_cmd, run
from prefork_helpers import (PinnedClient, PreforkDaemon, dump_sections, mount_root,
                             one_client_per_worker, wait_until)
from rpcsvc import xdr

N = xdr.load("nfs3")
FSINFO = next(p for p in N.programs["NFS_PROGRAM"].versions[3].procs.values()
              if p.name == "NFSPROC3_FSINFO")


@pytest.fixture
def daemon(tmp_path):
    made = []

    def make(**kw):
        srv = PreforkDaemon(tmp_path / f"d{len(made)}", **kw) if made else PreforkDaemon(
            tmp_path, **kw)
        made.append(srv)
        return srv
    yield make
    for srv in made:
        srv.stop(signal.SIGKILL)


def titles(procs) -> list[str]:
    return sorted(" ".join(p.cmdline()).strip() for p in procs)


def test_titles_spread_and_a_statedump_section_per_worker(daemon):
    srv = daemon()
    assert srv.start().returncode == 0
    master = psutil.Process(srv.master)
    assert " ".join(master.cmdline()).strip() == f"glusterfs: master -f {srv.vol}"
    assert titles(srv.workers()) == ["glusterfs: nfs worker 1/2", "glusterfs: nfs worker 2/2"]
    nfs_port, _ = srv.ports()
    clients = one_client_per_worker(srv, nfs_port)
    try:
        for client in clients.values():
            for _ in range(5):
                client.call(100003, 3, 0)
    finally:
        for client in clients.values():
            client.close()
    sections = dump_sections(srv.statedump())
    assert sections["master"]["workers"] == "2" and sections["process"]["pid"] == str(srv.master)
    for pid in clients:
        worker = sections[f"worker.{pid}"]
        assert int(worker["calls"]) >= 6 and int(worker["rss_bytes"]) > 0
        assert worker["state"] == "serving" and worker["title"].startswith("glusterfs: nfs worker")
        assert int(sections[f"worker.{pid}.xlator.nfs"]["rpc.calls.NFS3.3.NFSPROC3_NULL"]) >= 6
    assert sections["master"]["write_verifier"] == \
        sections[f"worker.{min(clients)}.xlator.nfs"]["write_verifier"]


@pytest.mark.skipif(shutil.which("nfs-ls") is None, reason="libnfs's nfs-ls not installed")
def test_clients_spread_over_the_workers_by_themselves(daemon):
    srv = daemon()
    assert srv.start().returncode == 0
    for _ in range(20):         # each run: a MOUNT and an NFS connection, accepted by either
        listing = subprocess.run(["timeout", "30", "nfs-ls", srv.url("/")], capture_output=True)
        assert listing.returncode == 0, listing.stderr
    sections = dump_sections(srv.statedump())
    calls = [int(sections[f"worker.{pid}"]["calls"]) for pid in srv.worker_pids()]
    assert len(calls) == 2 and min(calls) > 0, calls


def test_a_killed_worker_is_replaced_and_the_verifier_lives_as_long_as_the_master(daemon):
    srv = daemon()
    assert srv.start().returncode == 0
    verifier = dump_sections(srv.statedump())["master"]["write_verifier"]
    before = srv.worker_pids()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(srv.worker_pids()) == 2 and victim not in srv.worker_pids(), 10)
    assert "was killed by signal 9" in srv.log_text()
    sections = dump_sections(srv.statedump())
    assert sections["master"]["write_verifier"] == verifier
    for pid in srv.worker_pids():
        assert sections[f"worker.{pid}.xlator.nfs"]["write_verifier"] == verifier
    assert srv.stop()
    assert srv.start().returncode == 0
    assert dump_sections(srv.statedump())["master"]["write_verifier"] != verifier


def test_ttin_and_ttou_change_the_worker_count_but_never_below_one(daemon):
    srv = daemon()
    assert srv.start().returncode == 0
    srv.send(signal.SIGTTIN)
    assert wait_until(lambda: len(srv.workers()) == 3, 10)
    assert wait_until(lambda: titles(srv.workers()) == [f"glusterfs: nfs worker {n}/3"
                                                        for n in (1, 2, 3)], 5)
    for _ in range(3):
        srv.send(signal.SIGTTOU)
        time.sleep(0.3)
    assert wait_until(lambda: len(srv.workers(include_retiring=True)) == 1, 10)
    assert "workers stay at 1" in srv.log_text()
    assert serves(srv)


def serves(srv) -> bool:
    """A NULL call on a new connection is answered."""
    client = PinnedClient(srv.ports()[0])
    try:
        client.call(100003, 3, 0)
        return True
    finally:
        client.close()


def test_hup_refuses_a_bad_volfile_keeps_an_unchanged_one_and_applies_a_changed_one(daemon):
    srv = daemon()
    assert srv.start().returncode == 0
    first = srv.worker_pids()
    good = srv.vol.read_text()
    srv.vol.write_text(good.replace("option nfs.port 0", "option nfs.port seventy"))
    srv.send(signal.SIGHUP)
    assert wait_until(lambda: "reload refused" in srv.log_text(), 10)
    assert srv.worker_pids() == first and serves(srv)
    # unchanged: workers kept, and they reopen the log (logrotate's HUP)
    srv.vol.write_text(good)
    os.rename(srv.log, str(srv.log) + ".1")
    srv.send(signal.SIGHUP)
    assert wait_until(lambda: "volfile unchanged" in srv.log_text(), 10)
    time.sleep(0.3)
    nfs_port, mount_port = srv.ports()
    mount_root(mount_port)                       # MNT is logged by the worker that served it
    assert wait_until(lambda: "MNT of /gv0" in srv.log_text(), 5)
    assert srv.worker_pids() == first
    # changed: a new generation serves with the new option; the old one is gone
    srv.write_volfile({"nfs3.read-size": "64KB"})
    srv.send(signal.SIGHUP)
    assert wait_until(lambda: "reload done" in srv.log_text(), 15)
    assert wait_until(lambda: not (first & {p.pid for p in srv.children()}), 15)
    assert len(srv.worker_pids()) == 2
    client = PinnedClient(nfs_port)
    try:
        root = mount_root(mount_port)
        info = client.call(N.NFS_PROGRAM, 3, FSINFO.number, FSINFO.arg,
                           N.FSINFO3args(N.nfs_fh3(root)), FSINFO.res)
        assert info[0] == N.NFS3_OK and info[1].rtmax == 64 * 1024
    finally:
        client.close()


def test_a_reload_whose_workers_cannot_start_is_abandoned(daemon):
    srv = daemon()
    assert srv.start().returncode == 0
    first = srv.worker_pids()
    srv.vol.write_text(srv.vol.read_text().replace(str(srv.brick), str(srv.dir / "gone")))
    srv.send(signal.SIGHUP)
    assert wait_until(lambda: "reload abandoned" in srv.log_text(), 20)
    assert "does not exist" in srv.log_text()
    assert srv.worker_pids() == first and serves(srv)


def test_a_worker_that_cannot_start_fails_the_start_with_its_reason(daemon):
    srv = daemon()
    shutil.rmtree(srv.brick)
    result = srv.start()
    assert result.returncode == 1
    assert "initialisation failed" in result.stderr and "does not exist" in result.stderr
    assert not srv.pidfile.exists()


def test_workers_that_cannot_start_again_stop_the_master(daemon):
    srv = daemon()
    proc = subprocess.Popen(glusterfs_cmd() + ["-N", "-f", str(srv.vol), "-l", str(srv.log)],
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        srv.master = proc.pid
        assert wait_until(lambda: len(srv.workers()) == 2 and "serving with" in srv.log_text(),
                          20)
        shutil.rmtree(srv.brick)
        for worker in srv.workers():
            os.kill(worker.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == 1
        assert "failed to start 3 times in a row" in srv.log_text()
        assert "does not exist" in srv.log_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_stuck_worker_is_killed_and_replaced(daemon):
    srv = daemon(server_options={"nfs.worker-timeout": "2"})
    assert srv.start().returncode == 0
    stuck = min(srv.worker_pids())
    os.kill(stuck, signal.SIGSTOP)
    assert wait_until(lambda: stuck not in srv.worker_pids() and len(srv.worker_pids()) == 2, 15)
    assert "sent no heartbeat" in srv.log_text()


def test_workers_leave_when_the_master_dies(daemon):
    srv = daemon()
    assert srv.start().returncode == 0
    nfs_port, _ = srv.ports()
    workers = srv.worker_pids()
    os.kill(srv.master, signal.SIGKILL)
    assert wait_until(lambda: not any(alive(pid) for pid in workers), 10)
    assert "the master is gone" in srv.log_text()
    with socket.socket() as again:              # the port is free for the next master
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", nfs_port))


def test_workers_0_serves_in_one_process(daemon):
    srv = daemon(workers=0)
    assert srv.start("--workers", "0").returncode == 0
    assert "started (pid" in srv.log_text()
    title = " ".join(psutil.Process(srv.master).cmdline())
    assert title.startswith("glusterfs: server -f") and srv.children() == []
    assert serves(srv)


@pytest.mark.parametrize("value", ["-1", "65", "many"])
def test_a_bad_worker_count_is_refused(tmp_path, value):
    result = run("--workers", value, "-f", str(tmp_path / "nfs.vol"))
    assert result.returncode == 1 and "not a worker count" in result.stderr
