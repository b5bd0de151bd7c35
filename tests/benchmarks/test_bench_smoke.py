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
import subprocess
import sys
from pathlib import Path

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
