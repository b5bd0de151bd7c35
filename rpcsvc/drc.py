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
"""
from __future__ import annotations

import threading
import zlib
from collections import OrderedDict

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
