"""A built-in portmapper: portmap v2 and rpcbind v3/v4 (RFC 1833) on the RPC service.

Why: an NFS client finds MOUNT and NFS through port 111.  The embedded
default should run on a machine without rpcbind, so when no portmapper
answers and port 111 is free the server brings its own.  It is an ordinary
set of `Program`s on an `RpcService`, so it shares the event pool, the
transports and the error replies with NFS.

It behaves as rpcbind where clients can tell:
- GETPORT/GETADDR of a known program but unregistered version answer the
  address of another version of it, so the client's call then gets
  PROG_MISMATCH with the real range from the server (rpcinfo relies on this);
- a v2 SET records "0.0.0.0.p1.p2" under netid tcp/udp; GETADDR answers it
  with the address the request came in on;
- SET and UNSET are taken from loopback only (AUTH_TOOWEAK otherwise);
  entries set from a privileged port are owned by "superuser", and only a
  privileged caller may remove them;
- CALLIT / BCAST / INDIRECT are not served (PROC_UNAVAIL): forwarding calls
  is an amplification tool no NFS client needs.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time

from glusterfsd import log as gflog
from rpcsvc import wire, xdr
from rpcsvc.program import Program, RpcAuthError
from rpcsvc.svc import RpcService

logger = gflog.get_logger("rpcsvc")

PM = xdr.load("portmap")
PMAP_PROGRAM = 100000
NETIDS = {6: "tcp", 17: "udp"}
PROTOCOLS = {name: number for number, name in NETIDS.items()}
# netconfig semantics (NC_TPI_CLTS 1, NC_TPI_COTS_ORD 3) and families, as rpcbind reports them
_SEMANTICS = {"tcp": 3, "udp": 1, "tcp6": 3, "udp6": 1}
_FAMILY = {"tcp": ("inet", "tcp"), "udp": ("inet", "udp"),
           "tcp6": ("inet6", "tcp"), "udp6": ("inet6", "udp")}
STAT_VERSIONS = (2, 3, 4)
HIGHPROC = 13           # RPCBSTAT_HIGHPROC
MAX_ADDR_STATS = 256    # distinct (prog, vers, netid) lookup counters kept per version


def _text(value) -> str:
    return bytes(value).decode("ascii", "replace") if not isinstance(value, str) else value


def uaddr(host: str, port: int) -> str:
    """Universal address: "h1.h2.h3.h4.p1.p2" (IPv6: "addr.p1.p2")."""
    return f"{host}.{port >> 8}.{port & 0xFF}"


def parse_uaddr(text: str) -> tuple[str, int] | None:
    """(host, port) of a universal address, or None if it is not one."""
    parts = text.rsplit(".", 2)
    if len(parts) != 3:
        return None
    host, high, low = parts
    try:
        ipaddress.ip_address(host)
        high, low = int(high), int(low)
    except ValueError:
        return None
    if not (0 <= high <= 255 and 0 <= low <= 255):
        return None
    return host, (high << 8) | low


def uaddr_to_taddr(text: str) -> bytes:
    """The sockaddr bytes rpcbind returns for UADDR2TADDR (empty if not an address)."""
    parsed = parse_uaddr(text)
    if parsed is None:
        return b""
    host, port = parsed
    address = ipaddress.ip_address(host)
    if address.version == 4:
        return struct.pack("=H", socket.AF_INET) + struct.pack(">H", port) + address.packed \
            + b"\0" * 8
    return struct.pack("=H", socket.AF_INET6) + struct.pack(">HI", port, 0) + address.packed \
        + struct.pack(">I", 0)


def taddr_to_uaddr(taddr: bytes) -> str:
    """Inverse of uaddr_to_taddr; "" for anything that is not an inet sockaddr."""
    if len(taddr) < 2:
        return ""
    family = struct.unpack_from("=H", taddr)[0]
    if family == socket.AF_INET and len(taddr) >= 8:
        return uaddr(str(ipaddress.IPv4Address(taddr[4:8])), struct.unpack_from(">H", taddr, 2)[0])
    if family == socket.AF_INET6 and len(taddr) >= 24:
        return uaddr(str(ipaddress.IPv6Address(taddr[8:24])), struct.unpack_from(">H", taddr, 2)[0])
    return ""


class Entry:
    __slots__ = ("prog", "vers", "netid", "addr", "owner")

    def __init__(self, prog, vers, netid, addr, owner):
        self.prog, self.vers, self.netid, self.addr, self.owner = prog, vers, netid, addr, owner


class Registry:
    """The table of registrations (thread-safe)."""

    def __init__(self):
        self._entries: list[Entry] = []
        self._lock = threading.Lock()

    def set(self, prog: int, vers: int, netid: str, addr: str, owner: str) -> bool:
        """Add; False if (prog, vers, netid) is registered already (rpcbind's rule)."""
        with self._lock:
            if any(e.prog == prog and e.vers == vers and e.netid == netid for e in self._entries):
                return False
            self._entries.append(Entry(prog, vers, netid, addr, owner))
            return True

    def unset(self, prog: int, vers: int, netids, privileged: bool) -> bool:
        """Remove (prog, vers) on `netids` (None: all); True if anything went."""
        with self._lock:
            keep, removed = [], False
            for e in self._entries:
                if e.prog == prog and e.vers == vers and (netids is None or e.netid in netids) \
                        and (privileged or e.owner != "superuser"):
                    removed = True
                else:
                    keep.append(e)
            self._entries = keep
            return removed

    def find(self, prog: int, vers: int, netid: str, exact: bool = False) -> Entry | None:
        """The entry for (prog, vers, netid); else, unless exact, any version of prog."""
        with self._lock:
            other = None
            for e in self._entries:
                if e.prog == prog and e.netid == netid:
                    if e.vers == vers:
                        return e
                    other = other or e
            return None if exact else other

    def knows(self, prog: int) -> bool:
        """True if any version of `prog` is registered."""
        with self._lock:
            return any(e.prog == prog for e in self._entries)

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)


