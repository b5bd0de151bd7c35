"""The leaner entry-op bodies: what they skip must not change what they answer.

CREATE and friends take one stat where they took two, give a new object its
gfid and index link in one root block, and draw gfids from os.urandom; the
entry-op scope is a plain class; as_root skips switching when the thread is
root already; RMDIR leaves the "is it a directory" check to rmdir(2).  Each
test pins one of those to the old behaviour."""
from __future__ import annotations

import errno
import os
import stat
import threading
import uuid

import pytest

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Caller
from xlators.storage import metadata_sync, syscalls
from xlators.storage.gfid_layout import BUCKET_LEN, entry_path, new_gfid
from xlators.storage.identity import Identity, reset_thread
from storage_calls import errno_of

USER = Caller(1000, 1000, (1000,))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching identities needs root")


# --- gfids and their index paths ------------------------------------------------
def test_new_gfids_are_distinct_version_4_uuids():
    made = {new_gfid() for _ in range(2000)}
    assert len(made) == 2000 and ROOT_GFID not in made
    for gfid in made:
        as_uuid = uuid.UUID(bytes=gfid)
        assert type(gfid) is bytes and len(gfid) == 16
        assert as_uuid.version == 4 and as_uuid.variant == uuid.RFC_4122


def test_entry_path_is_the_uuid_text_under_its_bucket():
    for _ in range(200):
        gfid = os.urandom(16)
        text = str(uuid.UUID(bytes=gfid))
        path = entry_path(gfid)
        assert path == f"{text[0:2]}/{text[2:4]}/{text}".encode()
        assert path[:BUCKET_LEN] == f"{text[0:2]}/{text[2:4]}".encode()
    assert entry_path(bytearray(ROOT_GFID)) == entry_path(ROOT_GFID)
    with pytest.raises(ValueError):
        entry_path(b"\x01" * 15)


# --- replies of new objects --------------------------------------------------------
def _same_as_now(store, parent, name, iatt):
    """The attributes a create-like fop answered are what a lookup sees right after."""
    assert store.lookup(ROOT, parent, name) == iatt


def test_new_objects_answer_their_attributes_after_the_gfid_and_index_link(store):
    fd, f, _, post = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o640)
    store.release(fd)
    _same_as_now(store, ROOT_GFID, b"f", f)
    assert f.nlink == 1 and f.mode == 0o640        # the index link is not counted
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o750)
    _same_as_now(store, ROOT_GFID, b"d", d)         # ctime after the gfid xattr
    fifo, _, _ = store.mknod(ROOT, ROOT_GFID, b"p", stat.S_IFIFO | 0o600, 0)
    _same_as_now(store, ROOT_GFID, b"p", fifo)
    if store.index.trusted:                          # symlinks need trusted.* for a gfid
        ln, _, _ = store.symlink(ROOT, ROOT_GFID, b"ln", b"f")
        _same_as_now(store, ROOT_GFID, b"ln", ln)
        assert ln.nlink == 1


def test_a_mode_the_umask_cut_is_restored_and_answered(store):
    old = os.umask(0o077)
    try:
        fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o664)
        store.release(fd)
        d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o775)
    finally:
        os.umask(old)
    assert f.mode == 0o664 and d.mode == 0o775
    _same_as_now(store, ROOT_GFID, b"f", f)          # the stat after the chmod
    _same_as_now(store, ROOT_GFID, b"d", d)


