"""Address rules: does a client address match `rpc-auth.addr.*` or an export-dir hostspec?

gnfs accepts, in its allow/reject lists and in `nfs3.<vol>.export-dir`
hostspecs: exact IP addresses, CIDR networks, host names, glob patterns such
as `192.168.1.*` or `*.example.com`, and the words `*`/`all` (everyone) and
`none` (no one).  This module turns such a list into a `HostRules` that
answers `matches(address)`.

Host names are matched only when `rpc-auth.addr.namelookup` is on, as in
gnfs: then the client's address is reverse-resolved (cached for a few
minutes, because MNT would otherwise block on DNS for every call) and the name
is compared to name rules and glob patterns.  With namelookup off, a name rule
never matches anyone: it cannot grant access to a host that spoofs its PTR
record, which is why gnfs defaults to off.
"""
from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
import threading
import time

EVERYONE_WORDS = frozenset({"*", "all"})
NO_ONE_WORDS = frozenset({"none"})

_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?")
_GLOB = re.compile(r"[A-Za-z0-9_.:*?\[\]-]+")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> IpAddress | None:
    """The IP of a peer address string (IPv4-mapped IPv6 folded to IPv4), or None."""
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def check_hostspec(item: str) -> str:
    """Validate one rule word; returns it stripped, or raises ValueError naming what is wrong."""
    item = item.strip()
    if not item:
        raise ValueError("empty host rule")
    low = item.lower()
    if low in EVERYONE_WORDS or low in NO_ONE_WORDS:
        return item
    if "/" in item:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"'{item}' is not a CIDR network") from None
        return item
    if parse_address(item) is not None:
        return item
    if any(ch in item for ch in "*?["):
        if not _GLOB.fullmatch(item):
            raise ValueError(f"'{item}' is not an address pattern")
        return item
    if not _HOSTNAME.fullmatch(item):
        raise ValueError(f"'{item}' is not an IP address, CIDR network or host name")
    return item


class _ReverseCache:
    """Reverse DNS results (name and aliases), kept for `ttl` seconds, bounded in size."""

    def __init__(self, ttl: float = 300.0, size: int = 1024):
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._names: dict[str, tuple[float, tuple[str, ...]]] = {}

    def names(self, address: str) -> tuple[str, ...]:
        now = time.monotonic()
        with self._lock:
            hit = self._names.get(address)
            if hit is not None and hit[0] > now:
                return hit[1]
        try:
            name, aliases, _ = socket.gethostbyaddr(address)
            claimed = tuple(n.lower().rstrip(".") for n in (name, *aliases) if n)
        except (OSError, UnicodeError):
            claimed = ()
        found = tuple(n for n in claimed if _resolves_back(n, address))
        with self._lock:
            if len(self._names) >= self.size:
                self._names.clear()
            self._names[address] = (now + self.ttl, found)
        return found


def _resolves_back(name: str, address: str) -> bool:
    """Forward-confirm a PTR answer: whoever controls their reverse zone could
    otherwise claim any host name and match a name rule."""
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return False
    return any(info[4][0] == address for info in infos)


REVERSE_DNS = _ReverseCache()


class HostRules:
    """One allow or reject list, ready to match client addresses."""

    def __init__(self, items, namelookup: bool = False, resolver: _ReverseCache | None = None):
        self.items = tuple(check_hostspec(i) for i in items)
        self.namelookup = namelookup
        self._resolver = resolver or REVERSE_DNS
        lowered = {i.lower() for i in self.items}
        self.everyone = bool(lowered & EVERYONE_WORDS)
        self.networks = []
        self.addresses = set()
        self.patterns = []  # globs, matched against the address (and names with namelookup)
        self.names = set()  # literal host names (namelookup only)
        for item in self.items:
            low = item.lower()
            if low in EVERYONE_WORDS or low in NO_ONE_WORDS:
                continue
            if "/" in item:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            elif parse_address(item) is not None:
                self.addresses.add(parse_address(item))
            elif any(ch in item for ch in "*?["):
                self.patterns.append(low)
            else:
                self.names.add(low.rstrip("."))

    @property
    def is_empty(self) -> bool:
        """True when the list matches no one (gnfs's `none`)."""
        return not (self.everyone or self.networks or self.addresses or self.patterns or self.names)

    @property
    def name_rules(self) -> tuple[str, ...]:
        """Rules that can only match through reverse DNS (for a warning when namelookup is off)."""
        return tuple(sorted(self.names))

    def matches(self, address: str) -> bool:
        if self.everyone:
            return True
        ip = parse_address(address)
        if ip is not None:
            if ip in self.addresses:
                return True
            for net in self.networks:
                if ip.version == net.version and ip in net:
                    return True
        text = str(ip) if ip is not None else address
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(text.lower(), pattern):
                return True
        if self.namelookup and (self.names or self.patterns) and ip is not None:
            for name in self._resolver.names(str(ip)):
                if name in self.names:
                    return True
                if any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
                    return True
        return False

    def __repr__(self) -> str:
        return f"HostRules({','.join(self.items)})"
