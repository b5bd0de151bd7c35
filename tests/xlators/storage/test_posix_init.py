"""storage/posix: registration, options, init errors, volume id, statedump."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid

import pytest

from glusterfsd.options import OptionError
from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, lookup_type
from xlators.storage import posix as posix_module
from xlators.storage.posix import PosixXlator

MAIN = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture
def public_tmp():
    """A directory other users can reach (pytest's tmp_path is root-only)."""
    path = tempfile.mkdtemp(prefix="posix-test-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def init_error(tmp_path, options) -> OptionError:
    xl = PosixXlator("bad", options, [])
    with pytest.raises(OptionError) as info:
        xl.init()
    return info.value


def run_as(uid: int, code: str) -> dict:
    """Run `code` in a child process as uid/gid `uid`; it prints one JSON line."""
    # everything is imported first: the interpreter's own files may be root-only
    script = textwrap.dedent("""
        import errno, json, os, sys, uuid
        from glusterfsd.options import OptionError
        from glusterfsd.xlator import ROOT_CALLER, ROOT_GFID
        from xlators.storage.posix import PosixXlator
        os.setgroups([])
        os.setgid(%d)
        os.setuid(%d)
    """) % (uid, uid)
    script += textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], cwd=MAIN, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_registered_type():
    assert lookup_type("storage/posix") is PosixXlator
    assert PosixXlator.children_range == (0, 0)


def test_option_table_parses_volfile_text():
    table = PosixXlator.option_table()
    values = table.validate({"directory": "/srv/export", "read-only": "on", "anonuid": "42",
                             "fd-cache-size": "16", "volume-id": str(uuid.UUID(int=5))})
    assert values["read-only"] is True and values["anonuid"] == 42
    assert values["fd-cache-size"] == 16
    with pytest.raises(OptionError):
        table.validate({"directory": "relative/path"})
    with pytest.raises(OptionError):
        table.validate({"fd-cache-size": "0"})
    with pytest.raises(OptionError):
        table.validate({"no-such-option": "1"})
    with pytest.raises(OptionError):
        table.validate({"volume-id": "not-a-uuid"})


def test_init_errors_name_the_option(tmp_path):
    assert init_error(tmp_path, {}).key == "directory"
    assert "required" in str(init_error(tmp_path, {}))
    missing = init_error(tmp_path, {"directory": str(tmp_path / "nope")})
    assert missing.key == "directory" and "does not exist" in str(missing)
    (tmp_path / "file").write_bytes(b"x")
    not_dir = init_error(tmp_path, {"directory": str(tmp_path / "file")})
    assert "not a directory" in str(not_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_init_error_for_an_inaccessible_directory(public_tmp):
    locked = os.path.join(public_tmp, "locked")
    os.mkdir(locked, 0o700)
    result = run_as(1000, f"""
        try:
            PosixXlator("x", {{"directory": {str(locked)!r}}}, []).init()
            print(json.dumps({{"error": None}}))
        except OptionError as err:
            print(json.dumps({{"error": str(err), "key": err.key}}))
    """)
    assert result["key"] == "directory" and "not accessible" in result["error"]


def test_volume_id_is_generated_kept_and_checked(make_store, tmp_path):
    first = make_store()
    assert len(first.volume_id) == 16
    assert os.getxattr(first.directory, "trusted.glusterfs.volume-id") == first.volume_id
    assert make_store().volume_id == first.volume_id  # stable across restarts
    same = make_store({"volume-id": uuid.UUID(bytes=first.volume_id)})
    assert same.volume_id == first.volume_id
    other = uuid.uuid4()
    err = init_error(tmp_path, {"directory": first.directory, "volume-id": other})
    assert err.key == "volume-id" and "does not match" in str(err)


def test_volume_id_option_is_written_to_a_new_store(make_store, tmp_path):
    wanted = uuid.uuid4()
    store = make_store({"volume-id": wanted}, directory=str(tmp_path / "fresh"))
    assert store.volume_id == wanted.bytes
    assert os.getxattr(store.directory, "trusted.glusterfs.volume-id") == wanted.bytes


def test_store_inside_another_store_is_refused(make_store, tmp_path):
    outer = make_store()
    sub, _, _ = outer.mkdir(ROOT, ROOT_GFID, b"sub", 0o755)
    err = init_error(tmp_path, {"directory": os.path.join(outer.directory, "sub")})
    assert err.key == "directory" and "another store" in str(err)


def test_brick_owner_options(make_store):
    store = make_store({"brick-uid": 1234, "brick-gid": 4321})
    st = os.stat(store.directory)
    assert (st.st_uid, st.st_gid) == (1234, 4321)


def test_descriptor_caches_fit_the_fd_limit(make_store, monkeypatch):
    monkeypatch.setattr(posix_module.resource, "getrlimit", lambda what: (200, 200))
    store = make_store({"fd-cache-size": 1000, "dir-fd-cache-size": 1000})
    assert store.fd_cache.capacity + store.index._dirs.capacity <= 100


def test_reconfigure_read_only_takes_effect(store):
    store.reconfigure({"read-only": True})
    with pytest.raises(OSError) as info:
        store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    assert info.value.errno == errno.EROFS
    store.reconfigure({"read-only": False, "fd-cache-size": 7})
    store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    assert store.fd_cache.capacity == 7


def test_dump_private_figures(store):
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o644)
    store.read(ROOT, fd, 0, 1)
    store.release(fd)
    store.stat(ROOT, f.gfid)
    figures = store.dump_private()
    assert figures["directory"] == store.directory
    assert figures["volume-id"] == str(uuid.UUID(bytes=store.volume_id))
    assert figures["gfid-xattr"] == "trusted.gfid"
    assert figures["fd-cache-entries"] == 1 and figures["fd-cache-hits"] >= 1
    assert figures["index-resolved"] >= 1
    assert figures["read-only"] is False


def test_fini_twice_is_harmless(make_store):
    store = make_store()
    store.fini()
    store.fini()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_unprivileged_store_uses_user_xattrs(public_tmp):
    export = os.path.join(public_tmp, "mine")
    os.mkdir(export)
    os.chown(export, 1000, 1000)
    result = run_as(1000, f"""
        path = {str(export)!r}
        xl = PosixXlator("x", {{"directory": path}}, [])
        xl.init()
        fd, iatt, _, _ = xl.create(ROOT_CALLER, ROOT_GFID, b"f", os.O_RDWR, 0o644)
        xl.release(fd)
        try:
            xl.symlink(ROOT_CALLER, ROOT_GFID, b"l", b"t", 0o777)
            symlink = "made"
        except OSError as err:
            symlink = "EOPNOTSUPP" if err.errno == errno.EOPNOTSUPP else str(err)
        xl.fini()
        again = PosixXlator("x", {{"directory": path}}, [])
        again.init()
        out = {{"key": again.index.xattr, "uid": again.stat(ROOT_CALLER, iatt.gfid).uid,
               "xattr": os.getxattr(path + "/f", "user.glusterfs.gfid") == iatt.gfid,
               "symlink": symlink, "left": os.path.lexists(path + "/l")}}
        again.fini()
        print(json.dumps(out))
    """)
    assert result == {"key": "user.glusterfs.gfid", "uid": 1000, "xattr": True,
                      "symlink": "EOPNOTSUPP", "left": False}


def test_many_instances_initialising_one_new_store_at_once_agree(tmp_path):
    """Prefork workers of a fresh export race to write its root gfid, xattr
    namespace and volume id; every one must boot and see the same volume."""
    import threading

    from storage_threads import run_in_threads
    from xlators.storage.identity import reset_thread
    export = tmp_path / "fresh"
    export.mkdir()
    stores, errors = [], []
    start = threading.Barrier(8)

    def boot():
        try:
            xl = PosixXlator("race", {"directory": str(export)}, [])
            start.wait(timeout=10)
            xl.init()
            stores.append(xl)
        except Exception as err:  # collected and asserted below
            errors.append(err)
        finally:
            reset_thread()

    try:
        run_in_threads(boot, [()] * 8, timeout=30)
        assert errors == []
        assert len(stores) == 8
        assert len({xl.volume_id for xl in stores}) == 1
    finally:
        for xl in stores:
            xl.fini()
