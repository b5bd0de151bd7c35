"""performance/readdir-ahead over storage/posix: what it hands out is what the
storage would have answered at the time of the call, and it gets out of the
way whenever it cannot be sure of that."""
from __future__ import annotations

import os

import pytest

from glusterfsd import after_reply
from glusterfsd.graph import Graph
from glusterfsd.volfile import VolfileError, parse_text
from glusterfsd.xlator import ROOT_CALLER as ROOT, Caller, SetAttr
from xlators.performance import readdir_ahead
from xlators.performance.readdir_ahead import ReaddirAhead
from xlators.storage.identity import reset_thread

SIZE = 1024       # a small reply: a 60-entry directory takes several calls


@pytest.fixture
def stack(make_store):
    """(readdir-ahead, the posix store under it, a directory gfid holding f00..f59)."""
    store = make_store({"metadata-sync": "off"})     # what is synced is not the point here
    rda = ReaddirAhead("test-rda", {}, [store])
    rda.init()
    iatt, _, _ = store.mkdir(ROOT, b"\0" * 15 + b"\1", b"d", 0o755)
    os.chmod(os.path.join(store.directory, "d"), 0o777)
    for i in range(60):
        fd, _, _, _ = store.create(ROOT, iatt.gfid, b"f%02d" % i, os.O_RDWR, 0o644)
        store.release(fd)
    yield rda, store, iatt.gfid
    rda.fini()


def serving_thread():
    """Make this test thread one that serves calls (it runs its deferred work)."""
    return after_reply.pending_here()


def one_call(xl, caller, gfid, cookie, size=SIZE):
    """(entries, eof) of one call as the NFS layer makes it: opendir, readdirp, release."""
    fd = xl.opendir(caller, gfid)
    try:
        return xl.readdirp(caller, fd, cookie, size)
    finally:
        xl.release(fd)


def list_in_calls(xl, gfid, caller=ROOT, between=None, size=SIZE, take=None) -> dict:
    """{name: Dirent} of a whole listing made as a client makes it: one
    opendir/readdirp/release per call, the deferred work run after each
    (as the serving thread does once the reply is out), then `between(n)`.
    `take`: how many entries of each answer fit the reply (None: all), as
    when a client's dircount is smaller than what the storage reckons with."""
    pending = serving_thread()
    out, cookie = {}, 0
    for calls in range(1, 1000):
        entries, eof = one_call(xl, caller, gfid, cookie, size)
        after_reply.run(pending)
        if take is not None and len(entries) > take:
            entries, eof = entries[:take], False
        out.update((entry.name, entry) for entry in entries)
        if eof:
            return out
        cookie = entries[-1].cookie
        if between is not None:
            between(calls)
    raise AssertionError("listing did not end")


def in_second_call(store, gfid) -> bytes:
    """A file name the second call of a listing brings (the order is the
    directory's, not the names')."""
    first, _ = one_call(store, ROOT, gfid, 0)
    second, _ = one_call(store, ROOT, gfid, first[-1].cookie)
    return next(entry.name for entry in second if entry.name.startswith(b"f"))


def sizes(listing: dict) -> dict:
    return {name: entry.iatt.size for name, entry in listing.items() if entry.iatt is not None}


def test_batches_made_ahead_are_used_and_list_what_the_storage_lists(stack):
    rda, store, gfid = stack
    through_rda = list_in_calls(rda, gfid)
    direct = list_in_calls(store, gfid)
    assert sorted(through_rda) == sorted(direct)
    assert len([n for n in through_rda if n.startswith(b"f")]) == 60
    assert sizes(through_rda) == sizes(direct)
    assert {n: e.iatt.gfid for n, e in through_rda.items() if e.iatt} == \
        {n: e.iatt.gfid for n, e in direct.items() if e.iatt}
    counts = rda.dump_private()
    assert counts["made"] >= 3, counts                 # several calls, each made ahead
    assert counts["used"] == counts["made"]
    assert counts["missed"] == counts["stale"] == counts["failed"] == 0
    assert counts["listings"] == 0 and counts["held_bytes"] == 0


