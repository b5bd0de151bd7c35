"""The RPC message header on the hot path: parse a CALL, build REPLY headers.

Every call pays for its header, so it is decoded here with precompiled
`struct` formats instead of the generic codec (six fixed words and two
`opaque_auth`s, RFC 5531 §9).  The numbers themselves come from `rpc.x`
through the XDR codec, so the protocol definition stays the one source.

Replies always carry an AUTH_NONE verifier: the server supports no flavour
that signs replies (AUTH_SHORT, AUTH_DH and RPCSEC_GSS are refused).
"""
from __future__ import annotations

import struct

from rpcsvc import xdr

RPC = xdr.load("rpc")

RPC_VERSION = 2
MAX_AUTH_BYTES = 400  # opaque_auth body limit, RFC 5531 §8.2

CALL = RPC.CALL
REPLY = RPC.REPLY
MSG_ACCEPTED = RPC.MSG_ACCEPTED
MSG_DENIED = RPC.MSG_DENIED
SUCCESS = RPC.SUCCESS
PROG_UNAVAIL = RPC.PROG_UNAVAIL
PROG_MISMATCH = RPC.PROG_MISMATCH
PROC_UNAVAIL = RPC.PROC_UNAVAIL
GARBAGE_ARGS = RPC.GARBAGE_ARGS
SYSTEM_ERR = RPC.SYSTEM_ERR
RPC_MISMATCH = RPC.RPC_MISMATCH
AUTH_ERROR = RPC.AUTH_ERROR
AUTH_OK = RPC.AUTH_OK
AUTH_BADCRED = RPC.AUTH_BADCRED
AUTH_REJECTEDCRED = RPC.AUTH_REJECTEDCRED
AUTH_BADVERF = RPC.AUTH_BADVERF
AUTH_TOOWEAK = RPC.AUTH_TOOWEAK
AUTH_NONE = RPC.AUTH_NONE
AUTH_SYS = RPC.AUTH_SYS

ACCEPT_STAT_NAMES = {SUCCESS: "SUCCESS", PROG_UNAVAIL: "PROG_UNAVAIL",
                     PROG_MISMATCH: "PROG_MISMATCH", PROC_UNAVAIL: "PROC_UNAVAIL",
                     GARBAGE_ARGS: "GARBAGE_ARGS", SYSTEM_ERR: "SYSTEM_ERR"}

CALL_FIXED = struct.Struct(">IIIIIIII")  # xid type rpcvers prog vers proc cflavor clen
_CALL_SIZE = CALL_FIXED.size
_MIN_CALL = _CALL_SIZE + 8          # the fixed words and an empty verifier
AUTH_HEAD = struct.Struct(">II")   # an opaque_auth's flavor and body length
_TWO = struct.Struct(">II")
_ACCEPTED = struct.Struct(">IIIIII")  # xid REPLY MSG_ACCEPTED verf(flavor, len) stat
_ACCEPTED_RANGE = struct.Struct(">IIIIIIII")  # ... stat low high
_DENIED_RANGE = struct.Struct(">IIIIII")  # xid REPLY MSG_DENIED RPC_MISMATCH low high
_DENIED_AUTH = struct.Struct(">IIIII")  # xid REPLY MSG_DENIED AUTH_ERROR auth_stat


class Unanswerable(Exception):
    """Not a call we can reply to at all (too short for an xid, or not a CALL)."""


class BadHeader(Exception):
    """A call we can answer, but only with the error the RFC names.

    `reply` is the complete reply message (without record mark); `kind` names
    the answer for the statistics (RPC_MISMATCH, AUTH_ERROR, GARBAGE_ARGS)."""

    def __init__(self, xid: int, reply: bytes, reason: str, kind: str):
        super().__init__(reason)
        self.xid = xid
        self.reply = reply
        self.kind = kind


class CallHeader:
    """The decoded fixed part of a CALL; `args_offset` is where the arguments start."""

    __slots__ = ("xid", "prog", "vers", "proc", "cred_flavor", "cred_body",
                 "verf_flavor", "verf_body", "args_offset")

    def __init__(self, xid, prog, vers, proc, cred_flavor, cred_body, verf_flavor,
                 verf_body, args_offset):
        self.xid = xid
        self.prog = prog
        self.vers = vers
        self.proc = proc
        self.cred_flavor = cred_flavor
        self.cred_body = cred_body
        self.verf_flavor = verf_flavor
        self.verf_body = verf_body
        self.args_offset = args_offset


