"""The duplicate request cache on its own: states, keys, LRU bound, stats."""
from __future__ import annotations

import pytest

from rpcsvc.drc import DROP, HIT, MISS, DuplicateRequestCache


def key(cache, xid=1, client="10.0.0.1", args=b"args", proc=12):
    return cache.make_key(client, xid, 100003, 3, proc, args)


def test_miss_then_in_transit_then_cached():
    cache = DuplicateRequestCache(10)
    state, entry = cache.lookup(key(cache))
    assert state == MISS
    assert cache.lookup(key(cache)) == (DROP, None)
    cache.finish(entry, b"REPLY")
    assert cache.lookup(key(cache)) == (HIT, b"REPLY")
    stats = cache.stats()
    assert stats["duplicate_request_count"] == 1
    assert stats["in_transit_duplicate_requests"] == 1
    assert stats["current_cache_size"] == 1 and stats["client_count"] == 1


def test_key_covers_client_xid_procedure_and_arguments():
    cache = DuplicateRequestCache(10)
    base = key(cache)
    variants = [key(cache, xid=2), key(cache, client="10.0.0.2"), key(cache, args=b"other"),
                key(cache, proc=13)]
    assert len({base, *variants}) == 5
    # the client port is not part of the key: a reconnecting client still hits
    assert cache.make_key("10.0.0.1", 1, 100003, 3, 12, b"args") == base


def test_lru_eviction_keeps_the_recently_used():
    cache = DuplicateRequestCache(3)
    entries = {}
    for xid in (1, 2, 3):
        _, entries[xid] = cache.lookup(key(cache, xid))
        cache.finish(entries[xid], b"r%d" % xid)
    assert cache.lookup(key(cache, 1))[0] == HIT          # 1 becomes the most recent
    state, new = cache.lookup(key(cache, 4))              # evicts 2, the least recent
    assert state == MISS and len(cache) == 3
    assert cache.lookup(key(cache, 2))[0] == MISS
    assert cache.stats()["evictions"] >= 1


def test_in_transit_entries_are_never_evicted():
    cache = DuplicateRequestCache(2)
    pending = [cache.lookup(key(cache, xid))[1] for xid in (1, 2, 3)]
    assert len(cache) == 3                                # over size, but all in transit
    assert cache.lookup(key(cache, 1)) == (DROP, None)
    for e in pending:
        cache.finish(e, b"done")
    assert len(cache) == 2


def test_abandon_forgets_an_unanswered_call():
    cache = DuplicateRequestCache(4)
    _, entry = cache.lookup(key(cache))
    cache.abandon(entry)
    assert len(cache) == 0 and cache.stats()["client_count"] == 0
    assert cache.lookup(key(cache))[0] == MISS


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        DuplicateRequestCache(0)
