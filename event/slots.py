"""The slot table: where the event pool keeps one record per registered fd.

Why it is shaped this way (GlusterFS `event-epoll.c`): the kernel hands back
only a small number with each event, so GlusterFS stores every registration in
a slot and gives the kernel `{idx, gen}` instead of a pointer.  `idx` finds the
slot in a two-level table (1024 tables of 1024 slots, a table allocated only
when first needed), so looking a slot up never takes a lock and never moves
memory that another thread is reading.  `gen` is bumped each time a slot is
freed, so an event that was already on its way for the previous owner of a
reused slot is recognised as stale and dropped.

Every slot has its own lock: threads working on different fds never contend,
and the one table lock only guards the free list.

`gen` lives in GEN_BITS bits because the epoll backend packs `{idx, gen}` into
the 32-bit `data.fd` field that `select.epoll.poll()` returns; it wraps, which
only matters if one slot is reused 2048 times while one stale event is in
flight.
"""
from __future__ import annotations

import threading

from event.errors import PoolFullError, UnknownSlotError

SLOTS_PER_TABLE = 1024          # GlusterFS EVENT_EPOLL_SLOTS
MAX_TABLES = 1024               # GlusterFS EVENT_EPOLL_TABLES
IDX_BITS = 20                   # 1024 * 1024 slots
IDX_MASK = (1 << IDX_BITS) - 1
GEN_BITS = 11                   # IDX_BITS + GEN_BITS = 31: the packed value stays a positive int
GEN_MASK = (1 << GEN_BITS) - 1
_TABLE_SHIFT = 10
_SLOT_MASK = SLOTS_PER_TABLE - 1


def pack(idx: int, gen: int) -> int:
    """The number handed to the kernel for a registration."""
    return (gen << IDX_BITS) | idx


class Slot:
    """One registration.  Every field is read and written under `lock`.

    in_handler: an event was dispatched and the fd has not been re-armed yet
                (epoll: the ONESHOT registration is disarmed).
    running:    handler calls in progress; with an early `handled()` two event
                threads may be inside the handler of one fd at once.
    token:      bumped on each dispatch, so that a handler returning late does
                not re-arm on behalf of a later dispatch it knows nothing about.
    dead:       unregistered while a handler ran; freed when `running` drops to 0.
    """

    __slots__ = ("idx", "gen", "fd", "events", "handler", "data", "lock",
                 "in_handler", "running", "token", "dead", "do_close", "kernel", "armed")

    def __init__(self, idx: int):
        self.idx = idx
        self.gen = 0
        self.fd = -1
        self.events = 0
        self.handler = None
        self.data = None
        self.lock = threading.Lock()
        self.in_handler = False
        self.running = 0
        self.token = 0
        self.dead = False
        self.do_close = False
        self.kernel = None      # backend-private (epoll: its epoll_event and a byref of it)
        self.armed = -1         # backend-private (epoll: the mask last given the kernel)

    @property
    def registered(self) -> bool:
        return self.fd >= 0 and not self.dead


class SlotTable:
    """Two-level table of slots with a LIFO free list.

    `lookup` is lock-free (a list read is atomic); `alloc` and `free` take the
    table lock.  Lock order everywhere: slot lock, then table lock.
    """

    def __init__(self, hint: int = SLOTS_PER_TABLE, max_tables: int = MAX_TABLES):
        if max_tables < 1 or max_tables > MAX_TABLES:
            raise ValueError(f"max_tables must be 1..{MAX_TABLES}, not {max_tables}")
        self._tables: list[list[Slot] | None] = [None] * max_tables
        self._lock = threading.Lock()
        self._free: list[int] = []
        self._next = 0                  # first idx never handed out
        self.capacity = max_tables * SLOTS_PER_TABLE
        for number in range(min(max_tables, -(-max(hint, 1) // SLOTS_PER_TABLE))):
            self._make_table(number)

    def _make_table(self, number: int) -> None:
        base = number << _TABLE_SHIFT
        self._tables[number] = [Slot(base + offset) for offset in range(SLOTS_PER_TABLE)]

    def lookup(self, idx: int) -> Slot | None:
        """The slot at idx, or None if idx was never handed out (no lock taken)."""
        if idx < 0 or idx >= self.capacity:
            return None
        table = self._tables[idx >> _TABLE_SHIFT]
        if table is None:
            return None
        return table[idx & _SLOT_MASK]

    def get(self, idx: int) -> Slot:
        """The slot at idx; UnknownSlotError when idx is out of range or unused."""
        if not isinstance(idx, int):
            raise TypeError(f"slot index must be an int, not {type(idx).__name__}")
        slot = self.lookup(idx)
        if slot is None:
            raise UnknownSlotError(f"no event slot {idx}")
        return slot

    def alloc(self) -> Slot:
        """A free slot (the most recently freed one first, so gen shows reuse)."""
        with self._lock:
            if self._free:
                return self.lookup(self._free.pop())
            idx = self._next
            if idx >= self.capacity:
                raise PoolFullError(f"all {self.capacity} event slots are in use")
            if self._tables[idx >> _TABLE_SHIFT] is None:
                self._make_table(idx >> _TABLE_SHIFT)
            self._next = idx + 1
            return self.lookup(idx)

    def free(self, slot: Slot) -> None:
        """Return a slot (caller holds slot.lock); its next owner gets gen + 1."""
        slot.fd = -1
        slot.events = 0
        slot.handler = None
        slot.data = None
        slot.in_handler = False
        slot.dead = False
        slot.do_close = False
        slot.gen = (slot.gen + 1) & GEN_MASK
        with self._lock:
            self._free.append(slot.idx)

    def in_use(self) -> int:
        """How many slots are allocated (for statedumps and tests)."""
        with self._lock:
            return self._next - len(self._free)
