"""Record marking: RecordAssembler fed the way a socket feeds it."""
from __future__ import annotations

import struct

import pytest

from rpcsvc.record import (FIRST_CHUNK, GROWTH, RecordAssembler, RecordTooLarge, TooManyFragments,
                           frame, record_mark)


def feed(assembler: RecordAssembler, data: bytes, chunk: int | None = None) -> list[bytes]:
    """Push `data` through want()/filled() as recv_into would, `chunk` bytes at most each time."""
    out, at = [], 0
    while at < len(data):
        buf = assembler.want()
        n = min(len(buf), len(data) - at, chunk or len(buf))
        buf[:n] = data[at:at + n]
        at += n
        out.extend(bytes(r) for r in assembler.filled(n))
    return out


def fragment(body: bytes, last: bool) -> bytes:
    return record_mark(len(body), last) + body


def test_single_fragment_records_back_to_back():
    a = RecordAssembler(1 << 20)
    data = frame(b"first") + frame(b"second record") + frame(b"x" * 4000)
    assert feed(a, data) == [b"first", b"second record", b"x" * 4000]
    assert a.idle


def test_reads_never_go_past_the_next_header():
    """The throttle relies on it: held-back bytes are never a complete record."""
    a = RecordAssembler(1 << 20)
    assert len(a.want()) == 4
    buf = a.want()
    buf[:4] = record_mark(10)
    assert a.filled(4) == []
    assert len(a.want()) == 10 + 4          # the body plus the next header, no more


def test_multi_fragment_record_is_joined():
    a = RecordAssembler(1 << 20)
    data = fragment(b"abc", False) + fragment(b"defg", False) + fragment(b"hi", True)
    assert feed(a, data) == [b"abcdefghi"]


def test_record_split_into_one_byte_reads():
    a = RecordAssembler(1 << 20)
    data = fragment(b"hello ", False) + fragment(b"world", True) + frame(b"again")
    assert feed(a, data, chunk=1) == [b"hello world", b"again"]


def test_zero_length_fragments_are_accepted():
    a = RecordAssembler(1 << 20)
    data = record_mark(0, False) * 1000 + fragment(b"payload", True)
    assert feed(a, data) == [b"payload"]
    assert feed(a, frame(b"")) == [b""]


def test_endless_empty_fragments_are_refused():
    a = RecordAssembler(1 << 20, max_empty_fragments=50)
    with pytest.raises(TooManyFragments):
        feed(a, record_mark(0, False) * 51)


def test_empty_fragment_count_resets_per_record():
    a = RecordAssembler(1 << 20, max_empty_fragments=3)
    data = (record_mark(0, False) * 3 + frame(b"a")) * 4
    assert feed(a, data) == [b"a"] * 4


def test_fragment_above_max_record_is_refused_before_reading_it():
    a = RecordAssembler(1000)
    buf = a.want()
    buf[:4] = struct.pack(">I", 0x80000000 | 0x7FFFFFFF)
    with pytest.raises(RecordTooLarge):
        a.filled(4)


def test_max_record_counts_all_fragments_of_a_record():
    a = RecordAssembler(100)
    assert feed(a, frame(b"y" * 100)) == [b"y" * 100]       # exactly the maximum is fine
    with pytest.raises(RecordTooLarge):
        feed(a, fragment(b"z" * 60, False) + fragment(b"z" * 41, True))


def test_record_mark_bounds():
    assert record_mark(5) == b"\x80\x00\x00\x05"
    assert record_mark(5, last=False) == b"\x00\x00\x00\x05"
    with pytest.raises(ValueError):
        record_mark(1 << 31)
    with pytest.raises(ValueError):
        RecordAssembler(0)


# --- the fragment buffer grows with the data (review finding 4) -------------------------

def test_announced_length_is_not_allocated_up_front():
    """A mark announcing ~1 MiB pins FIRST_CHUNK bytes until the body really arrives."""
    a = RecordAssembler(2 << 20)
    buf = a.want()
    buf[:4] = record_mark((1 << 20) + 60000)
    assert a.filled(4) == []
    assert len(a.want()) == FIRST_CHUNK
    assert not a.idle


def test_buffer_grows_as_the_body_arrives_and_never_reads_past_the_next_header():
    body = bytes(range(256)) * 1000 + b"tail"            # 256004 bytes: one growth
    a = RecordAssembler(1 << 20)
    a.want()[:4] = record_mark(len(body))
    a.filled(4)
    sizes, at = [], 0
    while at < len(body):
        buf = a.want()
        sizes.append(len(buf) + at)                      # the buffer's capacity
        n = min(len(buf), len(body) - at)
        buf[:n] = body[at:at + n]
        at += n
        records = a.filled(n)
    assert [bytes(r) for r in records] == [body]
    assert sizes[0] == FIRST_CHUNK
    assert all(b == GROWTH * s or b == len(body) + 4 for s, b in zip(sizes, sizes[1:]))
    assert len(sizes) == 2                               # 16 KiB, then (16x) the whole body
    assert sizes[-1] == len(body) + 4                    # the last one also takes a header
    assert a.idle