def test_a_client_taking_less_than_a_batch_gets_the_rest_next(stack):
    """The entries of a batch that did not fit the reply answer the next call
    (no new work), then the batch made ahead follows on."""
    rda, store, gfid = stack
    listed = list_in_calls(rda, gfid, take=2)
    assert sorted(listed) == sorted(list_in_calls(store, gfid))
    counts = rda.counts
    assert counts["leftovers"] >= 10 and counts["used"] >= 1, counts
    assert counts["missed"] == counts["stale"] == 0


@pytest.mark.parametrize("take", [None, 2])
def test_a_change_through_the_xlator_makes_the_batch_stale(stack, take):
    """A WRITE answered between two calls shows in the next call's attributes,
    even though the batch for it (or the leftovers) was read before the write."""
    rda, store, gfid = stack
    name = in_second_call(store, gfid)

    def grow_it(calls):
        if calls == 1:
            iatt = store.lookup(ROOT, gfid, name)
            fd = rda.open(ROOT, iatt.gfid, os.O_RDWR)
            rda.write(ROOT, fd, 0, b"x" * 300, 2)
            rda.release(fd)
    listed = list_in_calls(rda, gfid, between=grow_it, take=take)
    assert listed[name].iatt.size == 300
    assert rda.counts["stale"] == 1


@pytest.mark.parametrize("change", ["setattr", "unlink", "truncating open"])
def test_every_kind_of_change_makes_batches_stale(stack, change):
    rda, store, gfid = stack
    name = in_second_call(store, gfid)
    victim = store.lookup(ROOT, gfid, name)
    fd = store.open(ROOT, victim.gfid, os.O_RDWR)
    store.write(ROOT, fd, 0, b"y" * 10, 2)
    store.release(fd)

    def change_it(calls):
        if calls != 1:
            return
        if change == "setattr":
            rda.setattr(ROOT, victim.gfid, SetAttr(size=0))
        elif change == "unlink":
            rda.unlink(ROOT, gfid, name)
        else:
            rda.release(rda.open(ROOT, victim.gfid, os.O_RDWR | os.O_TRUNC))
    listed = list_in_calls(rda, gfid, between=change_it)
    if change == "unlink":
        assert name not in listed
    else:
        assert listed[name].iatt.size == 0
    assert rda.counts["stale"] == 1


def test_a_failed_change_still_makes_batches_stale(stack):
    """A fop that fails may have done part of its work: batches are not trusted."""
    rda, store, gfid = stack

    def fail_a_change(calls):
        if calls == 1:
            with pytest.raises(FileExistsError):
                rda.mkdir(ROOT, gfid, b"f00", 0o755)
    list_in_calls(rda, gfid, between=fail_a_change)
    assert rda.counts["stale"] == 1


def test_a_batch_is_only_for_the_credentials_it_was_made_with(stack):
    rda, store, gfid = stack
    other = Caller(1000, 1000, (1000,))
    pending = serving_thread()
    entries, eof = one_call(rda, ROOT, gfid, 0)
    after_reply.run(pending)                 # made ahead for root
    assert not eof and rda.counts["made"] == 1
    theirs, _ = one_call(rda, other, gfid, entries[-1].cookie)
    assert rda.counts["used"] == 0 and rda.counts["missed"] == 1
    assert theirs and theirs[0].name not in {e.name for e in entries}


def test_an_old_batch_is_not_used(stack, monkeypatch):
    """Changes made behind the xlator's back (another worker, the export itself)
    are seen once a batch is older than MAX_AGE."""
    rda, store, gfid = stack
    monkeypatch.setattr(readdir_ahead, "MAX_AGE", -1.0)
    listed = list_in_calls(rda, gfid)
    assert len(listed) == 62
    assert rda.counts["used"] == 0 and rda.counts["stale"] == rda.counts["made"] >= 3


def test_a_change_behind_the_back_shows_once_the_batch_before_it_is_used(stack):
    """The bound in the other direction: the batch made before a change on the
    export itself is served while young (so the test proves the age check is
    what lets the change through above)."""
    rda, store, gfid = stack
    name = in_second_call(store, gfid)
    path = os.path.join(store.directory, "d", name.decode())

    def grow_behind_the_back(calls):
        if calls == 1:
            with open(path, "ab") as f:
                f.write(b"z" * 77)
    listed = list_in_calls(rda, gfid, between=grow_behind_the_back)
    assert listed[name].iatt.size == 0             # the batch made before the append
    assert rda.counts["stale"] == 0
    assert list_in_calls(rda, gfid)[name].iatt.size == 77


