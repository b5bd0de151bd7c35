"""The persistent mount list (rmtab): survives restarts, shrugs off damage."""
from __future__ import annotations

import os
import threading

import pytest

from mount import rmtab as rmtab_mod
from mount.rmtab import Rmtab, RmtabFormatError, parse, render
from log_capture import capture_log


@pytest.fixture
def mount_log():
    """Records of the 'glusterfs.mount3' logger during the test."""
    yield from capture_log("mount3")


def test_add_remove_and_dedupe_in_memory():
    tab = Rmtab(None)
    assert not tab.persistent
    tab.add("10.0.0.1", "/gv0")
    tab.add("10.0.0.1", "/gv0")          # a retransmitted MNT lists once
    tab.add("10.0.0.2", "/gv0/sub")
    tab.add("10.0.0.1", "/gv1")
    assert tab.entries() == [("10.0.0.1", "/gv0"), ("10.0.0.2", "/gv0/sub"), ("10.0.0.1", "/gv1")]
    tab.remove("10.0.0.1", "/gv0")
    tab.remove("10.0.0.9", "/nothing")    # removing what is not there is harmless
    assert tab.entries() == [("10.0.0.2", "/gv0/sub"), ("10.0.0.1", "/gv1")]
    tab.remove_host("10.0.0.1")
    assert tab.entries() == [("10.0.0.2", "/gv0/sub")]
    assert len(tab) == 1


def test_disabled_value_means_memory_only(tmp_path):
    assert Rmtab.from_option("/-").path is None
    assert Rmtab.from_option(None).path is None
    assert Rmtab("/-").path is None
    path = str(tmp_path / "rmtab")
    assert Rmtab.from_option(path).path == path


def test_entries_survive_a_restart(tmp_path):
    path = str(tmp_path / "nfs" / "rmtab")   # parent directory created on first write
    first = Rmtab(path)
    first.add("192.168.1.7", "/gv0")
    first.add("::1", "/gv0/dir with space")
    del first
    second = Rmtab(path)
    assert second.entries() == [("192.168.1.7", "/gv0"), ("::1", "/gv0/dir with space")]
    text = open(path).read()
    assert text == ("hostname-0=192.168.1.7\nmountpoint-0=/gv0\n"
                    "hostname-1=::1\nmountpoint-1=/gv0/dir with space\n")
    # no temporary files are left next to it
    assert sorted(os.listdir(tmp_path / "nfs")) == ["rmtab", "rmtab.lock"]


def test_two_instances_share_the_file(tmp_path):
    """Two workers (two Rmtab objects on one file) see each other's mounts."""
    path = str(tmp_path / "rmtab")
    one, two = Rmtab(path), Rmtab(path)
    one.add("h1", "/gv0")
    two.add("h2", "/gv0")
    assert one.entries() == [("h1", "/gv0"), ("h2", "/gv0")]
    one.remove_host("h2")
    assert two.entries() == [("h1", "/gv0")]


@pytest.mark.parametrize("content", [
    b"this is not an rmtab\n",
    b"hostname-0=h\n",                                   # no mountpoint for it
    b"hostname-0=h\nmountpoint-0=/a\nhostname-0=x\n",    # repeated index
    b"hostname-0=\nmountpoint-0=/a\n",                    # empty value
    b"\xff\xfe\x00garbage",                               # not text
])
def test_corrupt_file_is_treated_as_empty_and_then_replaced(tmp_path, content, mount_log):
    path = tmp_path / "rmtab"
    path.write_bytes(content)
    tab = Rmtab(str(path))
    assert tab.entries() == []
    assert any("corrupt" in r.getMessage() for r in mount_log)
    tab.add("h", "/gv0")
    assert Rmtab(str(path)).entries() == [("h", "/gv0")]


def test_unreadable_file_is_treated_as_empty(tmp_path, mount_log):
    path = tmp_path / "rmtab"
    path.mkdir()                 # a directory where the file should be: reading fails
    tab = Rmtab(str(path))
    assert tab.entries() == []
    assert tab.entries() == []
    assert sum("cannot read rmtab" in r.getMessage() for r in mount_log) == 1   # logged once
    tab.add("h", "/gv0")         # writing fails too: kept in memory, no exception
    assert tab.entries() == [("h", "/gv0")]
    assert any("cannot update rmtab" in r.getMessage() for r in mount_log)


def test_unwritable_location_keeps_the_list_in_memory_then_recovers(tmp_path, mount_log):
    blocker = tmp_path / "state"
    blocker.write_text("x")
    path = blocker / "rmtab"
    tab = Rmtab(str(path))                # parent is a regular file: cannot create
    tab.add("h", "/gv0")
    tab.add("h2", "/gv1")
    tab.remove("h", "/gv0")
    assert tab.entries() == [("h2", "/gv1")]
    assert sum("cannot update rmtab" in r.getMessage() for r in mount_log) == 1
    blocker.unlink()                      # the operator fixes the location
    tab.add("h3", "/gv0")
    assert Rmtab(str(path)).entries() == [("h2", "/gv1"), ("h3", "/gv0")]   # memory was kept
    assert any("writable again" in r.getMessage() for r in mount_log)


def test_oversized_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(rmtab_mod, "MAX_FILE_BYTES", 64)
    path = tmp_path / "rmtab"
    path.write_text(render([("h%d" % i, "/gv0") for i in range(20)]))
    assert Rmtab(str(path)).entries() == []


def test_values_that_would_break_the_format_are_refused():
    tab = Rmtab(None)
    with pytest.raises(ValueError):
        tab.add("h\nmountpoint-9=/x", "/gv0")
    with pytest.raises(ValueError):
        tab.add("h", "")
    assert tab.entries() == []


def test_parse_and_render_round_trip():
    entries = [("a", "/x"), ("b", "/y=z")]
    assert parse(render(entries)) == entries
    assert parse("") == []
    with pytest.raises(RmtabFormatError):
        parse("mountpoint-3=/x\n")


def test_concurrent_adds_lose_nothing(tmp_path):
    path = str(tmp_path / "rmtab")
    tabs = [Rmtab(path) for _ in range(4)]

    def work(n):
        for i in range(10):
            tabs[n].add(f"10.0.{n}.{i}", "/gv0")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert len(Rmtab(path).entries()) == 40
