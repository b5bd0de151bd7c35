"""Credential flavours: AUTH_NONE and AUTH_SYS become a `Caller`; others are refused.

Why these answers (RFC 5531 §9-10, and what Linux knfsd does):
- AUTH_NONE must have an empty body, AUTH_SYS a well-formed `authsys_parms`
  (machinename <= 255 bytes, <= 16 groups, nothing left over).  Anything else
  in those flavours is a broken credential: AUTH_BADCRED.
- Both flavours expect an AUTH_NONE verifier with an empty body; another one
  is AUTH_BADVERF.
- Flavours the server does not implement (AUTH_SHORT, AUTH_DH, RPCSEC_GSS,
  Gluster's private ones) are AUTH_REJECTEDCRED: the client must use
  another credential.  A flavour below a program's minimum is AUTH_TOOWEAK.
- AUTH_NONE maps to the anonymous Caller(65534, 65534), as gnfs's nfsnobody.
- An AUTH_SYS uid, gid or group the kernel cannot hold (0xFFFFFFFF, which
  is (uid_t)-1) becomes the anonymous uid/gid; see `decode_authsys`.
"""
from __future__ import annotations

import struct

from glusterfsd.xlator import Caller
from rpcsvc import wire

MAX_MACHINENAME = 255
MAX_GROUPS = 16
ANONYMOUS_UID = 65534
ANONYMOUS_GID = 65534
ID_MAX = 0xFFFFFFFE  # the kernel's largest uid/gid; (uid_t)-1 = 0xFFFFFFFF is "no id"
PRIVILEGED_PORT_LIMIT = 1024

# The order used for a program's minimum flavour: AUTH_NONE is the weakest.
FLAVOR_STRENGTH = {wire.AUTH_NONE: 0, wire.AUTH_SYS: 1}

_WORD = struct.Struct(">I")
_TWO = struct.Struct(">II")


class AuthFailure(Exception):
    """The credential is refused with `auth_stat` (sent as MSG_DENIED/AUTH_ERROR)."""

    def __init__(self, auth_stat: int, reason: str):
        super().__init__(reason)
        self.auth_stat = auth_stat


class Credentials:
    """What the call's credential says: flavour, the Caller, and the AUTH_SYS extras."""

    __slots__ = ("flavor", "caller", "machinename", "stamp")

    def __init__(self, flavor: int, caller: Caller, machinename: bytes = b"", stamp: int = 0):
        self.flavor = flavor
        self.caller = caller
        self.machinename = machinename
        self.stamp = stamp


def decode_authsys(body) -> tuple[int, bytes, int, int, tuple[int, ...]]:
    """(stamp, machinename, uid, gid, gids) of an AUTH_SYS body; AuthFailure(BADCRED) if bad.
    Ids the kernel cannot hold come back as the anonymous ones (`map_invalid_ids`)."""
    size = len(body)

    def fail(why: str):
        return AuthFailure(wire.AUTH_BADCRED, f"AUTH_SYS credential: {why}")

    if size < 8:
        raise fail("too short")
    stamp, name_len = _TWO.unpack_from(body, 0)
    if name_len > MAX_MACHINENAME:
        raise fail(f"machinename of {name_len} bytes")
    at = 8 + ((name_len + 3) & ~3)
    if at + 12 > size:
        raise fail("truncated after machinename")
    machinename = bytes(body[8:8 + name_len])
    uid, gid, ngroups = struct.unpack_from(">III", body, at)
    at += 12
    if ngroups > MAX_GROUPS:
        raise fail(f"{ngroups} groups (at most {MAX_GROUPS})")
    if at + 4 * ngroups != size:
        raise fail(f"{size - at} bytes for {ngroups} groups")
    gids = struct.unpack_from(f">{ngroups}I", body, at) if ngroups else ()
    return stamp, machinename, *map_invalid_ids(uid, gid, gids)


