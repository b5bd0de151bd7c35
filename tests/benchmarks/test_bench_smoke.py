"""End-to-end smoke: `python -m benchmarks --quick` against both servers.

Runs only when BENCH_SMOKE=1. Why gated and not always: it installs Debian packages
(apt) and builds fio on first use, binds ports 2049 and 111 (which other tests and a
running NFS server may hold), starts NFS-Ganesha as root, and takes about a minute
(plus ~1 minute of setup on a fresh machine), all of which the unit suite must not do.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.environ.get("BENCH_SMOKE") != "1",
                                reason="set BENCH_SMOKE=1 to run the benchmark smoke")


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
    assert list(tmp_path.glob("*-quick.png")) and list(tmp_path.glob("*-quick.md"))
