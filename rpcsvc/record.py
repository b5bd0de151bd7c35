"""ONC RPC record marking (RFC 5531 §11) for stream transports.

A record is one or more fragments, each preceded by a 4-byte big-endian word:
bit 31 says "last fragment", bits 0-30 give the fragment length.

`RecordAssembler` is sans-IO: the transport asks `want()` for the buffer to
`recv_into`, then reports how many bytes arrived with `filled(n)`, which
returns the records that became complete.  Why this shape:

- A fragment body is received straight into its own buffer (no scratch
  copy), and once that buffer spans the whole body it is sized body + 4 so
  the same `recv_into` also picks up the next header.
- The buffer grows with the data, not with the header's promise: it starts
  at `min(length, FIRST_CHUNK)` and doubles each time it fills, up to the
  announced length.  A peer that sends a 4-byte mark announcing 1 MiB and
  then nothing pins FIRST_CHUNK bytes, not 1 MiB; memory held for a record
  is never more than about twice what actually arrived (plus FIRST_CHUNK).
  Doubling keeps the copying amortised to one pass over the body.
- Without `bulk`, it never reads past the next fragment header, so bytes it
  holds back are never a complete record.  A connection the service stops reading (the
  outstanding-RPC throttle) therefore cannot strand a buffered call that no
  further POLLIN would ever deliver.
- `bulk` (the server's connections): between records, `chunk_wanted()`
  asks for a `recv()` of that many bytes instead of the 4-byte header, handed
  back with `filled_chunk()`, so one read takes every small call a client has
  pipelined (fio at iodepth 16 sends 16
  READs back to back).  Their bodies are returned as views of the chunk, no
  copy; a fragment cut by the chunk's end continues in a buffer of its own,
  as above.  Every complete record in a chunk is returned at once, so the
  transport, not this class, holds back calls when it is throttled (and
  wakes itself for them, see rpcsvc.transport).  With 1 MiB WRITEs most of
  the body still goes straight into its own buffer.  Clients keep bulk 0.
- A header announcing more than `max_record` (all fragments of the record
  together) raises `RecordTooLarge` before a byte of the body is read or any
  memory is allocated for it; a record made of an absurd number of empty
  fragments raises `TooManyFragments`.  Either way the caller closes the
  connection: framing is lost, there is nobody to answer.
"""
from __future__ import annotations

import struct

LAST_FRAGMENT = 0x80000000
FRAGMENT_SIZE_MASK = 0x7FFFFFFF
HEADER_SIZE = 4
DEFAULT_MAX_EMPTY_FRAGMENTS = 100_000
FIRST_CHUNK = 16 * 1024     # first buffer for a fragment body; grown as it fills
GROWTH = 16                # how much a fragment buffer grows once it is full

_WORD = struct.Struct(">I")


class FramingError(Exception):
    """The byte stream can no longer be split into records; close it."""


class RecordTooLarge(FramingError):
    """A fragment header announced a record above the configured maximum."""


class TooManyFragments(FramingError):
    """A record kept sending empty non-last fragments."""


def record_mark(length: int, last: bool = True) -> bytes:
    """The 4-byte fragment header for a fragment of `length` bytes."""
    if not 0 <= length <= FRAGMENT_SIZE_MASK:
        raise ValueError(f"fragment length {length} out of range")
    return _WORD.pack((LAST_FRAGMENT if last else 0) | length)


def frame(message: bytes) -> bytes:
    """`message` as a single-fragment record (clients and tests)."""
    return record_mark(len(message)) + bytes(message)


