"""What `nfs/server` does for a prefork master (glusterfsd.arbiter) and its workers.

The master binds, the workers serve.  The master never initialises the graph
(no storage handles, no threads before fork); it calls `prefork_bind` on the
constructed top xlator, which puts bound TCP/UDP sockets into `presets`, and
hands every worker the same `PreforkShared`: the write verifier and the
duplicate request cache, both in shared memory, so that what must agree
across workers does (DESIGN.md "Processes").  A worker's `init` then serves
the inherited sockets and leaves portmapper registration to the master.

A worker leaves through `retire` (reload, TTOU, SIGTERM): it stops accepting
and reading, answers every call it has read, lets each client see its
connection end only after the last reply (a TCP half-close), and gives the
client a moment to hang up.  The client (libnfs, the kernel) reconnects to
another worker and retransmits what was never read; what was read and done
is answered again from the shared DRC.  That is how a reload fails no call.

`probe` is the worker's heartbeat: it is true only while the event threads
and the stage threads both keep running small ticks, so a worker whose
threads are stuck stops beating and the master replaces it.
"""
from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass

from rpcsvc.drc import SharedDuplicateRequestCache

BIND_KEYS = ("nfs.port", "nfs.mount-port")
LINGER = 2.0             # seconds a retiring worker waits for clients to hang up
POLL = 0.02


class SharedWriteVerifier:
    """The write verifier of a master and all its workers: 8 bytes of shared memory.

    Fixed when the master starts, so a worker that dies and is replaced keeps
    it (the page cache still holds the UNSTABLE data), while a master restart
    makes a new one.  `data_may_be_lost` (a writeback error seen by any
    worker) changes it for every worker at once: a COMMIT answered by another
    worker must not vouch for data the kernel may have dropped.  An 8-byte
    aligned store is one instruction on the machines we run on; a reader
    could at worst see a value that differs from both, which only makes the
    client resend (the safe direction).
    """

    def __init__(self, initial: bytes | None = None):
        if initial is not None and len(initial) != 8:
            raise ValueError("a write verifier has 8 bytes")
        self._map = mmap.mmap(-1, 8)        # anonymous and MAP_SHARED: survives fork shared
        self._map[0:8] = initial if initial is not None else _fresh(None)

    def current(self) -> bytes:
        return bytes(self._map[0:8])

    def data_may_be_lost(self) -> bytes:
        value = _fresh(self.current())
        self._map[0:8] = value
        return value

    def close(self) -> None:
        self._map.close()


def _fresh(previous: bytes | None) -> bytes:
    """The time in nanoseconds, made to differ from `previous` (as nfs.writeverf does)."""
    number = time.time_ns() & 0xFFFFFFFFFFFFFFFF
    if previous is not None and struct.pack(">Q", number) == previous:
        number = (number + 1) & 0xFFFFFFFFFFFFFFFF
    return struct.pack(">Q", number)


@dataclass
class PreforkShared:
    """What the master makes once, before the first fork, for all generations of workers."""

    verifier: SharedWriteVerifier
    drc: SharedDuplicateRequestCache | None

    @classmethod
    def create(cls, top) -> "PreforkShared":
        """A new verifier, and a shared DRC sized by the top's nfs.drc-size (made even when
        nfs.drc is off, so that a reload turning it on finds one)."""
        return cls(SharedWriteVerifier(), SharedDuplicateRequestCache(top.option("nfs.drc-size")))

    def close(self) -> None:
        self.verifier.close()
        if self.drc is not None:
            self.drc.close()


