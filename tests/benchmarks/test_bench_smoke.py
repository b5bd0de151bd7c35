"""End-to-end smoke: `python -m benchmarks --quick` against both servers.

Part of the suite (CI runs it): it proves the harness still measures every job on our
server and on NFS-Ganesha, the way the README's figures are made.  It needs what
`contrib/setup.sh --test` installs (NFS-Ganesha, fio built with libnfs; the harness
installs anything missing itself), runs as root, binds 127.0.0.1:2049 (both servers in
turn) and takes about a minute.  BENCH_SMOKE=0 leaves it out; it is skipped, saying why,
when something else holds port 2049.
"""
import errno
import json
import os
import socket
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _nfs_port_taken() -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 2049))
        except OSError as err:
            return err.errno == errno.EADDRINUSE
    return False


pytestmark = [
    pytest.mark.skipif(os.environ.get("BENCH_SMOKE") == "0", reason="BENCH_SMOKE=0"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the harness installs packages and runs as root"),
    pytest.mark.skipif(_nfs_port_taken(), reason="port 2049 is held by another NFS server"),
]


@pytest.mark.timeout(900)
def test_quick_run_measures_every_job_on_both_servers(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick",
                             "--results-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [json_path] = tmp_path.glob("*-quick.json")
    doc = json.loads(json_path.read_text())
    for row in doc["summary"]:
        if row["job"] == "seqread-cold" and not row["median"]:
            continue                  # a machine that cannot drop caches skips it
        assert row["median"].get("ours", 0) > 0, row
        assert row["median"].get("ganesha", 0) > 0, row
        assert row["ratio_ours_vs_ganesha"] is not None
    for row in doc["server_cpu"]:         # the server's CPU for each job, both servers
        if row["job"] == "seqread-cold" and not row["median"]:
            continue
        assert row["median"].get("ours", 0) > 0 and row["median"].get("ganesha", 0) > 0, row
    measured = [run["figures"] for run in doc["runs"] if "figures" in run]
    assert measured and all(0.0 <= f["host_steal_pct"] <= 100.0 for f in measured)
    assert "; device " in doc["machine"]["export_fs"]
    assert list(tmp_path.glob("*-quick.png")) and list(tmp_path.glob("*-quick.md"))


@pytest.mark.timeout(300)
def test_sigterm_stops_the_servers_it_started(tmp_path):
    """`kill <harness>` (how a background run is stopped) leaves nothing running."""
    harness = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "--quick", "--jobs", "randread", "--servers",
         "ours", "--no-local", "--results-dir", str(tmp_path), "--workdir",
         str(tmp_path / "work")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and harness.poll() is None:
            for proc in psutil.Process(harness.pid).children(recursive=True):
                seen.setdefault(proc.pid, proc)
            servers = [p for p in seen.values() if _is_our_server(p)]
            if servers and _nfs_port_taken():
                break
            time.sleep(0.1)
        assert harness.poll() is None, "the harness ended before our server was up"
        time.sleep(1.0)                     # into the job: fio is running against it
        for proc in psutil.Process(harness.pid).children(recursive=True):
            seen.setdefault(proc.pid, proc)
        harness.send_signal(signal.SIGTERM)
        out, err = harness.communicate(timeout=120)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert harness.returncode == 143, out[-2000:] + err[-2000:]
    assert "stopped by SIGTERM" in err
    left = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [(p.pid, p.cmdline()) for p in left]
    assert not _nfs_port_taken()
    assert not list(tmp_path.glob("*-quick.json"))      # an interrupted run writes nothing


def _is_our_server(proc: psutil.Process) -> bool:
    try:
        return proc.cmdline()[0].startswith("glusterfs: master")     # its process title
    except psutil.Error:
        return False
