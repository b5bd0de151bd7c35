"""Caller identity in storage/posix: per-thread fsuid/fsgid/groups, root-squash."""
from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Caller
from storage_threads import run_in_threads
from xlators.storage import syscalls
from xlators.storage.identity import Identity, reset_thread, squash
from storage_calls import errno_of

USER = Caller(1000, 1000, (1000,))
OTHER = Caller(2000, 2000, (2000,))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching identities needs root")


def thread_groups() -> list[int]:
    with open("/proc/thread-self/status") as status:
        line = next(l for l in status if l.startswith("Groups:"))
    return [int(g) for g in line.split()[1:]]


def public_dir(store, name=b"pub"):
    iatt, _, _ = store.mkdir(ROOT, ROOT_GFID, name, 0o777)
    return iatt


def test_new_objects_belong_to_the_caller(store, export):
    pub = public_dir(store)
    fd, f, _, _ = store.create(USER, pub.gfid, b"file", os.O_RDWR, 0o644)
    store.release(fd)
    d, _, _ = store.mkdir(USER, pub.gfid, b"dir", 0o755)
    link, _, _ = store.symlink(USER, pub.gfid, b"link", b"file", 0o777)
    fifo, _, _ = store.mknod(USER, pub.gfid, b"fifo", stat.S_IFIFO | 0o600, 0)
    reset_thread()  # the test thread looks at the disk as root again
    for iatt, name in ((f, "file"), (d, "dir"), (link, "link"), (fifo, "fifo")):
        assert (iatt.uid, iatt.gid) == (1000, 1000)
        st = os.lstat(os.path.join(export, "pub", name))
        assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_kernel_refuses_what_the_caller_may_not_do(store):
    fd, secret, _, _ = store.create(ROOT, ROOT_GFID, b"secret", os.O_RDWR, 0o600)
    store.release(fd)
    assert errno_of(store.open, USER, secret.gfid, os.O_RDONLY) == errno.EACCES
    assert errno_of(store.create, USER, ROOT_GFID, b"mine", os.O_RDWR, 0o644) == errno.EACCES
    assert errno_of(store.mkdir, USER, ROOT_GFID, b"mine", 0o755) == errno.EACCES
    assert errno_of(store.unlink, USER, ROOT_GFID, b"secret") == errno.EACCES
    assert errno_of(store.rename, USER, ROOT_GFID, b"secret", ROOT_GFID, b"x") == errno.EACCES
    pub = public_dir(store)
    # device nodes need CAP_MKNOD, which a non-zero fsuid drops
    assert errno_of(store.mknod, USER, pub.gfid, b"null", stat.S_IFCHR | 0o666,
                    os.makedev(1, 3)) == errno.EPERM
    # protected hard links: no linking of someone else's file you cannot write
    assert errno_of(store.link, USER, secret.gfid, pub.gfid, b"grab") == errno.EPERM
    # a file of the caller's own can be hard-linked by it
    fd, mine, _, _ = store.create(USER, pub.gfid, b"mine", os.O_RDWR, 0o600)
    store.release(fd)
    assert store.link(USER, mine.gfid, pub.gfid, b"mine2")[0].nlink == 2
    # sticky /tmp-like directory: others' files cannot be removed
    sticky, _, _ = store.mkdir(ROOT, ROOT_GFID, b"sticky", 0o1777)
    fd, _, _, _ = store.create(OTHER, sticky.gfid, b"theirs", os.O_RDWR, 0o666)
    store.release(fd)
    assert errno_of(store.unlink, USER, sticky.gfid, b"theirs") == errno.EPERM


def test_supplementary_groups_count(store):
    fd, f, _, _ = store.create(ROOT, ROOT_GFID, b"group-file", os.O_RDWR, 0o640)
    store.release(fd)
    from glusterfsd.xlator import SetAttr
    store.setattr(ROOT, f.gfid, SetAttr(gid=3000))
    assert errno_of(store.open, USER, f.gfid, os.O_RDONLY) == errno.EACCES
    member = Caller(1000, 1000, (1000, 3000))
    store.release(store.open(member, f.gfid, os.O_RDONLY))