class _Probe:
    """Ticks through the event pool and the stage; see `PreforkServing.probe`."""

    def __init__(self, pool, stage):
        self.stage = stage
        self.pool = pool
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.round = 0
        self.event_seen = self.stage_seen = 0
        self.idx, self.gen = pool.register(self.read_fd, self._on_event, None, True, False)

    def _on_event(self, fd, idx, gen, data, poll_in, poll_out, poll_err) -> None:
        try:
            while os.read(self.read_fd, 64):
                pass
        except BlockingIOError:
            pass
        self.event_seen = self.round

    def _on_stage(self, number: int) -> None:
        self.stage_seen = number

    def tick(self) -> bool:
        if self.round and (self.event_seen != self.round or self.stage_seen != self.round):
            return False                    # the last round has not gone through yet
        self.round += 1
        os.write(self.write_fd, b".")
        self.stage.submit(self._on_stage, self.round)
        return True

    def close(self) -> None:
        try:
            self.pool.unregister(self.idx, self.gen)
        except Exception:
            pass
        for fd in (self.read_fd, self.write_fd):
            os.close(fd)


class PreforkServing:
    """Mixed into NfsServer: the master's side (prefork_*) and the worker's (retire, probe)."""

    prefork_shared: PreforkShared | None = None     # set by the master before forking

    def _prefork_setup(self) -> None:
        self.prefork_bound: dict = {}       # key -> ((host, configured port), (tcp, udp))
        self._served_listeners: list = []
        self._probe: _Probe | None = None

    # ---- the master's side ---------------------------------------------------------------

    def prefork_workers(self) -> int:
        return int(self.option("nfs.workers"))

    def prefork_timeout(self) -> float:
        return float(self.option("nfs.worker-timeout"))

    def prefork_wants_portmap(self) -> bool:
        return bool(self.option("rpc.register-with-portmap"))

    def prefork_bind(self, previous: "PreforkServing | None" = None) -> None:
        """Bind TCP and UDP for NFS and MOUNT (master, before forking) into `presets`.

        Sockets of `previous` (the graph being replaced) whose address and
        configured port did not change are taken over as they are, so a
        reload never closes a listening socket and no connection is refused.
        Raises OSError naming the option (nothing stays bound then)."""
        host = self.bind_address
        bound: dict = {}
        try:
            for key in BIND_KEYS:
                wanted = (host, self.option(key))
                old = previous.prefork_bound.get(key) if previous is not None else None
                bound[key] = old if old is not None and old[0] == wanted else \
                    (wanted, bind_pair_for(host, wanted[1], key))
        except BaseException:
            self._close_new(bound, previous)
            raise
        self.prefork_bound = bound
        self.presets = {key: pair for key, (_, pair) in bound.items()}
        self.nfs_port = bound["nfs.port"][1][0].getsockname()[1]
        self.mount_port = bound["nfs.mount-port"][1][0].getsockname()[1]

    @staticmethod
    def _close_new(bound: dict, previous) -> None:
        kept = {id(s) for s in previous.prefork_sockets()} if previous is not None else set()
        for _, pair in bound.values():
            for sock in pair:
                if id(sock) not in kept:
                    sock.close()

    def prefork_sockets(self) -> list:
        """The listening sockets this graph's workers serve (the master's copies)."""
        return [sock for _, pair in self.prefork_bound.values() for sock in pair]

    def prefork_mappings(self) -> list[tuple[int, int, str, int]]:
        """What the master registers for its workers (see NfsServer.portmap_mappings)."""
        return self.portmap_mappings()

    # ---- the worker's side ---------------------------------------------------------------

    def probe(self) -> bool:
        """True if the previous tick went through both the event pool and the stage."""
        if self.svc is None or self.pool is None:
            return False
        if self._probe is None:
            self._probe = _Probe(self.pool, self.svc.stage)
        return self._probe.tick()

    def _close_probe(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    def retire(self, timeout: float) -> bool:
        """Stop serving without failing a call read (see the module doc); True if every
        call in flight was answered within `timeout`.  The graph's fini follows."""
        svc = self.svc
        if svc is None:
            return True
        deadline = time.monotonic() + timeout
        svc.stop_accepting()
        for sock in self._served_listeners:     # our copy: the master and others keep theirs
            sock.close()
        answered = svc.drain(timeout)
        svc.finish_connections(deadline, LINGER, POLL)
        return answered


def bind_pair_for(host: str, port: int, key: str):
    from nfs.server import bind_pair        # late: nfs.server imports this module
    return bind_pair(host, port, key)