def test_growing_buffer_keeps_the_record_intact_across_odd_reads():
    records = [b"a" * (FIRST_CHUNK - 3), b"b" * (FIRST_CHUNK * 3 + 1), b"c" * 5]
    data = b"".join(frame(r) for r in records)
    for chunk in (1000, 4093, FIRST_CHUNK + 7):
        assert feed(RecordAssembler(1 << 20), data, chunk=chunk) == records


def test_grow_does_not_touch_a_buffer_the_caller_still_holds():
    """The transport's memoryview of the filled buffer is alive while filled() runs."""
    a = RecordAssembler(1 << 20)
    a.want()[:4] = record_mark(FIRST_CHUNK * 2)
    a.filled(4)
    held = a.want()                                      # like the transport's `buf`
    held[:] = b"x" * len(held)
    a.filled(len(held))                                  # grows: must not resize `held`'s base
    rest = a.want()
    rest[:FIRST_CHUNK] = b"y" * FIRST_CHUNK
    (record,) = a.filled(FIRST_CHUNK)
    assert bytes(record) == b"x" * FIRST_CHUNK + b"y" * FIRST_CHUNK
    held.release()


# --- bulk reads between records (several small calls per recv) --------------------------

def feed_like_the_transport(assembler: RecordAssembler, data: bytes,
                            chunk: int | None = None) -> list[bytes]:
    """Push `data` as TcpConnection._read does: recv() of a chunk between records,
    recv_into(want()) inside one; `chunk` bytes at most each time."""
    out, at = [], 0
    while at < len(data):
        size = assembler.chunk_wanted()
        if size:
            n = min(size, len(data) - at, chunk or size)
            records = assembler.filled_chunk(data[at:at + n])
        else:
            buf = assembler.want()
            n = min(len(buf), len(data) - at, chunk or len(buf))
            buf[:n] = data[at:at + n]
            records = assembler.filled(n)
        at += n
        out.extend(bytes(r) for r in records)
    return out


def _mixed_stream(seed: int) -> tuple[bytes, list[bytes]]:
    """Records of many sizes, some in several fragments, some with empty fragments."""
    import random
    rng = random.Random(seed)
    data, records = [], []
    for index in range(60):
        body = bytes([index % 251]) * rng.choice((0, 1, 3, 40, 180, 4096, FIRST_CHUNK + 5, 70000))
        cut = rng.randrange(len(body) + 1) if rng.random() < 0.3 else len(body)
        pieces = [body[:cut], b"", body[cut:]] if cut < len(body) else [body]
        for number, piece in enumerate(pieces):
            data.append(fragment(piece, last=number == len(pieces) - 1))
        records.append(body)
    return b"".join(data), records


@pytest.mark.parametrize("chunk", [1, 3, 4, 5, 997, 4096, 65536, None])
def test_bulk_reads_give_the_same_records_as_header_sized_reads(chunk):
    data, records = _mixed_stream(seed=chunk or 0)
    assert feed(RecordAssembler(1 << 20), data, chunk=chunk) == records
    bulk = RecordAssembler(1 << 20, bulk=16 * 1024)
    assert feed_like_the_transport(bulk, data, chunk=chunk) == records
    assert bulk.idle


def test_a_bulk_read_returns_every_complete_record_it_holds_as_views():
    """Nothing complete is kept back (the transport's throttle holds the rest)."""
    a = RecordAssembler(1 << 20, bulk=4096)
    data = frame(b"one") + frame(b"two" * 10) + record_mark(50) + b"par"
    assert a.chunk_wanted() == 4096
    records = a.filled_chunk(data)
    assert [bytes(r) for r in records] == [b"one", b"two" * 10]
    assert all(isinstance(r, memoryview) for r in records)   # no copy of the bodies
    assert len(a.want()) == 50 - 3 + 4                       # the cut record continues alone
    assert not a.idle


def test_a_bulk_read_refuses_a_record_above_max_record():
    a = RecordAssembler(1000, bulk=4096)
    data = frame(b"fine") + record_mark(1001) + b"x" * 100
    with pytest.raises(RecordTooLarge):
        a.filled_chunk(data)
    b = RecordAssembler(1000, bulk=4096)
    whole = frame(b"y" * 1001)                                  # complete inside the chunk
    with pytest.raises(RecordTooLarge):
        b.filled_chunk(whole)


