"""The shared-memory DRC of a prefork server: one table for every worker process."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from rpc_testkit import REMOVE, RawPeer, call_msg, frame, remove_args
from rpcsvc import wire
from rpcsvc.drc import (DROP, HIT, MISS, SHARED_MAX_SLOTS, SHARED_REPLY_MAX, SHARED_WAYS,
                        SharedDuplicateRequestCache)


def key(drc, xid=1, ip="192.0.2.7", proc=12, args=b"args"):
    return drc.make_key(ip, xid, 100003, 3, proc, args)


def in_child(work) -> int:
    """Run work() in a forked child; its exit status (0 = work returned True)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if work() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_miss_then_finish_then_hit():
    drc = SharedDuplicateRequestCache(64)
    try:
        state, entry = drc.lookup(key(drc))
        assert state == MISS and entry.reply is None
        assert drc.lookup(key(drc)) == (DROP, None)          # same process, still running
        drc.finish(entry, b"reply bytes")
        assert drc.lookup(key(drc)) == (HIT, b"reply bytes")
        for other in (key(drc, xid=2), key(drc, ip="192.0.2.8"), key(drc, args=b"other"),
                      key(drc, ip="2001:db8::1"), key(drc, proc=13)):
            assert drc.lookup(other)[0] == MISS
        stats = drc.stats()
        assert stats["duplicate_request_count"] == 1 and stats["in_transit_duplicate_requests"] == 1
        assert stats["inserts"] == 6 and stats["current_cache_size"] == 6
        assert stats["in_transit"] == 5 and stats["client_count"] == 3
        assert len(drc) == 6
    finally:
        drc.close()


def test_abandon_lets_a_retransmission_run():
    drc = SharedDuplicateRequestCache(64)
    try:
        _, entry = drc.lookup(key(drc))
        drc.abandon(entry)
        state, again = drc.lookup(key(drc))
        assert state == MISS and again is not None
        drc.abandon(entry)          # a stale handle frees nothing it no longer owns
        drc.finish(again, b"ok")
        assert drc.lookup(key(drc)) == (HIT, b"ok")
    finally:
        drc.close()


def test_a_reply_too_large_for_a_slot_is_not_kept():
    drc = SharedDuplicateRequestCache(64)
    try:
        _, entry = drc.lookup(key(drc))
        drc.finish(entry, b"x" * (SHARED_REPLY_MAX + 1))
        assert entry.reply is not None
        assert drc.lookup(key(drc))[0] == MISS
        assert drc.stats()["too_large"] == 1
        _, entry = drc.lookup(key(drc, xid=9))
        drc.finish(entry, b"y" * SHARED_REPLY_MAX)
        assert drc.lookup(key(drc, xid=9)) == (HIT, b"y" * SHARED_REPLY_MAX)
    finally:
        drc.close()


def test_sizes_are_bounded_and_checked():
    with pytest.raises(ValueError):
        SharedDuplicateRequestCache(0)
    big = SharedDuplicateRequestCache(1 << 24)
    small = SharedDuplicateRequestCache(1)
    try:
        assert big.size == SHARED_MAX_SLOTS
        assert small.size == SHARED_WAYS
    finally:
        big.close()
        small.close()


def test_least_recently_used_cached_entry_is_replaced():
    drc = SharedDuplicateRequestCache(SHARED_WAYS)       # one bucket: every key competes
    try:
        for xid in range(SHARED_WAYS):
            _, entry = drc.lookup(key(drc, xid=xid))
            drc.finish(entry, b"r%d" % xid)
        assert drc.lookup(key(drc, xid=0)) == (HIT, b"r0")   # 0 is now the most recent
        _, entry = drc.lookup(key(drc, xid=100))
        drc.finish(entry, b"r100")
        assert drc.lookup(key(drc, xid=0))[0] == HIT
        assert drc.lookup(key(drc, xid=1))[0] == MISS          # the oldest went
        assert drc.stats()["evictions"] >= 1
    finally:
        drc.close()


