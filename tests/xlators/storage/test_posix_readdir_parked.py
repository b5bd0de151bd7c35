"""Listings resumed where this store stopped a moment ago (`ParkedStreams`):
the same entries and cookies as a listing that seeks every time, removed
names left out, nothing kept past its time or its bound, nothing used by a
caller who could not open the directory, and every descriptor closed."""
from __future__ import annotations

import errno
import os

import pytest

from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Caller
from xlators.storage import dirstream
from xlators.storage.dirstream import ParkedStreams

USER = Caller(1000, 1000, (1000,))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fill(store, count, mode=0o755) -> bytes:
    d, _, _ = store.mkdir(ROOT, ROOT_GFID, b"d", mode)
    for i in range(count):
        fd, _, _, _ = store.create(ROOT, d.gfid, b"entry-%04d" % i, os.O_RDWR, 0o644)
        store.release(fd)
    return d.gfid


def one_call(store, gfid, cookie, size, plus=True, caller=ROOT):
    """One NFS-style call: open, one batch, release."""
    fd = store.opendir(caller, gfid)
    try:
        return (store.readdirp if plus else store.readdir)(caller, fd, cookie, size)
    finally:
        store.release(fd)


def whole(store, gfid, size, plus=True, between=None):
    """[(name, cookie)] of a listing in calls of `size` bytes; between(i) runs
    before call i > 0."""
    out, cookie = [], 0
    for i in range(10_000):
        if between is not None and i:
            between(i)
        entries, eof = one_call(store, gfid, cookie, size, plus)
        out += [(e.name, e.cookie) for e in entries]
        if eof:
            return out
        cookie = entries[-1].cookie
    raise AssertionError("listing did not end")


@pytest.mark.parametrize("plus", [True, False])
def test_resumed_listings_match_seeking_ones(make_store, plus):
    store = make_store()
    gfid = fill(store, 300)
    store.parked_streams.capacity = 0                 # every call seeks
    seeking = whole(store, gfid, 1500, plus)
    store.parked_streams.capacity = dirstream.PARK_CAPACITY
    resumed = whole(store, gfid, 1500, plus)
    assert store.parked_streams.resumed >= 5            # every call after the first
    assert resumed == seeking
    assert len({name for name, _ in resumed}) == 302
    assert len(store.parked_streams) == 0             # the end closes the last one


def test_names_removed_meanwhile_are_left_out(make_store):
    """Between calls, names are removed, among them names the parked stream
    already read ahead: none is listed after its removal, every name still
    there is listed."""
    store = make_store()
    gfid = fill(store, 200)
    export = os.path.join(store.directory, "d")
    gone, listed, cookie = set(), [], 0
    for i in range(1000):
        for name in sorted(os.listdir(export))[i % 2::7][:3]:
            os.unlink(os.path.join(export, name))
            gone.add(name.encode())
        entries, eof = one_call(store, gfid, cookie, 1500)
        names = {e.name for e in entries}
        assert not names & gone
        listed += names
        if eof:
            break
        cookie = entries[-1].cookie
    assert len(listed) == len(set(listed))
    assert {name.encode() for name in os.listdir(export)} <= set(listed)
    assert store.parked_streams.resumed > 0


def test_a_stream_parked_too_long_ago_is_closed_not_used(make_store, monkeypatch):
    store = make_store()
    gfid = fill(store, 100)
    before = open_fds()
    entries, eof = one_call(store, gfid, 0, 1000)
    assert not eof and len(store.parked_streams) == 1
    assert open_fds() == before + 1
    store.parked_streams.seconds = 0.0
    monkeypatch.setattr(dirstream.time, "monotonic", lambda real=dirstream.time.monotonic:
                        real() + 1.0)
    resumed_before = store.parked_streams.resumed
    more, _ = one_call(store, gfid, entries[-1].cookie, 1000)
    assert store.parked_streams.resumed == resumed_before
    assert more and more[0].name not in {e.name for e in entries}
    store.parked_streams.close_all()
    assert open_fds() == before


