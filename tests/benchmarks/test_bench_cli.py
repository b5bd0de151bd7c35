"""Argument errors are refused before anything is installed or started; SIGTERM and
Ctrl-C end a run through the same cleanup."""
import os
import signal
import time

import pytest

from benchmarks.cli import main


@pytest.mark.parametrize("argv,message", [
    (["--rounds", "0"], "--rounds"),
    (["--servers", "knfsd"], "--servers"),
    (["--servers", ","], "--servers"),
    (["--jobs", "seqwrite,bogus"], "unknown job"),
    (["--profiler", "perf"], "invalid choice"),
    (["--ours-option", "stage-threads=2"], "XL.KEY=VALUE"),
    (["--ours-option", "nfs-server.nfs.stage-threads"], "XL.KEY=VALUE"),
    (["--attempts", "0"], "--attempts"),
    (["--steal-limit", "-5"], "--steal-limit"),
    (["--steal-limit", "100"], "--steal-limit"),
    (["--steal-limit", "lots"], "invalid float"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_no_setup_without_a_built_fio(monkeypatch, tmp_path):
    import benchmarks.cli as cli
    monkeypatch.setattr(cli, "HERE", tmp_path)
    with pytest.raises(SystemExit, match="no fio"):
        cli.ensure_setup(skip=True)


class _RunnerStoppedMidRun:
    """A Runner whose run is ended by a SIGTERM to this process while it 'measures'."""
    cleaned_up = False

    def __init__(self, config):
        self.config = config

    def run(self):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)          # interrupted long before: the handler raises
            raise AssertionError("SIGTERM did not interrupt the run")
        finally:
            _RunnerStoppedMidRun.cleaned_up = True


def test_sigterm_unwinds_like_ctrl_c_and_exits_143(monkeypatch, capsys):
    import benchmarks.cli as cli
    monkeypatch.setattr(cli, "ensure_setup", lambda skip: "/nonexistent/fio")
    monkeypatch.setattr(cli, "Runner", _RunnerStoppedMidRun)
    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert cli.main(["--no-setup", "--jobs", "randread"]) == 143
    assert time.monotonic() - started < 5
    assert _RunnerStoppedMidRun.cleaned_up           # the finally blocks ran
    assert "stopped by SIGTERM" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before   # the caller's handler is back


def test_ctrl_c_still_exits_130(monkeypatch, capsys):
    import benchmarks.cli as cli

    class Interrupted(_RunnerStoppedMidRun):
        def run(self):
            raise KeyboardInterrupt
    monkeypatch.setattr(cli, "ensure_setup", lambda skip: "/nonexistent/fio")
    monkeypatch.setattr(cli, "Runner", Interrupted)
    assert cli.main(["--no-setup", "--jobs", "randread"]) == 130
    assert "stopped by Ctrl-C" in capsys.readouterr().err