def _padded(length: int) -> int:
    return (length + 3) & ~3


def parse_call(msg) -> CallHeader:
    """Decode the call header of `msg` (bytes-like) into a `CallHeader`.

    Raises `Unanswerable` (drop the message), or `BadHeader` carrying the
    reply to send: RPC_MISMATCH(2, 2) for another RPC version, AUTH_BADCRED /
    AUTH_BADVERF for an over-long credential or verifier, GARBAGE_ARGS for a
    header cut short (what gnfs answers when `xdr_to_rpc_call` fails).
    """
    return CallHeader(*parse_call_fields(msg))


def parse_call_fields(msg) -> tuple:
    """What `parse_call` decodes, as the tuple (xid, prog, vers, proc,
    cred_flavor, cred_body, verf_flavor, verf_body, args_offset).

    This is what the service's call path uses: every call pays for it, so a
    well-formed header is decoded with two unpacks, no helper call and no
    object but the tuple; anything the fast path does not accept goes
    through `_parse_call_checked`, which tells exactly what is wrong.
    """
    size = len(msg)
    if size >= _MIN_CALL:
        xid, mtype, rpcvers, prog, vers, proc, cflavor, clen = CALL_FIXED.unpack_from(msg, 0)
        if mtype == CALL and rpcvers == RPC_VERSION and clen <= MAX_AUTH_BYTES:
            verf_at = _CALL_SIZE + ((clen + 3) & ~3)
            if verf_at + 8 <= size:
                vflavor, vlen = AUTH_HEAD.unpack_from(msg, verf_at)
                verf_at += 8
                args_offset = verf_at + ((vlen + 3) & ~3)
                if vlen <= MAX_AUTH_BYTES and args_offset <= size:
                    view = msg if type(msg) is memoryview else memoryview(msg)
                    # The verifier is nearly always empty: b"" spares a view.
                    return (xid, prog, vers, proc, cflavor,
                            view[_CALL_SIZE:_CALL_SIZE + clen], vflavor,
                            view[verf_at:verf_at + vlen] if vlen else b"", args_offset)
    return _parse_call_checked(msg)


def _parse_call_checked(msg) -> tuple:
    """parse_call_fields step by step, each check raising what the RFC names."""
    size = len(msg)
    if size < 8:
        raise Unanswerable(f"{size}-byte message has no room for xid and type")
    xid, mtype = _TWO.unpack_from(msg, 0)
    if mtype != CALL:
        raise Unanswerable(f"message type {mtype} is not a CALL")
    if size < 12:
        raise BadHeader(xid, accepted_header(xid, GARBAGE_ARGS), "call cut before rpcvers",
                        "GARBAGE_ARGS")
    rpcvers = struct.unpack_from(">I", msg, 8)[0]
    if rpcvers != RPC_VERSION:
        raise BadHeader(xid, denied_rpc_mismatch(xid, RPC_VERSION, RPC_VERSION),
                        f"RPC version {rpcvers}", "RPC_MISMATCH")
    if size < CALL_FIXED.size:
        raise BadHeader(xid, accepted_header(xid, GARBAGE_ARGS), "call header truncated",
                        "GARBAGE_ARGS")
    _, _, _, prog, vers, proc, cflavor, clen = CALL_FIXED.unpack_from(msg, 0)
    if clen > MAX_AUTH_BYTES:
        raise BadHeader(xid, denied_auth(xid, AUTH_BADCRED), f"credential of {clen} bytes",
                        "AUTH_ERROR")
    offset = CALL_FIXED.size
    cred_end = offset + clen
    verf_at = offset + _padded(clen)
    if verf_at + 8 > size:
        raise BadHeader(xid, accepted_header(xid, GARBAGE_ARGS), "credential truncated",
                        "GARBAGE_ARGS")
    vflavor, vlen = AUTH_HEAD.unpack_from(msg, verf_at)
    if vlen > MAX_AUTH_BYTES:
        raise BadHeader(xid, denied_auth(xid, AUTH_BADVERF), f"verifier of {vlen} bytes",
                        "AUTH_ERROR")
    verf_body_at = verf_at + 8
    args_offset = verf_body_at + _padded(vlen)
    if args_offset > size:
        raise BadHeader(xid, accepted_header(xid, GARBAGE_ARGS), "verifier truncated",
                        "GARBAGE_ARGS")
    view = msg if isinstance(msg, memoryview) else memoryview(msg)
    return (xid, prog, vers, proc, cflavor, view[offset:cred_end], vflavor,
            view[verf_body_at:verf_body_at + vlen], args_offset)


