"""The duplicate request cache: run a non-idempotent call once, however often it is sent.

A client that loses a reply retransmits the call with the same xid.  For
REMOVE, RENAME, CREATE ... running it again gives the wrong answer (NOENT for
a remove that worked), so the reply of such a call is kept and resent.

Keyed as gnfs keys it, plus a checksum of the arguments: client IP (not the
port: a reconnecting client has a new one), xid, program, version,
procedure, crc32(args).  The checksum matters because some clients reuse
xids (pyNfsClient gives every call in the same second the same xid).

States: IN_TRANSIT while an actor runs (a duplicate then is dropped silently,
the original's reply will answer it) and CACHED once the reply is known.
Bounded by `size` entries; the least recently used cached entries go first,
in-transit ones are never evicted (the throttle already bounds them).

`SharedDuplicateRequestCache` (below) is the same cache in shared memory, for
the worker processes of a prefork server (see its docstring).
"""
from __future__ import annotations

import fcntl
import mmap
import os
import socket
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict

from glusterfsd.pidfile import running

IN_TRANSIT = "in-transit"
CACHED = "cached"

MISS = "miss"
HIT = "hit"
DROP = "drop"


class DrcEntry:
    __slots__ = ("key", "state", "reply")

    def __init__(self, key):
        self.key = key
        self.state = IN_TRANSIT
        self.reply: bytes | None = None