def test_a_bulk_read_counts_empty_fragments_like_any_read():
    a = RecordAssembler(1 << 20, max_empty_fragments=5, bulk=4096)
    data = record_mark(0, last=False) * 6 + frame(b"z")
    with pytest.raises(TooManyFragments):
        a.filled_chunk(data)


def test_a_big_fragment_cut_by_a_bulk_read_grows_from_what_arrived():
    """A 1 MiB WRITE whose first 64 KiB came with the bulk read: its buffer is
    the whole fragment at once (16 x 64 KiB is near enough), one small copy."""
    a = RecordAssembler(2 << 20, bulk=64 * 1024)
    body = bytes(range(256)) * 4096                      # 1 MiB
    data = frame(body)
    size = a.chunk_wanted()
    assert a.filled_chunk(data[:size]) == []
    assert len(a.want()) == len(body) + 4 - (size - 4)   # the rest, plus the next header
    assert feed(a, data[size:]) == [body]


def test_a_small_cut_fragment_gets_only_growth_times_what_arrived():
    a = RecordAssembler(64 << 20, bulk=4096)
    data = record_mark(32 << 20) + b"x" * 4092
    assert a.filled_chunk(data) == []
    assert len(a.want()) == FIRST_CHUNK - 4092            # not the announced 32 MiB
    b = RecordAssembler(64 << 20, bulk=64 * 1024)
    data = record_mark(32 << 20) + b"y" * (60 * 1024)
    assert b.filled_chunk(data) == []
    assert len(b.want()) == (GROWTH - 1) * 60 * 1024      # 16 x what came, not 32 MiB


def test_a_bulk_read_joins_empty_fragments_to_the_record_they_precede():
    """The whole-record shortcut is only taken with nothing pending: a record
    that began with empty fragments comes out whole, and its empty-fragment
    count starts again for the next record."""
    a = RecordAssembler(1 << 20, max_empty_fragments=3, bulk=4096)
    data = (record_mark(0, last=False) * 3 + frame(b"after empties")
            + record_mark(0, last=False) * 3 + frame(b"again") + frame(b"plain"))
    assert [bytes(r) for r in a.filled_chunk(data)] == [b"after empties", b"again", b"plain"]
    assert a.idle


def test_a_chunk_is_wanted_only_between_records_and_only_with_bulk():
    assert RecordAssembler(1 << 20).chunk_wanted() == 0
    a = RecordAssembler(1 << 20, bulk=4096)
    assert a.chunk_wanted() == 4096
    assert a.filled_chunk(frame(b"whole")[:6]) == []           # mark and two bytes of body
    assert a.chunk_wanted() == 0 and len(a.want()) == 3 + 4    # the rest goes to its buffer
    assert feed_like_the_transport(a, b"ole") == [b"whole"]
    assert a.chunk_wanted() == 4096 and a.idle


def test_a_chunk_of_one_whole_record_is_a_view_of_it():
    a = RecordAssembler(1 << 20, bulk=4096)
    data = frame(b"a call")
    (record,) = a.filled_chunk(data)
    assert isinstance(record, memoryview) and record.obj is data and bytes(record) == b"a call"
    assert a.idle


def test_a_chunk_holding_a_record_above_max_record_is_refused():
    with pytest.raises(RecordTooLarge):
        RecordAssembler(1000, bulk=4096).filled_chunk(frame(b"y" * 1001))
    assert [bytes(r) for r in RecordAssembler(1000, bulk=4096).filled_chunk(
        frame(b"y" * 1000))] == [b"y" * 1000]


def test_a_chunk_shortcut_is_not_taken_for_a_fragment_that_is_not_the_last():
    a = RecordAssembler(1 << 20, bulk=4096)
    assert a.filled_chunk(fragment(b"first half ", last=False)) == []
    assert not a.idle
    assert feed_like_the_transport(a, fragment(b"second half", last=True)) == [
        b"first half second half"]


def test_a_chunk_after_empty_fragments_still_joins_and_counts_them():
    a = RecordAssembler(1 << 20, max_empty_fragments=2, bulk=4096)
    assert a.filled_chunk(record_mark(0, last=False) * 2) == []
    assert a.chunk_wanted() == 4096                 # between fragments, nothing buffered
    assert [bytes(r) for r in a.filled_chunk(frame(b"body"))] == [b"body"]
    b = RecordAssembler(1 << 20, max_empty_fragments=2, bulk=4096)
    b.filled_chunk(record_mark(0, last=False) * 2)
    with pytest.raises(TooManyFragments):
        b.filled_chunk(record_mark(0, last=False) + frame(b"late"))