def test_the_parked_streams_are_bounded():
    lot = ParkedStreams(capacity=3, seconds=60)
    streams = []
    for i in range(5):
        stream = dirstream.DirStream(os.open("/", os.O_RDONLY | os.O_DIRECTORY),
                                     [(b"x", 1, 1, 4)])
        streams.append(stream)
        lot.park(b"g" * 16, i, stream)
    assert len(lot) == 3
    assert [s.fd < 0 for s in streams] == [True, True, False, False, False]
    assert lot.take(b"g" * 16, 0) is None
    assert lot.take(b"g" * 16, 4) is streams[4]
    assert lot.take(b"g" * 16, 4) is None                 # once only
    streams[4].close()
    lot.close_all()
    assert all(s.fd < 0 for s in streams)


def test_nothing_pending_is_not_parked():
    lot = ParkedStreams()
    stream = dirstream.DirStream(os.open("/", os.O_RDONLY | os.O_DIRECTORY))
    lot.park(b"g" * 16, 5, stream)
    assert len(lot) == 0 and stream.fd < 0
    with pytest.raises(OSError) as err:
        next(dirstream.DirStream(-1).resumed())
    assert err.value.errno == errno.EINVAL


def test_a_caller_who_cannot_open_the_directory_gets_nothing_parked(make_store):
    store = make_store()
    gfid = fill(store, 100, mode=0o700)
    entries, eof = one_call(store, gfid, 0, 1000)
    assert not eof and len(store.parked_streams) == 1
    with pytest.raises(PermissionError):
        one_call(store, gfid, entries[-1].cookie, 1000, caller=USER)
    assert len(store.parked_streams) == 1                 # still there, untouched
    more, _ = one_call(store, gfid, entries[-1].cookie, 1000)
    assert store.parked_streams.resumed == 1 and more


def test_the_fds_own_stream_and_its_parked_duplicate_share_the_position_safely(make_store):
    """A parked duplicate shares the open file with the Fd it came from: the Fd
    seeking elsewhere afterwards must not change what the parked one lists."""
    store = make_store()
    gfid = fill(store, 200)
    store.parked_streams.capacity = 0
    reference = whole(store, gfid, 1500)
    store.parked_streams.capacity = dirstream.PARK_CAPACITY
    fd = store.opendir(ROOT, gfid)
    try:
        first, _ = store.readdirp(ROOT, fd, 0, 1500)
        stop = first[-1].cookie
        store.parked_streams.capacity = 0             # the next call parks nothing
        elsewhere = reference[150][1]
        later, _ = store.readdirp(ROOT, fd, elsewhere, 1500)   # the Fd's own stream seeks
        assert [(e.name, e.cookie) for e in later] == reference[151:151 + len(later)]
    finally:
        store.release(fd)
    store.parked_streams.capacity = dirstream.PARK_CAPACITY
    resumed, _ = one_call(store, gfid, stop, 1500)
    assert store.parked_streams.resumed == 1
    at = len(first)
    assert [(e.name, e.cookie) for e in resumed] == reference[at:at + len(resumed)]


def test_fini_closes_parked_descriptors(make_store):
    before = open_fds()
    store = make_store()
    gfid = fill(store, 100)
    one_call(store, gfid, 0, 1000)
    assert len(store.parked_streams) == 1
    store.fini()
    assert open_fds() <= before


def test_two_listings_in_lockstep_from_two_threads(make_store):
    """Two clients listing one directory at once ask for the same cookies, so
    each may resume the stream the other parked: both still get it all."""
    import threading
    store = make_store()
    gfid = fill(store, 400)
    store.parked_streams.capacity = 0
    reference = whole(store, gfid, 1200)
    store.parked_streams.capacity = dirstream.PARK_CAPACITY
    results, errors = {}, []

    def lister(key):
        try:
            results[key] = [whole(store, gfid, 1200) for _ in range(5)]
        except BaseException as err:   # reported below
            errors.append(err)
    threads = [threading.Thread(target=lister, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert all(listing == reference for runs in results.values() for listing in runs)
    assert store.parked_streams.resumed > 0