def test_a_batch_that_fails_is_not_kept_and_the_call_answers_the_error(stack):
    rda, store, gfid = stack
    user = Caller(1000, 1000, (1000,))
    pending = serving_thread()
    one_call(rda, user, gfid, 0)
    reset_thread()          # the fops left uid 1000's fsuid on this thread
    os.chmod(os.path.join(store.directory, "d"), 0o700)     # owned by root: 1000 is out
    after_reply.run(pending)
    assert rda.counts["failed"] == 1 and rda.dump_private()["held_bytes"] == 0
    with pytest.raises(PermissionError):
        rda.opendir(user, gfid)


def test_off_a_serving_thread_nothing_is_made_ahead(stack):
    import threading
    rda, store, gfid = stack
    got = []

    def list_once():        # a fresh thread: after_reply.pending_here never called on it
        got.append(one_call(rda, ROOT, gfid, 0))
    thread = threading.Thread(target=list_once)
    thread.start()
    thread.join()
    assert got and not got[0][1]
    assert rda.counts["not_made"] == 1 and rda.counts["made"] == 0


def test_held_bytes_stay_within_the_cache_limit(make_store):
    store = make_store({"metadata-sync": "off"})
    rda = ReaddirAhead("test-rda", {"rda-cache-limit": SIZE - 1}, [store])
    rda.init()
    try:
        iatt, _, _ = store.mkdir(ROOT, b"\0" * 15 + b"\1", b"d", 0o755)
        for i in range(40):
            store.release(store.create(ROOT, iatt.gfid, b"g%02d" % i, os.O_RDWR, 0o644)[0])
        listed = list_in_calls(rda, iatt.gfid)
        assert len(listed) == 42
        assert rda.counts["made"] == 0 and rda.counts["not_made"] >= 1
    finally:
        rda.fini()


VOLFILE = """volume store
    type storage/posix
    option directory {directory}
end-volume
volume rda
    type performance/readdir-ahead
    {option}
    subvolumes store
end-volume
"""


def test_volfile_takes_it_and_names_a_bad_option(tmp_path):
    text = VOLFILE.format(directory=tmp_path, option="option rda-cache-limit 2MB")
    graph = Graph.construct(parse_text(text, "r.vol"), [])
    assert graph.xlators["rda"].opts["rda-cache-limit"] == 2 << 20
    with pytest.raises(VolfileError, match="r.vol:7:.*rda-cache-limit"):
        Graph.construct(parse_text(VOLFILE.format(directory=tmp_path,
                                                  option="option rda-cache-limit lots"),
                                   "r.vol"), [])
    two = text.replace("subvolumes store", "subvolumes store store2").replace(
        "volume rda", "volume store2\n    type storage/posix\n    option directory "
        f"{tmp_path}\nend-volume\nvolume rda")
    with pytest.raises(VolfileError, match="takes exactly 1 subvolume"):
        Graph.construct(parse_text(two, "r.vol"), [])


def test_a_batch_ready_after_its_listing_moved_on_is_counted_dropped(stack):
    """A batch made ahead whose listing was forgotten while the storage read it
    is not kept, and the statedump says so (not `made`)."""
    rda, store, gfid = stack
    real = store.readdirp
    reads = []

    def readdirp_then_forget(caller, fd, cookie, size):
        reads.append(cookie)
        got = real(caller, fd, cookie, size)
        if len(reads) == 2:              # the read made ahead, after the first call's
            rda.fini()                   # every listing forgotten meanwhile
        return got
    store.readdirp = readdirp_then_forget
    pending = serving_thread()
    entries, eof = one_call(rda, ROOT, gfid, 0)
    after_reply.run(pending)
    assert not eof and len(reads) == 2
    counts = rda.dump_private()
    assert counts["dropped"] == 1 and counts["made"] == 0, counts
    assert counts["held_bytes"] == 0
