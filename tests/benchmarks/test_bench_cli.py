"""Argument errors are refused before anything is installed or started."""
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