def test_a_bucket_full_of_live_calls_serves_uncached():
    drc = SharedDuplicateRequestCache(SHARED_WAYS)
    try:
        for xid in range(SHARED_WAYS):
            assert drc.lookup(key(drc, xid=xid))[0] == MISS
        assert drc.lookup(key(drc, xid=99)) == (MISS, None)
        assert drc.stats()["no_room"] == 1
    finally:
        drc.close()


def test_another_process_sees_the_cached_reply():
    drc = SharedDuplicateRequestCache(64)
    try:
        def worker_a():
            state, entry = drc.lookup(key(drc))
            drc.finish(entry, b"from worker A")
            return state == MISS
        assert in_child(worker_a) == 0
        assert drc.lookup(key(drc)) == (HIT, b"from worker A")
    finally:
        drc.close()


def test_a_call_running_in_a_live_worker_is_dropped_elsewhere():
    drc = SharedDuplicateRequestCache(64)
    started_r, started_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _, entry = drc.lookup(key(drc))
            os.write(started_w, b"!")
            os.read(release_r, 1)
            drc.finish(entry, b"late reply")
        finally:
            os._exit(0)
    try:
        assert os.read(started_r, 1) == b"!"
        assert drc.lookup(key(drc)) == (DROP, None)
        os.write(release_w, b"!")
        os.waitpid(pid, 0)
        assert drc.lookup(key(drc)) == (HIT, b"late reply")
    finally:
        for fd in (started_r, started_w, release_r, release_w):
            os.close(fd)
        drc.close()


def test_a_dead_workers_call_is_taken_over_or_forgotten():
    drc = SharedDuplicateRequestCache(64)
    try:
        def dies_mid_call():
            drc.lookup(key(drc, xid=1))
            drc.lookup(key(drc, xid=2))
            return True
        assert in_child(dies_mid_call) == 0           # exits without answering either call
        state, entry = drc.lookup(key(drc, xid=1))    # retransmission at another worker
        assert state == MISS and entry is not None
        assert drc.stats()["takeovers"] == 1
        assert drc.stats()["in_transit"] == 2
        # what the master does when it reaps a worker: free what the dead one held
        pid = os.fork()
        if pid == 0:
            drc.lookup(key(drc, xid=3))
            os._exit(0)
        os.waitpid(pid, 0)
        assert drc.forget_owner(pid) == 1
        assert drc.forget_owner(pid) == 0
        assert drc.lookup(key(drc, xid=3))[0] == MISS
    finally:
        drc.close()


def test_a_worker_killed_while_holding_the_lock_does_not_wedge_the_others():
    drc = SharedDuplicateRequestCache(64)
    try:
        def killed_inside():
            with drc._lock:
                os.kill(os.getpid(), signal.SIGKILL)
            return True
        assert in_child(killed_inside) == -signal.SIGKILL
        done = []
        thread = threading.Thread(target=lambda: done.append(drc.lookup(key(drc))))
        thread.start()
        thread.join(5)
        assert done and done[0][0] == MISS
    finally:
        drc.close()


def test_two_services_sharing_it_answer_a_retransmission_once(serve):
    drc = SharedDuplicateRequestCache(64)
    try:
        first, second = serve(), serve()
        first.svc.drc = second.svc.drc = drc
        msg = call_msg(0xD1C, proc=REMOVE, args=remove_args())
        peer = RawPeer(first.tcp_port)
        try:
            reply = peer.call(msg)
        finally:
            peer.close()
        assert reply.success
        other = RawPeer(second.tcp_port)        # the client reconnected to another worker
        try:
            other.send(frame(msg))
            again = other.read_reply()
        finally:
            other.close()
        assert wire.parse_reply(again).xid == 0xD1C
        assert first.actors.removes + second.actors.removes == 1
        assert second.svc.stats()["drc"]["duplicate_request_count"] == 1
    finally:
        drc.close()


def test_a_zombie_owner_counts_as_dead():
    drc = SharedDuplicateRequestCache(64)
    try:
        pid = os.fork()
        if pid == 0:
            drc.lookup(key(drc))
            os._exit(0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:                    # dead, not yet reaped
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    break
        state, entry = drc.lookup(key(drc))
        assert state == MISS and entry is not None
        assert drc.stats()["takeovers"] == 1
    finally:
        os.waitpid(pid, 0)
        drc.close()
