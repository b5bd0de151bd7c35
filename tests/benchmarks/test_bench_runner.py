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


class _StealSequence:
    """Stands in for host.CpuWindow: each window reports the next steal figure."""

    def __init__(self, figures):
        self.figures = list(figures)
        self.opened = 0

    def __call__(self):
        self.opened += 1
        figure = self.figures.pop(0)
        return type("Window", (), {"steal_pct": lambda _self: figure})()


def steal_config(fio, tmp_path, limit=10.0, attempts=3, jobs=(RAND_READ,)):
    return RunConfig(fio=fio, quick=True, rounds=1, jobs=list(jobs), workdir=tmp_path / "work",
                     servers=(), local=True, log=lambda _t: None, steal_limit_pct=limit,
                     attempts=attempts)


def test_a_disturbed_job_is_measured_again_and_the_least_disturbed_kept(
        fake_fio, tmp_path, monkeypatch):
    steal = _StealSequence([35.0, 4.0])
    monkeypatch.setattr(runner_mod, "CpuWindow", steal)
    runs = Runner(steal_config(fake_fio, tmp_path)).run()
    assert steal.opened == 2
    assert len(runs) == 1
    assert runs[0]["figures"]["host_steal_pct"] == 4.0
    assert [d["host_steal_pct"] for d in runs[0]["disturbed"]] == [35.0]


def test_attempts_stop_at_the_cap_and_keep_the_least_steal(fake_fio, tmp_path, monkeypatch):
    steal = _StealSequence([30.0, 12.0, 50.0])
    monkeypatch.setattr(runner_mod, "CpuWindow", steal)
    runs = Runner(steal_config(fake_fio, tmp_path, attempts=3)).run()
    assert steal.opened == 3        # the third is still above the limit: no fourth
    assert runs[0]["figures"]["host_steal_pct"] == 12.0
    assert sorted(d["host_steal_pct"] for d in runs[0]["disturbed"]) == [30.0, 50.0]


def test_no_limit_or_a_spent_budget_measures_once(fake_fio, tmp_path, monkeypatch):
    steal = _StealSequence([90.0])
    monkeypatch.setattr(runner_mod, "CpuWindow", steal)
    runs = Runner(steal_config(fake_fio, tmp_path, limit=None)).run()
    assert steal.opened == 1 and "disturbed" not in runs[0]
    steal = _StealSequence([90.0])
    monkeypatch.setattr(runner_mod, "CpuWindow", steal)
    runner = Runner(steal_config(fake_fio, tmp_path))
    runner.retries_left = 0
    assert "disturbed" not in runner.run()[0] and steal.opened == 1


def test_a_failed_attempt_after_a_disturbed_one_keeps_the_first(
        fake_fio, tmp_path, monkeypatch):
    monkeypatch.setattr(runner_mod, "CpuWindow", _StealSequence([40.0, 1.0]))
    runner = Runner(steal_config(fake_fio, tmp_path))
    real_fio = runner._fio
    calls = []

    def fio_failing_the_second_time(job, server):
        calls.append(job.name)
        if len(calls) == 2:
            raise runner_mod.fiolib.FioError("fio exited with status 1")
        return real_fio(job, server)

    runner._fio = fio_failing_the_second_time
    runs = runner.run()
    assert calls == ["randread", "randread"]
    assert runs[0]["figures"]["host_steal_pct"] == 40.0 and "error" not in runs[0]


class _FakeServer:
    name = "ours"

    def __init__(self):
        self.starts = 0
        self.proc = object()

    @property
    def pid(self):
        return 1000 + self.starts

    def stop(self):
        self.proc = None

    def start(self):
        self.starts += 1
        self.proc = object()


def test_a_disturbed_metadata_job_is_measured_again_on_a_restarted_server(tmp_path):
    from benchmarks.jobs import METADATA
    runner = Runner(steal_config("fio", tmp_path, jobs=(METADATA,)))
    server = _FakeServer()
    runner.sampler = type("Sampler", (), {"pid": server.pid})()
    seen = []

    def metadata(job, srv):
        seen.append(srv.starts)
        return {"meta_ops_s": 1.0, "ls_entries": 5, "ls_s": 0.1,
                "host_steal_pct": 25.0 if len(seen) == 1 else 3.0}

    runner._metadata = metadata
    runner.run_job("[t]", "ours", 1, METADATA, server)
    assert seen == [0, 1]           # the second listing is the restarted server's first
    assert runner.sampler.pid == 1001
    assert runner.runs[0]["figures"]["host_steal_pct"] == 3.0
    assert runner.retries_left == runner_mod.RETRY_BUDGET - 1


def test_a_restart_that_fails_keeps_the_measurement_and_ends_the_attempts(tmp_path):
    from benchmarks.jobs import METADATA
    runner = Runner(steal_config("fio", tmp_path, jobs=(METADATA,)))
    server = _FakeServer()

    def refuse():
        raise runner_mod.ServerError("port 2049 on 127.0.0.1 is taken")

    server.start = refuse
    runner._metadata = lambda job, srv: {"meta_ops_s": 1.0, "ls_entries": 5, "ls_s": 0.1,
                                         "host_steal_pct": 60.0}
    runner.run_job("[t]", "ours", 1, METADATA, server)
    assert runner.runs[0]["figures"]["host_steal_pct"] == 60.0
    assert server.proc is None      # _server_round then records the later jobs as failed
