"""Review finding 14b: no O_PATH descriptor leaks when a step after the open
fails (fstat, the gfid xattr read).  Each case fails the n-th such call, for
every n the operation reaches, and counts the process's descriptors."""
from __future__ import annotations

import errno
import os

import pytest

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Caller
from xlators.storage.identity import reset_thread

USER = Caller(1000, 1000, (1000,))
MAX_STEPS = 40


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Injected(OSError):
    pass


def fail_nth(real, n: int):
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise Injected(errno.EIO, f"injected failure of call {n}")
        return real(*args, **kwargs)
    return wrapper, calls


@pytest.fixture
def tree(store):
    """/pub/sub/file in a fresh store, and their gfids."""
    pub, _, _ = store.mkdir(ROOT, ROOT_GFID, b"pub", 0o777)
    sub, _, _ = store.mkdir(ROOT, pub.gfid, b"sub", 0o777)
    fd, f, _, _ = store.create(ROOT, sub.gfid, b"file", os.O_RDWR, 0o644)
    store.release(fd)
    return {"pub": pub.gfid, "sub": sub.gfid, "file": f.gfid}


def operations(store, tree):
    return {
        "stat of a directory (index walk)": lambda: store.stat(ROOT, tree["sub"]),
        "stat of a file (index hard link)": lambda: store.stat(USER, tree["file"]),
        "lookup by name (open + heal)": lambda: store.lookup(USER, tree["sub"], b"file"),
        "stat of the root": lambda: store.stat(ROOT, ROOT_GFID),
    }


def _forget_caches(store):
    store.index._dirs.clear()
    store.index._memo.clear()


@pytest.mark.parametrize("target", ["fstat", "read_gfid"])
def test_no_descriptor_leaks_when_a_later_step_fails(store, tree, monkeypatch, target):
    failures = 0
    for name, op in operations(store, tree).items():
        for n in range(1, MAX_STEPS):
            _forget_caches(store)
            before = open_fds()
            if target == "fstat":
                wrapper, calls = fail_nth(os.fstat, n)
                monkeypatch.setattr(os, "fstat", wrapper)
            else:
                wrapper, calls = fail_nth(store.index.read_gfid, n)
                monkeypatch.setattr(store.index, "read_gfid", wrapper)
            try:
                op()
                succeeded = True
            except Injected:
                succeeded = False
                failures += 1
            finally:
                monkeypatch.undo()
                reset_thread()
            _forget_caches(store)
            assert open_fds() == before, f"{name}: {target} call {n} leaked a descriptor"
            if succeeded and calls[0] < n:
                break   # n passed every call the operation makes
        else:
            pytest.fail(f"{name} made more than {MAX_STEPS} {target} calls")
    assert failures > 3, f"only {failures} injected {target} failures were reached"
    # and with nothing injected, everything still works (the good path next to the bad)
    for op in operations(store, tree).values():
        op()