class _Stats:
    """What rpcbind v4 GETSTAT reports, per portmapper version.

    The lookup table is keyed by what remote callers ask for, so it is
    bounded: callers (`BuiltinPortmapper._count_lookup`) only count
    programs that are registered, with a known netid, and past
    MAX_ADDR_STATS keys per version a new key is not added (its lookup is
    still answered, only not counted)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.info = {v: [0] * HIGHPROC for v in STAT_VERSIONS}
        self.setinfo = dict.fromkeys(STAT_VERSIONS, 0)
        self.unsetinfo = dict.fromkeys(STAT_VERSIONS, 0)
        self.addrinfo = {v: {} for v in STAT_VERSIONS}   # (prog, vers, netid) -> [ok, fail]

    def proc(self, vers: int, proc: int) -> None:
        with self._lock:
            if proc < HIGHPROC:
                self.info[vers][proc] += 1

    def changed(self, vers: int, kind: str, ok: bool) -> None:
        if ok:
            with self._lock:
                table = self.setinfo if kind == "set" else self.unsetinfo
                table[vers] += 1

    def lookup(self, vers: int, prog: int, pvers: int, netid: str, ok: bool) -> None:
        with self._lock:
            table = self.addrinfo[vers]
            counts = table.get((prog, pvers, netid))
            if counts is None:
                if len(table) >= MAX_ADDR_STATS:
                    return
                counts = table[(prog, pvers, netid)] = [0, 0]
            counts[0 if ok else 1] += 1

    def encode(self) -> list:
        with self._lock:
            result = []
            for v in STAT_VERSIONS:
                addrs = [PM.rpcbs_addrlist(prog, pvers, ok, fail, netid.encode())
                         for (prog, pvers, netid), (ok, fail) in self.addrinfo[v].items()]
                result.append(PM.rpcb_stat(list(self.info[v]), self.setinfo[v],
                                           self.unsetinfo[v], addrs, []))
            return result


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BuiltinPortmapper:
    """Portmap v2 + rpcbind v3/v4 on `pool`; `start()` binds TCP and UDP (port 111)."""

    def __init__(self, pool, stage_threads: int = 1):
        self.pool = pool
        self.registry = Registry()
        self.stats = _Stats()
        self.svc: RpcService | None = None
        self.port = 0
        self.host = ""
        self._stage_threads = stage_threads

    # ---- lifecycle --------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 111) -> bool:
        """Serve on host:port over TCP and UDP; False (and nothing bound) if the port is taken."""
        if self.svc is not None:
            raise RuntimeError("built-in portmapper already started")
        svc = RpcService(self.pool, stage_threads=self._stage_threads, drc=False,
                         max_record=64 * 1024, name="portmapper")
        for prog in self._programs():
            svc.add_program(prog)
        try:
            tcp = svc.listen(host, port, "tcp")
            port = tcp.getsockname()[1]
            svc.listen(host, port, "udp")
        except OSError as error:
            logger.info("built-in portmapper not started on %s:%d: %s", host, port, error)
            svc.close()
            return False
        self.svc, self.host, self.port = svc, host, port
        for vers in STAT_VERSIONS:
            for netid in ("tcp", "udp"):
                self.registry.set(PMAP_PROGRAM, vers, netid, uaddr(host, port), "superuser")
        logger.info("built-in portmapper serving on %s:%d (tcp, udp)", host, port)
        return True

    def stop(self) -> None:
        if self.svc is not None:
            self.svc.close()
            self.svc = None

    def register(self, mappings) -> bool:
        """In-process SET of (prog, vers, proto, port) tuples; True if all were new."""
        ok = True
        for prog, vers, proto, port in mappings:
            ok &= self.registry.set(prog, vers, proto, uaddr("0.0.0.0", port), "superuser")
        return ok

    def unregister(self, mappings) -> None:
        for prog, vers, proto, _ in mappings:
            self.registry.unset(prog, vers, {proto}, True)

    # ---- the programs -----------------------------------------------------------------

    def _programs(self) -> list[Program]:
        v2 = PM.programs["PMAP_PROG"]
        rpcb = PM.programs["RPCBPROG"]
        v2_actors = {0: self._null, 1: self._pmap_set, 2: self._pmap_unset,
                     3: self._pmap_getport, 4: self._pmap_dump}
        v3_actors = {0: self._null, 1: self._rpcb_set, 2: self._rpcb_unset,
                     3: self._rpcb_getaddr, 4: self._rpcb_dump, 6: self._gettime,
                     7: self._uaddr2taddr, 8: self._taddr2uaddr}
        v4_actors = dict(v3_actors)
        v4_actors.update({9: self._getversaddr, 11: self._getaddrlist, 12: self._getstat})
        return [Program(v2, 2, self._counted(2, v2_actors), name="portmapper"),
                Program(rpcb, 3, self._counted(3, v3_actors), name="rpcbind"),
                Program(rpcb, 4, self._counted(4, v4_actors), name="rpcbind")]

    def _counted(self, vers: int, actors: dict) -> dict:
        def wrap(number, actor):
            def counted(req):
                self.stats.proc(vers, number)
                return actor(req)
            counted.__name__ = getattr(actor, "__name__", "actor")
            return counted
        return {number: wrap(number, actor) for number, actor in actors.items()}

    def _count_lookup(self, vers: int, req, prog: int, pvers: int, netid, ok: bool) -> None:
        """GETSTAT's lookup counters, for registered programs only (see `_Stats`).

        A netid that names no transport is counted under the one the request
        came in on, as rpcbind counts every lookup under its transport."""
        if netid not in _FAMILY:
            netid = req.transport
        if ok or self.registry.knows(prog):
            self.stats.lookup(vers, prog, pvers, netid, ok)

    @staticmethod
    def _may_change(req) -> None:
        if not _is_loopback(req.peer[0]):
            logger.warning("portmapper: SET/UNSET from %s refused", req.peer[0])
            raise RpcAuthError(wire.AUTH_TOOWEAK, "SET/UNSET only from loopback")

    @staticmethod
    def _owner(req) -> str:
        return "superuser" if req.privileged else "unknown"

    def _merged(self, entry: Entry, req) -> str:
        """An entry's address with a wildcard host replaced by where the request came in."""
        parsed = parse_uaddr(entry.addr)
        if parsed and parsed[0] in ("0.0.0.0", "::") and req.local:
            return uaddr(req.local[0], parsed[1])
        return entry.addr

    def _null(self, req):
        return None

    # v2 (portmap)

    def _pmap_set(self, req) -> bool:
        self._may_change(req)
        m = req.args
        netid = NETIDS.get(m.prot)
        ok = netid is not None and 0 < m.port <= 0xFFFF and self.registry.set(
            m.prog, m.vers, netid, uaddr("0.0.0.0", m.port), self._owner(req))
        self.stats.changed(2, "set", ok)
        return ok

    def _pmap_unset(self, req) -> bool:
        self._may_change(req)
        m = req.args
        ok = self.registry.unset(m.prog, m.vers, {"tcp", "udp"}, req.privileged)
        self.stats.changed(2, "unset", ok)
        return ok

    def _pmap_getport(self, req) -> int:
        m = req.args
        netid = NETIDS.get(m.prot)
        entry = self.registry.find(m.prog, m.vers, netid) if netid else None
        parsed = parse_uaddr(entry.addr) if entry else None
        self._count_lookup(2, req, m.prog, m.vers, netid, parsed is not None)
        return parsed[1] if parsed else 0

    def _pmap_dump(self, req) -> list:
        out = []
        for e in self.registry.entries():
            parsed = parse_uaddr(e.addr)
            if e.netid in PROTOCOLS and parsed:
                out.append(PM.pmaplist(PM.mapping(e.prog, e.vers, PROTOCOLS[e.netid], parsed[1])))
        return out

    # v3 / v4 (rpcbind)

    def _rpcb_set(self, req) -> bool:
        self._may_change(req)
        r = req.args
        netid, addr = _text(r.r_netid), _text(r.r_addr)
        ok = bool(netid) and parse_uaddr(addr) is not None and self.registry.set(
            r.r_prog, r.r_vers, netid, addr, self._owner(req))
        self.stats.changed(req.vers, "set", ok)
        return ok

    def _rpcb_unset(self, req) -> bool:
        self._may_change(req)
        r = req.args
        netid = _text(r.r_netid)
        ok = self.registry.unset(r.r_prog, r.r_vers, {netid} if netid else None, req.privileged)
        self.stats.changed(req.vers, "unset", ok)
        return ok

    def _lookup_addr(self, req, exact: bool) -> bytes:
        r = req.args
        netid = _text(r.r_netid) or req.transport
        entry = self.registry.find(r.r_prog, r.r_vers, netid, exact)
        self._count_lookup(req.vers, req, r.r_prog, r.r_vers, netid, entry is not None)
        return self._merged(entry, req).encode() if entry else b""

    def _rpcb_getaddr(self, req) -> bytes:
        return self._lookup_addr(req, exact=False)

    def _getversaddr(self, req) -> bytes:
        return self._lookup_addr(req, exact=True)

    def _rpcb_dump(self, req) -> list:
        return [PM.rp__list(PM.rpcb(e.prog, e.vers, e.netid.encode(), e.addr.encode(),
                                    e.owner.encode()))
                for e in self.registry.entries()]

    def _gettime(self, req) -> int:
        return int(time.time()) & 0xFFFFFFFF

    def _uaddr2taddr(self, req):
        taddr = uaddr_to_taddr(_text(req.args))
        return PM.netbuf(len(taddr), taddr)

    def _taddr2uaddr(self, req) -> bytes:
        return taddr_to_uaddr(bytes(req.args.buf)).encode()

    def _getaddrlist(self, req) -> list:
        r = req.args
        out = []
        for e in self.registry.entries():
            if e.prog == r.r_prog and e.vers == r.r_vers and e.netid in _FAMILY:
                family, proto = _FAMILY[e.netid]
                out.append(PM.rpcb_entry_list(PM.rpcb_entry(
                    self._merged(e, req).encode(), e.netid.encode(), _SEMANTICS[e.netid],
                    family.encode(), proto.encode())))
        self._count_lookup(4, req, r.r_prog, r.r_vers, _text(r.r_netid), bool(out))
        return out

    def _getstat(self, req) -> list:
        return self.stats.encode()