class DuplicateRequestCache:
    """Thread-safe; `lookup` on the event thread, `finish`/`abandon` on stage threads."""

    def __init__(self, size: int = 0x20000):
        if size <= 0:
            raise ValueError("drc size must be positive")
        self.size = size
        self._entries: OrderedDict[tuple, DrcEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.in_transit_drops = 0
        self.inserts = 0
        self.evictions = 0
        self._per_client: dict[str, int] = {}

    @staticmethod
    def make_key(client_ip: str, xid: int, prog: int, vers: int, proc: int, args) -> tuple:
        return (client_ip, xid, prog, vers, proc, zlib.crc32(args))

    def lookup(self, key: tuple) -> tuple[str, DrcEntry | bytes | None]:
        """(MISS, new entry) | (HIT, cached reply bytes) | (DROP, None)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry.state == CACHED:
                    self.hits += 1
                    return HIT, entry.reply
                self.in_transit_drops += 1
                return DROP, None
            entry = DrcEntry(key)
            self._entries[key] = entry
            self.inserts += 1
            self._per_client[key[0]] = self._per_client.get(key[0], 0) + 1
            self._evict_locked()
            return MISS, entry

    def finish(self, entry: DrcEntry, reply: bytes) -> None:
        """The call behind `entry` answered `reply`: keep it for retransmissions."""
        with self._lock:
            entry.reply = reply
            entry.state = CACHED
            self._evict_locked()

    def abandon(self, entry: DrcEntry) -> None:
        """No reply was produced (connection gone before the call ran): forget the entry."""
        with self._lock:
            if self._entries.get(entry.key) is entry and entry.state == IN_TRANSIT:
                self._remove_locked(entry.key)

    def _remove_locked(self, key) -> None:
        del self._entries[key]
        client = key[0]
        left = self._per_client.get(client, 1) - 1
        if left:
            self._per_client[client] = left
        else:
            self._per_client.pop(client, None)

    def _evict_locked(self) -> None:
        excess = len(self._entries) - self.size
        if excess <= 0:
            return
        victims = []
        for key, entry in self._entries.items():
            if entry.state == CACHED:
                victims.append(key)
                if len(victims) == excess:
                    break
        for key in victims:
            self._remove_locked(key)
        self.evictions += len(victims)

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict:
        """Counts for the statedump, under gnfs's key names where gnfs has one."""
        with self._lock:
            return {
                "type": "in-memory",
                "max_cache_size": self.size,
                "current_cache_size": len(self._entries),
                "client_count": len(self._per_client),
                "duplicate_request_count": self.hits,
                "in_transit_duplicate_requests": self.in_transit_drops,
                "inserts": self.inserts,
                "evictions": self.evictions,
                "clients": dict(self._per_client),
            }


# --------------------------------------------------------------------------------------
# The shared cache of a prefork server
# --------------------------------------------------------------------------------------

SHARED_MAX_SLOTS = 16384     # bound on the shared table (x ~1 KiB each)
SHARED_REPLY_MAX = 1024      # non-idempotent NFS replies are a few hundred bytes
SHARED_WAYS = 8              # slots per bucket: the candidates of one key

_EMPTY, _IN_TRANSIT, _CACHED = 0, 1, 2
_KEY = struct.Struct("<16sIIIII")                # client address, xid, prog, vers, proc, crc
_SLOT = struct.Struct("<BxxxIQ36sI")             # state, owner pid, stamp, key, reply length
_SLOT_SIZE = _SLOT.size + SHARED_REPLY_MAX
_MAGIC = b"GFDRC001"
_HEAD = struct.Struct("<8sIIQ")                  # magic, slots, ways, clock
_COUNTERS = ("hits", "in_transit_drops", "inserts", "evictions", "too_large", "takeovers",
             "no_room", "forgotten")
_COUNT = struct.Struct("<" + "Q" * len(_COUNTERS))
_DATA = 128                                      # slots start here (after head and counters)
assert _HEAD.size + _COUNT.size <= _DATA


def _pack_address(client_ip: str) -> bytes:
    try:
        if ":" in client_ip:
            return socket.inet_pton(socket.AF_INET6, client_ip)
        return socket.inet_pton(socket.AF_INET, client_ip).rjust(16, b"\0")
    except (OSError, ValueError):     # not an IP address: a stable 16-byte digest of it
        return zlib.crc32(client_ip.encode()).to_bytes(4, "big") * 4


class SharedDrcEntry:
    """The handle `lookup` gives the caller of a MISS: the slot the reply goes to."""
    __slots__ = ("index", "key", "stamp", "reply")

    def __init__(self, index: int, key: bytes, stamp: int):
        self.index = index
        self.key = key
        self.stamp = stamp      # tells this call from a later one of the same key and slot
        self.reply: bytes | None = None


class _ProcessLock:
    """Excludes threads (a Lock) and processes (a POSIX record lock on a file).

    A POSIX lock belongs to a process and the kernel drops it when the process
    dies, so a worker killed with SIGKILL while holding it cannot wedge the
    others; a semaphore in shared memory would stay taken forever.
    """

    def __init__(self):
        self._file = tempfile.TemporaryFile(prefix="glusterfs-drc-")
        self._fd = self._file.fileno()
        self._thread_lock = threading.Lock()

    def __enter__(self):
        self._thread_lock.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        self._file.close()


class SharedDuplicateRequestCache:
    """The DRC of a prefork server: one table in shared memory for the master and all workers.

    Why shared: a client whose connection broke (its worker was killed, or
    retired by a reload) reconnects, lands on another worker, and retransmits
    its calls there; only a table every worker sees can tell that REMOVE was
    already done.  The master creates it before forking (an anonymous
    MAP_SHARED mapping), so workers of every generation inherit the same one.

    Same API as `DuplicateRequestCache`, so `RpcService` uses either.  Layout:
    `slots` fixed slots (at most SHARED_MAX_SLOTS) in buckets of SHARED_WAYS;
    a key hashes to one bucket.  Replies larger than SHARED_REPLY_MAX are not
    kept (counted as `too_large`).  Replacement: an empty slot, else the cached
    slot least recently used (a clock stamp), else an in-transit slot whose
    owner process is dead; if all are in transit for live workers the call is
    served uncached (`no_room`).  An in-transit duplicate is dropped while its
    owner lives (its reply will come) and taken over when the owner died; the
    master also clears a dead worker's slots when it reaps it (`forget_owner`).
    """

    def __init__(self, size: int = SHARED_MAX_SLOTS):
        if size <= 0:
            raise ValueError("drc size must be positive")
        buckets = max(1, min(size, SHARED_MAX_SLOTS) // SHARED_WAYS)
        self.buckets = 1 << (buckets.bit_length() - 1)      # a power of two
        self.size = self.buckets * SHARED_WAYS
        # fileno -1: anonymous memory, MAP_SHARED by default: it stays shared across fork
        self._map = mmap.mmap(-1, _DATA + self.size * _SLOT_SIZE)
        _HEAD.pack_into(self._map, 0, _MAGIC, self.size, SHARED_WAYS, 0)
        self._lock = _ProcessLock()

    @staticmethod
    def make_key(client_ip: str, xid: int, prog: int, vers: int, proc: int, args) -> bytes:
        """The same fields as the in-process key, packed into fixed-size bytes."""
        return _KEY.pack(_pack_address(client_ip), xid & 0xFFFFFFFF, prog, vers, proc,
                         zlib.crc32(args))

    # ---- inside the lock ------------------------------------------------------------

    def _slot(self, index: int):
        return _SLOT.unpack_from(self._map, _DATA + index * _SLOT_SIZE)

    def _put(self, index: int, state: int, owner: int, stamp: int, key: bytes,
             reply: bytes = b"") -> None:
        offset = _DATA + index * _SLOT_SIZE
        if reply:
            self._map[offset + _SLOT.size:offset + _SLOT.size + len(reply)] = reply
        _SLOT.pack_into(self._map, offset, state, owner, stamp, key, len(reply))

    def _tick(self) -> int:
        magic, slots, ways, clock = _HEAD.unpack_from(self._map, 0)
        _HEAD.pack_into(self._map, 0, magic, slots, ways, clock + 1)
        return clock + 1

    def _count(self, name: str) -> None:
        offset = _HEAD.size + 8 * _COUNTERS.index(name)
        value = int.from_bytes(self._map[offset:offset + 8], "little") + 1
        self._map[offset:offset + 8] = value.to_bytes(8, "little")

    def _bucket(self, key: bytes) -> range:
        first = (zlib.crc32(key) & (self.buckets - 1)) * SHARED_WAYS
        return range(first, first + SHARED_WAYS)

    # ---- the DuplicateRequestCache API ------------------------------------------------

    def lookup(self, key: bytes):
        """(MISS, entry or None) | (HIT, cached reply bytes) | (DROP, None)."""
        me = os.getpid()
        with self._lock:
            free = oldest = None
            oldest_stamp = 0
            in_transit = []
            for index in self._bucket(key):
                state, owner, stamp, slot_key, length = self._slot(index)
                if state == _EMPTY:
                    free = index if free is None else free
                    continue
                if slot_key == key:
                    if state == _CACHED:
                        self._count("hits")
                        self._put_stamp(index, state, owner, slot_key, length)
                        start = _DATA + index * _SLOT_SIZE + _SLOT.size
                        return HIT, bytes(self._map[start:start + length])
                    if owner == me or running(owner):
                        self._count("in_transit_drops")
                        return DROP, None
                    self._count("takeovers")       # its worker died before answering
                    return MISS, self._claim(index, key, me)
                if state == _CACHED:
                    if oldest is None or stamp < oldest_stamp:
                        oldest, oldest_stamp = index, stamp
                else:
                    in_transit.append((index, owner))
            chosen = free
            if chosen is None and oldest is not None:
                chosen = oldest
                self._count("evictions")
            if chosen is None:
                chosen = next((i for i, owner in in_transit if owner != me and not running(owner)),
                              None)
            if chosen is None:
                self._count("no_room")
                return MISS, None
            self._count("inserts")
            return MISS, self._claim(chosen, key, me)

    def _claim(self, index: int, key: bytes, me: int) -> SharedDrcEntry:
        stamp = self._tick()
        self._put(index, _IN_TRANSIT, me, stamp, key)
        return SharedDrcEntry(index, key, stamp)

    def _put_stamp(self, index, state, owner, key, length) -> None:
        _SLOT.pack_into(self._map, _DATA + index * _SLOT_SIZE, state, owner, self._tick(), key,
                        length)

    def _mine(self, entry: SharedDrcEntry) -> bool:
        state, owner, stamp, key, _ = self._slot(entry.index)
        return (state == _IN_TRANSIT and owner == os.getpid() and stamp == entry.stamp
                and key == entry.key)

    def finish(self, entry: SharedDrcEntry, reply: bytes) -> None:
        """The call answered `reply`: keep it for retransmissions (if it fits a slot)."""
        entry.reply = reply
        with self._lock:
            if not self._mine(entry):
                return
            if len(reply) > SHARED_REPLY_MAX:
                self._count("too_large")
                self._put(entry.index, _EMPTY, 0, 0, b"")
                return
            self._put(entry.index, _CACHED, os.getpid(), self._tick(), entry.key, reply)

    def abandon(self, entry: SharedDrcEntry) -> None:
        """No reply was produced: free the slot so a retransmission runs the call."""
        with self._lock:
            if self._mine(entry):
                self._put(entry.index, _EMPTY, 0, 0, b"")

    def forget_owner(self, pid: int) -> int:
        """Free the in-transit slots of a dead process (the master calls it on reaping)."""
        freed = 0
        with self._lock:
            for index in range(self.size):
                state, owner, _, _, _ = self._slot(index)
                if state == _IN_TRANSIT and owner == pid:
                    self._put(index, _EMPTY, 0, 0, b"")
                    self._count("forgotten")
                    freed += 1
        return freed

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for i in range(self.size) if self._slot(i)[0] != _EMPTY)

    def stats(self) -> dict:
        """Counts for the statedump (gnfs's key names where it has one), across all workers."""
        with self._lock:
            counters = dict(zip(_COUNTERS, _COUNT.unpack_from(self._map, _HEAD.size)))
            used = in_transit = 0
            clients = set()
            for index in range(self.size):
                state, _, _, key, _ = self._slot(index)
                if state != _EMPTY:
                    used += 1
                    in_transit += state == _IN_TRANSIT
                    clients.add(key[:16])
        return {
            "type": "shared-memory",
            "max_cache_size": self.size,
            "current_cache_size": used,
            "in_transit": in_transit,
            "client_count": len(clients),
            "duplicate_request_count": counters["hits"],
            "in_transit_duplicate_requests": counters["in_transit_drops"],
            "reply_max_bytes": SHARED_REPLY_MAX,
            **{name: counters[name] for name in _COUNTERS
               if name not in ("hits", "in_transit_drops")},
        }

    def close(self) -> None:
        """Unmap (in this process only; the others keep their mapping)."""
        self._map.close()
        self._lock.close()