def test_file_new_sets_the_gfid_and_links_it_in_the_index(store, export):
    fd = os.open(os.path.join(export, "raw"), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        gfid = new_gfid()
        assert store.index.file_new(fd, gfid) == gfid
        assert store.index.read_gfid(fd) == gfid
        entry = os.path.join(export, ".glusterfs", entry_path(gfid).decode())
        assert os.stat(entry).st_ino == os.fstat(fd).st_ino
    finally:
        os.close(fd)


def test_file_new_keeps_a_gfid_the_file_got_first(store, export):
    """The race with a lookup's heal: the file already carries a gfid."""
    fd = os.open(os.path.join(export, "raw"), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        first = store.index.assign(fd, new_gfid())
        assert store.index.file_new(fd, new_gfid()) == first
        entry = os.path.join(export, ".glusterfs", entry_path(first).decode())
        assert os.stat(entry).st_ino == os.fstat(fd).st_ino
    finally:
        os.close(fd)


# --- the entry-op scope ----------------------------------------------------------
def _lock_is_free(store, gfid) -> bool:
    lock = store.dir_locks.held(gfid)
    if not lock.acquire(blocking=False):
        return False
    lock.release()
    return True


def test_scope_commits_after_the_locks_and_only_on_success(store, monkeypatch):
    commits = []

    def recording(plan, identity, index, mode=metadata_sync.ON):
        commits.append(_lock_is_free(store, ROOT_GFID))
    monkeypatch.setattr(metadata_sync, "commit", recording)
    store.metadata_sync = metadata_sync.ON
    fd, _, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR | os.O_EXCL, 0o644)
    store.release(fd)
    assert commits == [True]                              # once, with the lock let go
    assert errno_of(store.create, ROOT, ROOT_GFID, b"f", os.O_RDWR | os.O_EXCL, 0o644) \
        == errno.EEXIST
    assert errno_of(store.unlink, ROOT, ROOT_GFID, b"nope") == errno.ENOENT
    assert commits == [True] and _lock_is_free(store, ROOT_GFID)


def test_scope_closes_what_it_resolved_also_when_the_body_fails(store):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    store.stat(ROOT, d.gfid)          # its descriptor is now in the directory cache
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        assert errno_of(store.mkdir, ROOT, ROOT_GFID, b"d", 0o755) == errno.EEXIST
        assert errno_of(store.rmdir, ROOT, d.gfid, b"missing") == errno.ENOENT
        assert errno_of(store.rename, ROOT, d.gfid, b"missing", ROOT_GFID, b"x") == errno.ENOENT
    assert len(os.listdir("/proc/self/fd")) == before
    assert _lock_is_free(store, d.gfid) and _lock_is_free(store, ROOT_GFID)


def test_scope_refuses_a_parent_that_is_not_a_directory(store):
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    assert errno_of(store.mkdir, ROOT, f.gfid, b"x", 0o755) == errno.ENOTDIR
    assert _lock_is_free(store, f.gfid)


# --- RMDIR without its lstat ---------------------------------------------------------
def test_rmdir_of_what_is_no_directory_changes_nothing(store, export):
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", 0o755)
    os.symlink("d", os.path.join(export, "to-d"))
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    assert errno_of(store.rmdir, ROOT, ROOT_GFID, b"to-d") == errno.ENOTDIR
    assert errno_of(store.rmdir, ROOT, ROOT_GFID, b"f") == errno.ENOTDIR
    assert store.lookup(ROOT, ROOT_GFID, b"d").gfid == d.gfid     # the target is untouched
    assert store.lookup(ROOT, ROOT_GFID, b"f").gfid == f.gfid
    assert store.stat(ROOT, f.gfid).gfid == f.gfid                 # and its index entry too


# --- as_root ------------------------------------------------------------------------
def _in_thread(body):
    failure: list[BaseException] = []

    def run():
        try:
            body()
        except BaseException as err:  # reported to the test below
            failure.append(err)
        finally:
            reset_thread()
    worker = threading.Thread(target=run)
    worker.start()
    worker.join(10)
    if failure:
        raise failure[0]


@needs_root
def test_as_root_switches_only_when_the_thread_is_not_root():
    identity = Identity(enabled=True)

    def body():
        identity.become((0, 0, (1000,)))
        switches = identity.switches
        with identity.as_root():
            with identity.as_root():                     # nested, as commit inside an op
                assert syscalls.current_fsuid() == 0
        assert identity.switches == switches and identity.current() == (0, 0, (1000,))
        identity.become((1000, 1000, (1000,)))
        switches = identity.switches
        with identity.as_root():
            assert syscalls.current_fsuid() == 0 and syscalls.current_fsgid() == 0
            with identity.as_root():
                assert syscalls.current_fsuid() == 0
            assert syscalls.current_fsuid() == 0
        assert syscalls.current_fsuid() == 1000 and syscalls.current_fsgid() == 1000
        assert identity.switches == switches + 2 and identity.current() == (1000, 1000, (1000,))
    _in_thread(body)


@needs_root
def test_as_root_on_a_fresh_thread_becomes_root_and_stays():
    identity = Identity(enabled=True)

    def body():
        assert identity.current() is None
        with identity.as_root():
            assert syscalls.current_fsuid() == 0
        assert identity.current() == (0, 0, ())
    _in_thread(body)


@needs_root
def test_a_user_creating_gets_the_index_work_done_as_root(store, export):
    pub, _, _ = store.mkdir(ROOT, ROOT_GFID, b"pub", 0o777)
    fd, f, _, _ = store.create(USER, pub.gfid, b"mine", os.O_RDWR, 0o600)
    store.release(fd)
    reset_thread()
    st = os.stat(os.path.join(export, "pub", "mine"))
    assert (st.st_uid, st.st_gid) == (1000, 1000) and f.uid == 1000
    entry = os.path.join(export, ".glusterfs", entry_path(f.gfid).decode())
    assert os.stat(entry).st_ino == st.st_ino


# --- the verified memo (moved out of gfid_index) -------------------------------------
def test_verified_memo_is_an_lru_keyed_by_what_was_checked():
    from xlators.storage.verified_memo import VerifiedMemo
    memo = VerifiedMemo(3)
    for i in range(4):
        memo.note(bytes([i]) * 16, (i, 1))
    assert len(memo) == 3 and not memo.holds(b"\x00" * 16, (0, 1))   # the oldest went
    assert memo.holds(b"\x01" * 16, (1, 1)) and not memo.holds(b"\x01" * 16, (9, 1))
    memo.note(b"\x04" * 16, (4, 1))                   # \x01 was just used: \x02 goes
    assert memo.holds(b"\x01" * 16, (1, 1)) and not memo.holds(b"\x02" * 16, (2, 1))
    memo.forget(b"\x01" * 16)
    assert not memo.holds(b"\x01" * 16, (1, 1))
    memo.clear()
    assert len(memo) == 0


def test_a_repeated_lookup_is_answered_from_the_memo(store, monkeypatch):
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"f", os.O_RDWR, 0o644)
    store.release(fd)
    entry_checks = []
    real = store.index._entry_state
    monkeypatch.setattr(store.index, "_entry_state", lambda *a: entry_checks.append(a) or real(*a))
    assert store.lookup(ROOT, ROOT_GFID, b"f").gfid == f.gfid      # noted when it was made
    assert entry_checks == []
    store.index._memo.clear()
    assert store.lookup(ROOT, ROOT_GFID, b"f").gfid == f.gfid      # checked again, then noted
    assert store.lookup(ROOT, ROOT_GFID, b"f").gfid == f.gfid
    assert len(entry_checks) == 1