SUCCESS_HEADER = struct.Struct(">I20s")  # xid, then the words every SUCCESS reply shares
SUCCESS_TAIL = struct.pack(">IIIII", REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS)


def accepted_header(xid: int, stat: int = SUCCESS, low: int | None = None,
                    high: int | None = None) -> bytes:
    """An accepted reply up to (and including) accept_stat; PROG_MISMATCH adds the range."""
    if stat == PROG_MISMATCH:
        return _ACCEPTED_RANGE.pack(xid, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, stat,
                                    low or 0, high or 0)
    return _ACCEPTED.pack(xid, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, stat)


def denied_rpc_mismatch(xid: int, low: int, high: int) -> bytes:
    """MSG_DENIED / RPC_MISMATCH with the supported RPC version range."""
    return _DENIED_RANGE.pack(xid, REPLY, MSG_DENIED, RPC_MISMATCH, low, high)


def denied_auth(xid: int, auth_stat: int) -> bytes:
    """MSG_DENIED / AUTH_ERROR with the reason."""
    return _DENIED_AUTH.pack(xid, REPLY, MSG_DENIED, AUTH_ERROR, auth_stat)


def build_call(xid: int, prog: int, vers: int, proc: int, cred_flavor: int = 0,
               cred_body: bytes = b"", verf_flavor: int = 0, verf_body: bytes = b"") -> bytes:
    """A call header (no arguments): used by the client and by hand-built tests."""
    def auth(flavor, body):
        body = bytes(body)
        return AUTH_HEAD.pack(flavor, len(body)) + body + b"\0" * (_padded(len(body)) - len(body))
    return (struct.pack(">IIIIII", xid, CALL, RPC_VERSION, prog, vers, proc)
            + auth(cred_flavor, cred_body) + auth(verf_flavor, verf_body))


class ReplyHeader:
    """A decoded REPLY: `accepted` with `stat` (accept_stat), or denied with
    `stat` (reject_stat) and `auth_stat`; `low`/`high` for the mismatch kinds;
    `body_offset` is where SUCCESS results start."""

    __slots__ = ("xid", "accepted", "stat", "auth_stat", "low", "high", "body_offset")

    def __init__(self, xid, accepted, stat, auth_stat=None, low=None, high=None,
                 body_offset=0):
        self.xid = xid
        self.accepted = accepted
        self.stat = stat
        self.auth_stat = auth_stat
        self.low = low
        self.high = high
        self.body_offset = body_offset

    @property
    def success(self) -> bool:
        return self.accepted and self.stat == SUCCESS


def parse_reply(msg) -> ReplyHeader:
    """Decode a REPLY header; raises ValueError for anything that is not one."""
    size = len(msg)
    if size < 12:
        raise ValueError(f"{size}-byte message is too short for a reply")
    xid, mtype, rstat = struct.unpack_from(">III", msg, 0)
    if mtype != REPLY:
        raise ValueError(f"message type {mtype} is not a REPLY")
    if rstat == MSG_DENIED:
        if size < 16:
            raise ValueError("denied reply truncated")
        reject = struct.unpack_from(">I", msg, 12)[0]
        if reject == RPC_MISMATCH and size >= 24:
            low, high = _TWO.unpack_from(msg, 16)
            return ReplyHeader(xid, False, reject, low=low, high=high)
        if reject == AUTH_ERROR and size >= 20:
            return ReplyHeader(xid, False, reject, auth_stat=struct.unpack_from(">I", msg, 16)[0])
        raise ValueError(f"denied reply with reject_stat {reject} malformed")
    if rstat != MSG_ACCEPTED:
        raise ValueError(f"reply_stat {rstat} unknown")
    if size < 20:
        raise ValueError("accepted reply truncated")
    vlen = struct.unpack_from(">I", msg, 16)[0]
    if vlen > MAX_AUTH_BYTES:
        raise ValueError(f"reply verifier of {vlen} bytes")
    at = 20 + _padded(vlen)
    if size < at + 4:
        raise ValueError("accepted reply truncated before accept_stat")
    stat = struct.unpack_from(">I", msg, at)[0]
    at += 4
    if stat == PROG_MISMATCH:
        if size < at + 8:
            raise ValueError("PROG_MISMATCH reply without its range")
        low, high = _TWO.unpack_from(msg, at)
        return ReplyHeader(xid, True, stat, low=low, high=high, body_offset=at + 8)
    return ReplyHeader(xid, True, stat, body_offset=at)
