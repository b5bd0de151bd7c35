"""Review findings 1, 2 and 6 at the storage level.

1. (uid_t)-1 must never leave a thread with an earlier identity (root):
   `become` refuses ids the kernel cannot hold and verifies each switch
   (/tmp/review/exp_fsuid.py).
2. SERVER_CALLER is never root-squashed: the NFS fd cache opens users'
   0600 files through it (/tmp/review/exp_squash.py).
6. An anonymous Fd checks every read/write against the caller on a fresh
   fstat, so an owner changed behind the server loses the owner override at
   once (/tmp/review/exp_stale_owner2.py).
"""
from __future__ import annotations

import errno
import os
import threading

import pytest

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Caller
from xlators.storage import syscalls
from xlators.storage.identity import (ANONYMOUS_FD, SERVER_CALLER, Identity, reset_thread,
                                      valid_creds)
from storage_calls import errno_of

USER = Caller(1000, 1000, (1000,))
OTHER = Caller(2000, 2000, (2000,))
GROUPMATE = Caller(2001, 2001, (2001, 1000))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching identities needs root")


def in_thread(work):
    """Run work() in a fresh thread (its identity dies with it); returns its result."""
    out: dict = {}

    def run():
        try:
            out["value"] = work()
        except BaseException as err:  # handed back to the test
            out["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    if "error" in out:
        raise out["error"]
    return out.get("value")


# --- finding 1: ids the kernel cannot hold ------------------------------------------
def test_become_refuses_minus_one_and_the_thread_keeps_its_identity():
    ident = Identity()

    def work():
        ident.become((65534, 65534, ()))
        refused = []
        for creds in ((0xFFFFFFFF, 65534, ()), (65534, 0xFFFFFFFF, ()),
                      (65534, 65534, (5, 0xFFFFFFFF)), (1 << 40, 0, ())):
            with pytest.raises(PermissionError) as info:
                ident.become(creds)
            refused.append(info.value.errno)
        after_refusal = syscalls.current_fsuid(), syscalls.current_fsgid()
        with ident.as_root():
            as_root = syscalls.current_fsuid()
        # the bug: as_root() "restored" -1, which left fsuid 0
        return refused, after_refusal, as_root, (syscalls.current_fsuid(),
                                                 syscalls.current_fsgid())

    refused, after_refusal, as_root, after = in_thread(work)
    assert refused == [errno.EPERM] * 4
    assert after_refusal == (65534, 65534)
    assert as_root == 0
    assert after == (65534, 65534)


def test_the_largest_valid_ids_are_accepted():
    ident = Identity()

    def work():
        ident.become((0xFFFFFFFE, 0xFFFFFFFE, (0xFFFFFFFE,)))
        return syscalls.current_fsuid(), syscalls.current_fsgid()

    assert in_thread(work) == (0xFFFFFFFE, 0xFFFFFFFE)
    assert valid_creds((0xFFFFFFFE, 0, (0,))) and not valid_creds((0, 0, (-1,)))


def test_a_switch_the_kernel_ignored_is_reported():
    seen = []

    def ignoring(value):  # like setfsuid without CAP_SETUID: returns the old id, keeps it
        seen.append(value)
        return 0
    with pytest.raises(PermissionError) as info:
        syscalls._switch(ignoring, 1000, "setfsuid")
    assert info.value.errno == errno.EPERM and seen == [1000, 1000]
    syscalls._switch(lambda value: value, 1000, "setfsuid")  # a switch that took: no error
    with pytest.raises(PermissionError):
        syscalls.setfsuid(0xFFFFFFFF)  # never even tried


def test_a_fop_as_minus_one_is_eperm_not_root(make_store):
    store = make_store({"root-squash": True})
    reset_thread()
    secret = os.path.join(store.directory, "secret")
    with open(secret, "wb") as out:
        out.write(b"root only")
    os.chmod(secret, 0o600)
    minus_one = Caller(0xFFFFFFFF, 0xFFFFFFFF, ())

    def work():
        store.stat(ROOT, ROOT_GFID)  # an earlier fop as (squashed) root on this thread
        codes = [errno_of(store.lookup, minus_one, ROOT_GFID, b"secret"),
                 errno_of(store.mkdir, minus_one, ROOT_GFID, b"made", 0o755)]
        return codes, syscalls.current_fsuid()

    codes, fsuid = in_thread(work)
    assert codes == [errno.EPERM, errno.EPERM]
    assert fsuid == 65534  # still the squashed caller of the earlier fop, never root
    assert not os.path.exists(os.path.join(store.directory, "made"))
    good = in_thread(lambda: store.lookup(USER, ROOT_GFID, b"secret").uid)
    assert good == 0  # a valid caller next to it works


# --- finding 2: the server's own identity is not squashed ----------------------------
def _private_file(store, owner: Caller, mode=0o600, data=b"mine"):
    os.chmod(store.directory, 0o777)
    fd, iatt, _, _ = store.create(owner, ROOT_GFID, b"private", os.O_RDWR, mode)
    store.write(owner, fd, 0, data, 0)
    store.release(fd)
    return iatt


def test_server_caller_opens_what_squashed_root_cannot(make_store):
    store = make_store({"root-squash": True})
    f = _private_file(store, USER)
    assert errno_of(store.open, ROOT, f.gfid, os.O_RDWR) == errno.EACCES  # a client's root
    fd = store.open(SERVER_CALLER, f.gfid, os.O_RDWR)  # the server for itself
    assert fd.ctx[ANONYMOUS_FD] is True
    assert store.read(USER, fd, 0, 4)[0] == b"mine"
    assert store.write(USER, fd, 0, b"MINE", 2)[0] == 4
    assert errno_of(store.read, ROOT, fd, 0, 4) == errno.EACCES  # squashed root is nobody
    assert errno_of(store.write, OTHER, fd, 0, b"x", 0) == errno.EACCES
    store.release(fd)


def test_a_look_alike_of_the_server_caller_is_squashed(make_store):
    store = make_store({"root-squash": True})
    f = _private_file(store, USER)
    look_alike = Caller(0, 0, (), "<server>")  # equal fields, not the object
    assert errno_of(store.open, look_alike, f.gfid, os.O_RDONLY) == errno.EACCES


# --- finding 6: anonymous Fds check the caller on a fresh fstat ----------------------
def test_anonymous_fd_owner_override_follows_a_chown_behind_the_server(store):
    f = _private_file(store, USER)
    fd = store.open(SERVER_CALLER, f.gfid, os.O_RDWR)
    assert store.write(USER, fd, 0, b"a", 0)[0] == 1          # the owner
    reset_thread()
    os.chown(os.path.join(store.directory, "private"), 3000, 3000)
    assert errno_of(store.write, USER, fd, 0, b"EVIL", 0) == errno.EACCES
    assert errno_of(store.read, USER, fd, 0, 4) == errno.EACCES
    new_owner = Caller(3000, 3000, (3000,))
    assert store.write(new_owner, fd, 1, b"b", 0)[0] == 1     # the new owner can
    store.release(fd)
    reset_thread()
    with open(os.path.join(store.directory, "private"), "rb") as data:
        assert data.read() == b"abne"


def test_anonymous_fd_rights_beyond_the_owner(store):
    f = _private_file(store, USER, mode=0o444, data=b"read-only")
    fd = store.open(SERVER_CALLER, f.gfid, os.O_RDWR)
    assert store.write(USER, fd, 0, b"R", 0)[0] == 1           # owner of a 0444 file writes
    assert errno_of(store.write, OTHER, fd, 0, b"x", 0) == errno.EACCES
    assert store.read(OTHER, fd, 0, 4)[0] == b"Read"            # others may read 0444
    assert store.write(ROOT, fd, 0, b"r", 0)[0] == 1            # unsquashed root may write
    reset_thread()
    path = os.path.join(store.directory, "private")
    os.chmod(path, 0o620)
    assert store.write(GROUPMATE, fd, 0, b"g", 0)[0] == 1      # group may write,
    assert errno_of(store.read, GROUPMATE, fd, 0, 1) == errno.EACCES  # but not read
    reset_thread()
    os.chmod(path, 0o711)
    assert store.read(OTHER, fd, 0, 4)[0] == b"gead"            # execute lets one read
    reset_thread()
    os.chmod(path, 0o700)
    assert errno_of(store.read, OTHER, fd, 0, 4) == errno.EACCES
    store.release(fd)


def test_a_callers_own_fd_keeps_posix_semantics(store):
    f = _private_file(store, USER)
    fd = store.open(USER, f.gfid, os.O_RDWR)
    assert ANONYMOUS_FD not in fd.ctx
    reset_thread()
    os.chmod(os.path.join(store.directory, "private"), 0o000)
    assert store.write(USER, fd, 0, b"still", 0)[0] == 5  # an open fd keeps its right
    store.release(fd)
