"""The LSB init script and the systemd unit, run for real."""
import os
import shutil
import subprocess

import pytest

from daemon_helpers import ROOT, alive, read_pid, wait_for, write_wrapper

SCRIPT = os.path.join(ROOT, "contrib", "init.d", "glusterfs-nfs")
UNIT = os.path.join(ROOT, "contrib", "glusterfs-nfs.service")


@pytest.fixture
def lsb(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    volfile = tmp_path / "nfs.vol"
    volfile.write_text(f"volume export\n type storage/posix\n option directory {export}\nend-volume\n")
    environment = dict(os.environ,
                       DAEMON=write_wrapper(str(tmp_path / "glusterfs")),
                       VOLFILE=str(volfile),
                       PIDFILE=str(tmp_path / "nfs.pid"),
                       LOGFILE=str(tmp_path / "nfs.log"),
                       DAEMON_OPTS=f"--statedump-dir {tmp_path}")

    def call(action):
        return subprocess.run([SCRIPT, action], env=environment, capture_output=True, text=True, timeout=60)
    yield call, environment
    call("stop")


def test_lsb_exit_codes(lsb):
    call, environment = lsb
    assert call("status").returncode == 3
    assert call("reload").returncode == 7
    started = call("start")
    assert started.returncode == 0, started.stdout + started.stderr
    pid = read_pid(environment["PIDFILE"])
    assert alive(pid)
    assert call("start").returncode == 0  # already running is success
    status = call("status")
    assert status.returncode == 0 and str(pid) in status.stdout
    assert call("reload").returncode == 0
    assert wait_for(lambda: "nothing to reload" in open(environment["LOGFILE"]).read())
    assert call("stop").returncode == 0
    assert not alive(pid)
    assert call("status").returncode == 3
    assert call("stop").returncode == 0  # stopping a stopped service is success
    assert call("bogus").returncode == 2


def test_lsb_dead_but_pidfile_and_missing_pieces(lsb, tmp_path):
    call, environment = lsb
    with open(environment["PIDFILE"], "w") as handle:
        handle.write("999999\n")
    assert call("status").returncode == 1
    environment["VOLFILE"] = str(tmp_path / "missing.vol")
    assert call("start").returncode == 6
    environment["DAEMON"] = str(tmp_path / "missing-binary")
    assert call("start").returncode == 5


def test_lsb_start_fails_on_a_bad_volfile(lsb):
    call, environment = lsb
    with open(environment["VOLFILE"], "w") as handle:
        handle.write("volume x\n type storage/posix\nend-volume\n")  # no directory
    result = call("start")
    assert result.returncode == 1
    assert "directory" in result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path):
    text = open(UNIT).read()
    binary = "/usr/local/sbin/glusterfs"
    if not os.access(binary, os.X_OK):  # verify checks ExecStart exists: point it at a wrapper
        text = text.replace(binary, write_wrapper(str(tmp_path / "glusterfs")))
    unit = tmp_path / "glusterfs-nfs.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Type=forking" in text and "PIDFile=/run/gluster/nfs.pid" in text and "-HUP" in text
