"""dir_locks: the striped directory locks entry ops hold, and LocksInOrder."""
from __future__ import annotations

import threading

import pytest

from xlators.storage.dir_locks import DirLocks, LocksInOrder


def taken(lock) -> bool:
    """Whether another thread would have to wait for `lock`."""
    got = []

    def probe_it():
        got.append(lock.acquire(timeout=0))
        if got[0]:
            lock.release()      # in this thread: an RLock is released by its owner

    probe = threading.Thread(target=probe_it)
    probe.start()
    probe.join(5)
    return not got[0]


def two_stripes(locks: DirLocks) -> tuple[bytes, bytes]:
    first = b"\0" * 15 + b"\1"
    for last in range(2, 256):
        other = b"\0" * 15 + bytes([last])
        if locks.stripe(other) != locks.stripe(first):
            return first, other
    raise AssertionError("no two gfids on different stripes")


def test_held_takes_every_stripe_and_lets_them_all_go():
    locks = DirLocks(stripes=8)
    a, b = two_stripes(locks)
    lock_a, lock_b = locks._locks[locks.stripe(a)], locks._locks[locks.stripe(b)]
    with locks.held(b, a, a):
        assert taken(lock_a) and taken(lock_b)
    assert not taken(lock_a) and not taken(lock_b)
    with locks.held(a):
        assert taken(lock_a) and not taken(lock_b)
    assert not taken(lock_a)


class FailingLock:
    def acquire(self):
        raise RuntimeError("cannot take it")

    def release(self):
        raise AssertionError("never taken, never released")


def test_locks_in_order_lets_go_of_those_taken_when_one_fails():
    first, second = threading.Lock(), threading.Lock()
    with pytest.raises(RuntimeError):
        with LocksInOrder([first, second, FailingLock()]):
            pass
    assert not taken(first) and not taken(second)


def test_locks_in_order_lets_go_when_the_block_raises():
    first, second = threading.Lock(), threading.RLock()
    with pytest.raises(ValueError):
        with LocksInOrder([first, second]):
            raise ValueError("in the block")
    assert not taken(first) and not taken(second)
