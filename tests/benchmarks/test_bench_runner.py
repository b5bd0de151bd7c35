"""The runner's bookkeeping, run on the local (psync) path with a stand-in fio that
prints fio's JSON shape, so no server and no real fio are needed."""
import json
import sys
from datetime import datetime, timezone

import pytest

from benchmarks import runner as runner_mod
from benchmarks.jobs import RAND_READ, SEQ_READ_COLD, SEQ_WRITE
from benchmarks.procs import RunResult
from benchmarks.runner import RunConfig, Runner, describe, drop_page_cache, run_id

FAKE_FIO = r'''#!{python}
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
if os.environ.get("FAKE_FIO_FAIL") == args["name"]:
    sys.stderr.write("fio: simulated failure\n")
    sys.exit(1)
direction = "read" if "read" in args["rw"] else "write"
size = int(args["size"])
moved = size if "--time_based" not in sys.argv else 4096 * 1000
section = {{"io_bytes": moved, "bw_bytes": 100 << 20, "iops": 1000.0, "runtime": 10,
           "clat_ns": {{"mean": 1000.0, "percentile": {{"50.000000": 900, "99.000000": 2000}}}}}}
empty = {{"io_bytes": 0, "bw_bytes": 0, "iops": 0.0, "runtime": 0, "clat_ns": {{"mean": 0.0}}}}
job = {{"jobname": args["name"], "error": 0, "read": empty, "write": empty}}
job[direction] = section
print(json.dumps({{"jobs": [job]}}))
'''


@pytest.fixture
def fake_fio(tmp_path):
    path = tmp_path / "fio"
    path.write_text(FAKE_FIO.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def no_drop_caches(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_mod, "DROP_CACHES", tmp_path / "missing" / "drop_caches")


def config(fio, tmp_path, rounds=2):
    return RunConfig(fio=fio, quick=True, rounds=rounds, jobs=[SEQ_WRITE, SEQ_READ_COLD, RAND_READ],
                     workdir=tmp_path / "work", servers=(), local=True, log=lambda _t: None)


def test_local_rounds_record_every_job(fake_fio, tmp_path, no_drop_caches):
    runs = Runner(config(fake_fio, tmp_path)).run()
    assert [(r["round"], r["job"]) for r in runs] == [
        (1, "seqwrite"), (1, "seqread-cold"), (1, "randread"),
        (2, "seqwrite"), (2, "seqread-cold"), (2, "randread")]
    assert all(r["server"] == "local" for r in runs)
    write = runs[0]["figures"]
    assert write["io_bytes"] == SEQ_WRITE.quick_size and write["bw_mib_s"] == 100.0
    assert write["wall_s"] > 0
    assert 0.0 <= write["host_steal_pct"] <= 100.0
    assert "cannot drop the page cache" in runs[1]["skipped"]
    assert runs[2]["figures"]["iops"] == 1000.0
    assert (tmp_path / "work" / "local").is_dir()


def test_a_failing_job_is_recorded_and_the_run_goes_on(fake_fio, tmp_path, no_drop_caches,
                                                       monkeypatch):
    monkeypatch.setenv("FAKE_FIO_FAIL", "seqwrite")
    runs = Runner(config(fake_fio, tmp_path, rounds=1)).run()
    assert "simulated failure" in runs[0]["error"]
    assert "figures" in runs[2]


def test_drop_page_cache_reports_why_not(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_mod, "DROP_CACHES", tmp_path / "nope" / "drop_caches")
    assert "cannot drop the page cache" in drop_page_cache()


def test_metadata_output_checks():
    with pytest.raises(RuntimeError, match="status 1"):
        runner_mod._metadata_json(RunResult(1, "", "mount failed", 0.1))
    with pytest.raises(RuntimeError, match="no JSON"):
        runner_mod._metadata_json(RunResult(0, "", "", 0.1))
    assert runner_mod._metadata_json(RunResult(0, json.dumps({"ls_s": 1.0}) + "\n", "", 0.1)) \
        == {"ls_s": 1.0}


def test_unknown_server_name():
    with pytest.raises(ValueError, match="unknown server"):
        runner_mod.make_server("knfsd", runner_mod.Path("/tmp"))


def test_run_id_and_describe():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert run_id(True, when) == "20260102T030405Z-quick"
    assert run_id(False, when) == "20260102T030405Z-full"
    assert describe({"bw_mib_s": 10.0, "iops": 10.0}) == "10 MiB/s, 10 IOPS"
    assert "ls -l of 5 entries" in describe({"meta_ops_s": 1.0, "ls_entries": 5, "ls_s": 0.1})
