"""Record marking: RecordAssembler fed the way a socket feeds it."""
from __future__ import annotations

import struct

import pytest

from rpcsvc.record import (RecordAssembler, RecordTooLarge, TooManyFragments, frame,
                           record_mark)


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