def map_invalid_ids(uid: int, gid: int, gids) -> tuple[int, int, tuple[int, ...]]:
    """Ids outside the kernel's range become the anonymous ones.

    Why map rather than refuse (AUTH_BADCRED): 0xFFFFFFFF is a well-formed
    XDR uint and some clients send it for "nobody"; Linux knfsd accepts the
    credential and maps the invalid uid/gid to the export's anonymous ids
    (nfsd_setuser), so a client gets the same answers here.  Passed on
    unmapped it is dangerous: setfsuid(-1) means "leave unchanged", so the
    thread would keep whatever identity it had -- root after index upkeep.
    The anonymous ids are also what root-squash produces, so a mapped caller
    is never root.
    """
    def fix(value: int, anonymous: int) -> int:
        return value if value <= ID_MAX else anonymous

    return (fix(uid, ANONYMOUS_UID), fix(gid, ANONYMOUS_GID),
            tuple(fix(g, ANONYMOUS_GID) for g in gids))


def encode_authsys(stamp: int, machinename: bytes, uid: int, gid: int, gids) -> bytes:
    """An AUTH_SYS body (the client side and hand-built tests)."""
    name = bytes(machinename)
    pad = b"\0" * (((len(name) + 3) & ~3) - len(name))
    gids = tuple(gids)
    return (_TWO.pack(stamp, len(name)) + name + pad + struct.pack(">III", uid, gid, len(gids))
            + struct.pack(f">{len(gids)}I", *gids))


_SYS_CACHE_SIZE = 4096
_sys_cache: dict[tuple[bytes, str], Credentials] = {}
_none_cache: dict[str, Credentials] = {}     # AUTH_NONE: the anonymous caller, per client
# The service's call path looks a known AUTH_SYS credential up itself, with this
# (the dict is only ever cleared, never replaced, so the bound method stays valid).
sys_cache_get = _sys_cache.get
_AUTH_NONE = wire.AUTH_NONE
_AUTH_SYS = wire.AUTH_SYS


def authenticate(header, client: str) -> Credentials:
    """Check the credential and verifier of a parsed call header (`wire.CallHeader`)."""
    return credentials(header.cred_flavor, header.cred_body, header.verf_flavor,
                       header.verf_body, client)


def credentials(flavor: int, body, verf_flavor: int, verf_body, client: str) -> Credentials:
    """The Credentials of a call's credential and verifier (`authenticate`, from the
    header's fields: the service's call path has them as a tuple, not a CallHeader).

    A client sends the same AUTH_SYS body with every call, so decoded
    credentials are kept by (body, client address), and AUTH_NONE ones by
    client address: most calls cost one dict lookup.  The cache is bounded (cleared when full); entries are never
    changed once made, so threads may share them."""
    if flavor == _AUTH_SYS:
        key = (bytes(body), client)
        creds = _sys_cache.get(key)
        if creds is None:
            stamp, name, uid, gid, gids = decode_authsys(body)
            creds = Credentials(flavor, Caller(uid, gid, gids, client), name, stamp)
            if len(_sys_cache) >= _SYS_CACHE_SIZE:
                _sys_cache.clear()
            _sys_cache[key] = creds
    elif flavor == _AUTH_NONE:
        if len(body):
            raise AuthFailure(wire.AUTH_BADCRED, "AUTH_NONE credential with a body")
        creds = _none_cache.get(client)
        if creds is None:
            creds = Credentials(flavor, Caller(ANONYMOUS_UID, ANONYMOUS_GID, (), client))
            if len(_none_cache) >= _SYS_CACHE_SIZE:
                _none_cache.clear()
            _none_cache[client] = creds
    else:
        raise AuthFailure(wire.AUTH_REJECTEDCRED, f"credential flavour {flavor} not supported")
    if verf_flavor != _AUTH_NONE or len(verf_body):
        raise AuthFailure(wire.AUTH_BADVERF,
                          f"verifier flavour {verf_flavor} with a flavour-{flavor} credential")
    return creds


def check_min_flavor(flavor: int, min_flavor: int) -> None:
    """AUTH_TOOWEAK when the call's flavour is weaker than the program requires."""
    if FLAVOR_STRENGTH.get(flavor, -1) < FLAVOR_STRENGTH.get(min_flavor, 0):
        raise AuthFailure(wire.AUTH_TOOWEAK,
                          f"flavour {flavor} is weaker than the required {min_flavor}")


def is_privileged(port: int) -> bool:
    """A source port below 1024: only root could have bound it (gnfs's `unprivileged`)."""
    return 0 < port < PRIVILEGED_PORT_LIMIT
