"""The daemon's life as ops see it: start, second instance, signals, stop."""
import os
import signal
import time

import psutil
import pytest

from daemon_helpers import alive, read_pid, run, stop, wait_for

POSIX_VOL = """volume export
    type storage/posix
    option directory {directory}
end-volume
"""


@pytest.fixture
def setup(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    volfile = tmp_path / "nfs.vol"
    volfile.write_text(POSIX_VOL.format(directory=export))
    paths = {"vol": str(volfile), "pid": str(tmp_path / "run" / "nfs.pid"),
             "log": str(tmp_path / "log" / "nfs.log"), "dumps": str(tmp_path / "dumps"),
             "export": str(export)}
    yield paths
    if os.path.exists(paths["pid"]):
        try:
            stop(read_pid(paths["pid"]), signal.SIGKILL)
        except ValueError:
            pass


def start(paths, *extra):
    return run("-f", paths["vol"], "-p", paths["pid"], "-l", paths["log"],
               "--statedump-dir", paths["dumps"], *extra)


def log_text(paths) -> str:
    with open(paths["log"]) as handle:
        return handle.read()


def test_full_daemon_life(setup, tmp_path):
    result = start(setup)
    assert result.returncode == 0, result.stderr
    pid = read_pid(setup["pid"])
    assert alive(pid)
    assert "glusterfs: server -f" in " ".join(psutil.Process(pid).cmdline())

    second = start(setup)
    assert second.returncode != 0
    assert f"locked by pid {pid}" in second.stderr
    assert read_pid(setup["pid"]) == pid

    os.rename(setup["log"], setup["log"] + ".1")
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: os.path.exists(setup["log"]) and "nothing to reload" in log_text(setup))

    os.kill(pid, signal.SIGUSR1)
    assert wait_for(lambda: os.path.isdir(setup["dumps"]) and any(
        name.startswith(f"glusterdump.{pid}.dump.") for name in os.listdir(setup["dumps"])))
    dump_name = next(n for n in os.listdir(setup["dumps"]) if not n.endswith(".tmp"))
    dump = open(os.path.join(setup["dumps"], dump_name)).read()
    assert "[xlator.export]" in dump and "rss_bytes=" in dump and "DUMP-END-TIME" in dump

    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not alive(pid))
    assert not os.path.exists(setup["pid"])
    assert "shutting down gracefully" in log_text(setup)


def test_reload_applies_options_and_refuses_a_bad_volfile(setup):
    assert start(setup).returncode == 0
    pid = read_pid(setup["pid"])
    with open(setup["vol"], "a") as handle:
        handle.write("# a comment changes the checksum only\n")
    text = open(setup["vol"]).read()
    open(setup["vol"], "w").write(text.replace("end-volume", "    option read-only on\nend-volume", 1))
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: "read-only=True" in log_text(setup)), log_text(setup)
    open(setup["vol"], "w").write(text.replace("type storage/posix", "type storage/nothing"))
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: "reload refused" in log_text(setup))
    assert alive(pid)
    assert stop(pid)


def test_sigquit_is_a_fast_stop(setup):
    assert start(setup).returncode == 0
    pid = read_pid(setup["pid"])
    assert stop(pid, signal.SIGQUIT)
    assert not os.path.exists(setup["pid"])
    assert "shutting down now" in log_text(setup)


def test_bad_volfile_exits_1_with_file_and_line(setup):
    with open(setup["vol"], "w") as handle:
        handle.write("volume export\n    type storage/posix\n    option directry /x\nend-volume\n")
    result = start(setup)
    assert result.returncode == 1
    assert f"{setup['vol']}:3: option 'directry' of volume 'export': unknown option" in result.stderr
    assert not os.path.exists(setup["pid"])


def test_init_failure_is_reported_by_the_parent(setup):
    os.rmdir(setup["export"])
    result = start(setup)
    assert result.returncode == 1
    assert "initialisation failed" in result.stderr and "directory" in result.stderr
    assert not os.path.exists(setup["pid"])


def test_volfile_check(setup):
    result = run("--volfile-check", "-f", setup["vol"])
    assert result.returncode == 0 and "OK" in result.stdout


@pytest.mark.parametrize("args, words", [
    (["-s", "localhost", "--volfile-id", "gluster/nfs"], "not supported yet"),
    (["-s", "localhost"], "go together"),
    (["-s", "bad host!", "--volfile-id", "x"], "not a host name"),
    (["--volfile-server-port", "70000", "-f", "x"], "not a port"),
    (["-L", "LOUD", "-f", "x"], "invalid choice"),
    (["--xlator-option", "nodot=1", "-f", "x"], "XLATOR.KEY=VALUE"),
    ([], "no volfile given"),
    (["-f", "/nonexistent/nfs.vol"], "cannot read the volfile"),
])
def test_bad_command_lines_exit_1(args, words):
    result = run(*args)
    assert result.returncode == 1
    assert words in result.stderr


def test_unwritable_log_file_is_named(setup, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = run("-f", setup["vol"], "-p", setup["pid"], "-l", str(blocker / "nfs.log"))
    assert result.returncode == 1 and "cannot open log file" in result.stderr


def test_xlator_options_listing():
    result = run("--xlator-options", "storage/posix")
    assert result.returncode == 0 and "directory <path>" in result.stdout
    assert run("--xlator-options", "storage/nothing").returncode == 1


def test_foreground_debug_logs_to_the_console(setup):
    import subprocess
    from daemon_helpers import env, glusterfs_cmd
    proc = subprocess.Popen(glusterfs_cmd() + ["--debug", "-f", setup["vol"]], stderr=subprocess.PIPE,
                            text=True, env=env())
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "started" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "started" in line and "] I [" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
