import os
import subprocess
import sys

import pytest

from glusterfsd.pidfile import Pidfile, PidfileError


def test_acquire_writes_pid_and_release_removes(tmp_path):
    path = tmp_path / "run" / "nfs.pid"
    pidfile = Pidfile(str(path))
    pidfile.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    pidfile.release()
    assert not path.exists()


def test_second_holder_is_refused_with_the_pid(tmp_path):
    path = tmp_path / "nfs.pid"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {os.getcwd()!r})
from glusterfsd.pidfile import Pidfile
p = Pidfile({str(path)!r}); p.acquire(); print("locked", flush=True); time.sleep(30)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PidfileError, match=f"locked by pid {holder.pid}"):
            Pidfile(str(path)).acquire()
        assert path.read_text() == f"{holder.pid}\n"  # the refused attempt changed nothing
    finally:
        holder.kill()
        holder.wait()


def test_stale_pidfile_is_taken_over(tmp_path):
    path = tmp_path / "nfs.pid"
    path.write_text("999999\n")
    pidfile = Pidfile(str(path))
    pidfile.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    pidfile.release()


def test_unwritable_location_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PidfileError, match="cannot open pidfile"):
        Pidfile(str(blocker / "nfs.pid")).acquire()


def test_release_leaves_a_file_that_is_no_longer_ours(tmp_path):
    path = tmp_path / "nfs.pid"
    pidfile = Pidfile(str(path))
    pidfile.acquire()
    os.unlink(path)
    path.write_text("12345\n")  # someone replaced it
    pidfile.release()
    assert path.read_text() == "12345\n"


def test_running_tells_live_zombie_and_reaped_processes_apart():
    import time

    from glusterfsd.pidfile import running
    assert running(os.getpid())
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert running(child.pid)
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while running(child.pid) and time.monotonic() < deadline:   # a zombie until reaped
        time.sleep(0.01)
    assert not running(child.pid)
    child.wait()
    assert not running(child.pid)