def test_threads_with_different_callers_do_not_leak(store, export):
    pub = public_dir(store)
    fd, shared, _, _ = store.create(ROOT, ROOT_GFID, b"g3000", os.O_RDWR, 0o640)
    store.release(fd)
    from glusterfsd.xlator import SetAttr
    store.setattr(ROOT, shared.gfid, SetAttr(gid=3000))
    callers = {"a": Caller(1001, 1001, (1001, 3000)), "b": Caller(1002, 1002, (1002,))}
    errors: list[str] = []
    barrier = threading.Barrier(len(callers))
    rounds = 150

    def work(tag: str, caller: Caller):
        try:
            barrier.wait(5)
            for i in range(rounds):
                fd, iatt, _, _ = store.create(caller, pub.gfid, b"%s-%03d" % (tag.encode(), i),
                                              os.O_RDWR, 0o644)
                store.release(fd)
                if iatt.uid != caller.uid or iatt.gid != caller.gid:
                    errors.append(f"{tag}: iatt owner {iatt.uid}:{iatt.gid}")
                try:
                    store.release(store.open(caller, shared.gfid, os.O_RDONLY))
                    if 3000 not in caller.groups:
                        errors.append(f"{tag}: read a group-3000 file without the group")
                except PermissionError:
                    if 3000 in caller.groups:
                        errors.append(f"{tag}: lost its group 3000")
        except Exception as err:  # reported below
            errors.append(f"{tag}: {err!r}")
        finally:
            reset_thread()

    main_groups = thread_groups()
    run_in_threads(work, list(callers.items()))
    assert errors == []
    reset_thread()
    for tag, caller in callers.items():
        for i in range(rounds):
            st = os.stat(os.path.join(export, "pub", f"{tag}-{i:03d}"))
            assert (st.st_uid, st.st_gid) == (caller.uid, caller.gid)
    assert thread_groups() == main_groups  # groups of other threads were never touched


def test_fop_leaves_the_thread_as_the_caller_until_reset(store):
    store.stat(USER, ROOT_GFID)
    assert syscalls.current_fsuid() == 1000 and syscalls.current_fsgid() == 1000
    assert thread_groups() == [1000]
    assert os.getuid() == 0 and os.geteuid() == 0  # only the fs identity moved
    reset_thread()
    assert syscalls.current_fsuid() == 0 and thread_groups() == []


def test_as_root_goes_back_to_the_caller_also_after_an_error():
    identity = Identity(enabled=True)
    identity.become((1000, 1000, (1000,)))
    try:
        with identity.as_root():
            assert syscalls.current_fsuid() == 0
        assert syscalls.current_fsuid() == 1000
        with pytest.raises(OSError):
            with identity.as_root():
                assert syscalls.current_fsuid() == 0
                raise OSError(errno.EIO, "failed as root")
        assert syscalls.current_fsuid() == 1000 and thread_groups() == [1000]
    finally:
        reset_thread()


def test_two_volumes_share_what_a_thread_is(make_store, tmp_path):
    first = make_store(directory=str(tmp_path / "one"))
    second = make_store(directory=str(tmp_path / "two"))
    first.stat(USER, ROOT_GFID)
    second.mkdir(ROOT, ROOT_GFID, b"as-root", 0o755)  # must switch back to root
    assert second.lookup(ROOT, ROOT_GFID, b"as-root").uid == 0


def test_root_squash(make_store, export):
    store = make_store({"root-squash": True})
    assert errno_of(store.mkdir, ROOT, ROOT_GFID, b"pub", 0o777) == errno.EACCES  # squashed
    reset_thread()
    os.mkdir(os.path.join(export, "pub"))
    os.chmod(os.path.join(export, "pub"), 0o777)
    pub = store.lookup(ROOT, ROOT_GFID, b"pub")
    fd, f, _, _ = store.create(ROOT, pub.gfid, b"by-root", os.O_RDWR, 0o600)
    store.release(fd)
    assert (f.uid, f.gid) == (65534, 65534)
    reset_thread()
    with open(os.path.join(export, "root-only"), "wb") as out:
        out.write(b"x")
    os.chmod(os.path.join(export, "root-only"), 0o600)
    hidden = store.lookup(ROOT, ROOT_GFID, b"root-only")
    assert errno_of(store.open, ROOT, hidden.gfid, os.O_RDONLY) == errno.EACCES
    fd, u, _, _ = store.create(USER, pub.gfid, b"by-user", os.O_RDWR, 0o600)
    store.release(fd)
    assert (u.uid, u.gid) == (1000, 1000)  # others are left alone


def test_root_squash_to_chosen_ids(make_store):
    store = make_store({"root-squash": True, "anonuid": 4444, "anonymous-gid": 5555})
    reset_thread()
    os.chmod(store.directory, 0o777)
    made, _, _ = store.mkdir(ROOT, ROOT_GFID, b"by-root", 0o755)
    assert (made.uid, made.gid) == (4444, 5555)


def test_squash_rules():
    assert squash(0, 0, (0, 10), 99, 98) == (99, 98, (98, 10))
    assert squash(5, 0, (0,), 99, 98) == (5, 0, (0,))


def test_probe_detects_working_switching():
    Identity().probe()
    disabled = Identity(enabled=False)
    disabled.become((1000, 1000, ()))
    assert syscalls.current_fsuid() == 0  # a disabled identity changes nothing