class RecordAssembler:
    """Turns a stream of received bytes into complete records (see module doc)."""

    __slots__ = ("max_record", "max_empty_fragments", "_header", "_header_have",
                 "_frag", "_frag_len", "_frag_have", "_frag_last", "_pieces",
                 "_frag_target", "bulk",
                 "_record_len", "_empty_count")

    def __init__(self, max_record: int, max_empty_fragments: int = DEFAULT_MAX_EMPTY_FRAGMENTS,
                 bulk: int = 0):
        if max_record <= 0:
            raise ValueError("max_record must be positive")
        self.max_record = max_record
        self.max_empty_fragments = max_empty_fragments
        self._header = bytearray(HEADER_SIZE)
        self._header_have = 0
        self._frag: bytearray | None = None  # body + room for the next header
        self._frag_len = 0
        self._frag_target = 0                # body + next header: the buffer's final size
        self._frag_have = 0
        self._frag_last = False
        self._pieces: list[memoryview] = []
        self._record_len = 0
        self._empty_count = 0
        self.bulk = bulk                     # bytes of one read between records; 0: none

    @property
    def idle(self) -> bool:
        """True between records (nothing of a record has been received)."""
        return self._frag is None and self._header_have == 0 and not self._pieces \
            and self._empty_count == 0

    def want(self) -> memoryview:
        """The buffer the next `recv_into` should fill (never empty); between
        records of a `bulk` assembler, read a chunk instead (`chunk_wanted`)."""
        if self._frag is None:
            return memoryview(self._header)[self._header_have:]
        return memoryview(self._frag)[self._frag_have:]

    def chunk_wanted(self) -> int:
        """How many bytes to `recv()` as one chunk for `filled_chunk`, or 0 when
        the next read must go into `want()` (mid-record, or no `bulk`).

        Why `recv()` and not a buffer of ours: a fresh `bulk`-byte bytearray
        per read is zeroed by the allocator (64 KiB: ~2 us, and the cache it
        sweeps) for a call of a hundred bytes; `sock.recv(bulk)` fills an
        uninitialised buffer and trims it to what arrived."""
        if self.bulk and self._frag is None and self._header_have == 0 and not self._pieces:
            return self.bulk
        return 0

    def filled_chunk(self, data: bytes) -> list[memoryview | bytes]:
        """The records in `data`, received whole while `chunk_wanted()` said so
        (records are views of `data`; a fragment cut by its end continues in
        a buffer of its own, read through `want()`)."""
        count = len(data)
        if count > HEADER_SIZE and not self._empty_count:
            # The usual case, one whole single-fragment record: no splitting loop.
            length = count - HEADER_SIZE
            if _WORD.unpack_from(data)[0] == LAST_FRAGMENT | length and length <= self.max_record:
                return [memoryview(data)[HEADER_SIZE:]]
        records: list[memoryview | bytes] = []
        self._split_chunk(data, count, records)
        return records

    def filled(self, count: int) -> list[memoryview | bytes]:
        """Account for `count` bytes received into `want()`; return complete records."""
        records: list[memoryview | bytes] = []
        if self._frag is None:
            self._header_have += count
            if self._header_have == HEADER_SIZE:
                self._header_have = 0
                self._start_fragment(_WORD.unpack_from(self._header)[0], records)
            return records
        self._frag_have += count
        if self._frag_have < self._frag_len:
            if self._frag_have == len(self._frag):
                self._grow()
            return records
        frag, length, extra = self._frag, self._frag_len, self._frag_have - self._frag_len
        self._frag = None
        self._finish_fragment(memoryview(frag)[:length], records)
        if extra:
            self._header[:extra] = frag[length:length + extra]
            self._header_have = extra
            if extra == HEADER_SIZE:
                self._header_have = 0
                self._start_fragment(_WORD.unpack_from(self._header)[0], records)
        return records

    # -- internals -----------------------------------------------------------------

    def _split_chunk(self, chunk, count: int, records: list) -> None:
        """Records out of a bulk read: complete fragments are views of the chunk
        (no copy); a fragment cut by the end of the chunk continues in a buffer
        of its own, as if its header had been read alone."""
        view = memoryview(chunk)
        pos = 0
        while count - pos >= HEADER_SIZE:
            word = _WORD.unpack_from(chunk, pos)[0]
            pos += HEADER_SIZE
            length = word & FRAGMENT_SIZE_MASK
            have = count - pos
            if length == 0 or have < length:
                self._start_fragment(word, records)
                if length:
                    self._take_partial(view[pos:count])
                    return
                continue
            if word & LAST_FRAGMENT and not self._pieces and not self._empty_count:
                # A whole record in one fragment, the usual case: no helper calls.
                if length > self.max_record:
                    self._check_size(length)    # raises RecordTooLarge
                records.append(view[pos:pos + length])
                pos += length
                continue
            self._check_size(length)
            self._frag_last = bool(word & LAST_FRAGMENT)
            self._finish_fragment(view[pos:pos + length], records)
            pos += length
        rest = count - pos
        self._header[:rest] = chunk[pos:count]
        self._header_have = rest

    def _take_partial(self, body: memoryview) -> None:
        """The start of the fragment just begun arrived with the chunk."""
        have = len(body)
        if have > len(self._frag):
            self._frag = bytearray(self._grown_size(have))
        self._frag[:have] = body
        self._frag_have = have
        if have == len(self._frag) and have < self._frag_len:
            self._grow()

    def _check_size(self, length: int) -> None:
        if self._record_len + length > self.max_record:
            raise RecordTooLarge(
                f"fragment of {length} bytes makes the record exceed {self.max_record}")

    def _start_fragment(self, word: int, records: list) -> None:
        length = word & FRAGMENT_SIZE_MASK
        last = bool(word & LAST_FRAGMENT)
        self._check_size(length)
        self._frag_last = last
        if length == 0:
            if not last:
                self._empty_count += 1
                if self._empty_count > self.max_empty_fragments:
                    raise TooManyFragments(
                        f"more than {self.max_empty_fragments} empty fragments in one record")
            self._finish_fragment(memoryview(b""), records)
            return
        self._frag_len = length
        self._frag_target = length + HEADER_SIZE
        self._frag = bytearray(min(self._frag_target, FIRST_CHUNK))
        self._frag_have = 0

    def _grow(self) -> None:
        """The fragment buffer is full but the body is not: make it GROWTH times
        bigger (at most the target).

        A peer must send what it has announced before it is given more memory
        (an unsent 1 MiB fragment pins 16 KiB); growing 16x at a time keeps a
        1 MiB WRITE to one small copy (doubling made seven, and showed as the
        top of the profile under sequential writes; 8x made the copies of a
        bulk read's 64 KiB and then of 512 KiB a third of it).  A new buffer
        and a copy, not an in-place resize: the caller may still hold a
        memoryview of the old one (the `want()` it just filled)."""
        old = self._frag
        bigger = bytearray(self._grown_size(len(old)))
        memoryview(bigger)[:self._frag_have] = memoryview(old)[:self._frag_have]
        self._frag = bigger

    def _grown_size(self, have: int) -> int:
        """GROWTH times `have`, or the whole target when that is near anyway."""
        size = GROWTH * have
        return self._frag_target if size + FIRST_CHUNK >= self._frag_target else size

    def _finish_fragment(self, body: memoryview, records: list) -> None:
        if len(body):
            self._pieces.append(body)
            self._record_len += len(body)
        if not self._frag_last:
            return
        pieces = self._pieces
        if len(pieces) == 1:
            record: memoryview | bytes = pieces[0]
        else:
            record = b"".join(pieces)
        self._pieces = []
        self._record_len = 0
        self._empty_count = 0
        records.append(record)
