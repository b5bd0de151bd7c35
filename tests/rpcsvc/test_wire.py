"""The call-header parser and the reply builders, against the generic rpc.x codec."""
from __future__ import annotations

import struct

import pytest

from rpc_testkit import call_msg
from rpcsvc import wire, xdr

RPC = xdr.load("rpc")


def test_parse_call_agrees_with_the_rpc_x_codec():
    msg = call_msg(0x1234, 100003, 3, 7, args=b"ARGS", cred=(1, b"\x01\x02\x03\x04\x05"))
    header = wire.parse_call(memoryview(msg))
    generic, end = RPC.rpc_msg.decode(msg, 0)
    body = generic.body[1]
    assert (header.xid, header.prog, header.vers, header.proc) == \
        (generic.xid, body.prog, body.vers, body.proc)
    assert header.cred_flavor == body.cred.flavor == 1
    assert bytes(header.cred_body) == bytes(body.cred.body)
    assert header.args_offset == end and msg[end:] == b"ARGS"


@pytest.mark.parametrize("cut", [0, 3, 7])
def test_too_short_for_xid_and_type_is_dropped(cut):
    with pytest.raises(wire.Unanswerable):
        wire.parse_call(call_msg(1)[:cut])


def test_a_reply_sent_to_the_server_is_dropped():
    with pytest.raises(wire.Unanswerable):
        wire.parse_call(wire.accepted_header(5))


def test_wrong_rpc_version_is_rpc_mismatch_2_2():
    with pytest.raises(wire.BadHeader) as caught:
        wire.parse_call(call_msg(9, rpcvers=3))
    reply = wire.parse_reply(caught.value.reply)
    assert (reply.xid, reply.accepted, reply.stat, reply.low, reply.high) == \
        (9, False, wire.RPC_MISMATCH, 2, 2)


@pytest.mark.parametrize("cut", [11, 20, 31, 35])
def test_truncated_header_is_garbage_args(cut):
    msg = call_msg(10, cred=(1, b"12345678"))
    with pytest.raises(wire.BadHeader) as caught:
        wire.parse_call(msg[:cut])
    reply = wire.parse_reply(caught.value.reply)
    assert reply.accepted and reply.stat == wire.GARBAGE_ARGS and reply.xid == 10


def test_oversized_credential_and_verifier():
    msg = bytearray(call_msg(11, cred=(1, b"x" * 8)))
    struct.pack_into(">I", msg, 28, 401)             # credential length
    with pytest.raises(wire.BadHeader) as caught:
        wire.parse_call(bytes(msg))
    assert wire.parse_reply(caught.value.reply).auth_stat == wire.AUTH_BADCRED
    msg = bytearray(call_msg(12))
    struct.pack_into(">I", msg, 36, 1000)            # verifier length
    with pytest.raises(wire.BadHeader) as caught:
        wire.parse_call(bytes(msg))
    assert wire.parse_reply(caught.value.reply).auth_stat == wire.AUTH_BADVERF


def test_reply_builders_decode_with_the_rpc_x_codec():
    ok = RPC.rpc_msg.decode_all(wire.accepted_header(1))
    assert ok.xid == 1 and ok.body[0] == RPC.REPLY
    mismatch = RPC.rpc_msg.decode_all(wire.accepted_header(2, wire.PROG_MISMATCH, 3, 4))
    areply = mismatch.body[1][1]
    assert areply.reply_data[0] == RPC.PROG_MISMATCH
    assert (areply.reply_data[1].low, areply.reply_data[1].high) == (3, 4)
    denied = RPC.rpc_msg.decode_all(wire.denied_auth(3, wire.AUTH_TOOWEAK))
    assert denied.body[1] == (RPC.MSG_DENIED, (RPC.AUTH_ERROR, RPC.AUTH_TOOWEAK))
    rpcv = RPC.rpc_msg.decode_all(wire.denied_rpc_mismatch(4, 2, 2))
    assert rpcv.body[1][1][0] == RPC.RPC_MISMATCH


def test_parse_reply_rejects_non_replies():
    with pytest.raises(ValueError):
        wire.parse_reply(call_msg(1))
    with pytest.raises(ValueError):
        wire.parse_reply(b"\0\0\0\1\0\0\0\1")
    with pytest.raises(ValueError):
        wire.parse_reply(struct.pack(">IIIIII", 1, 1, 0, 0, 500, 0))   # verifier too long


def test_success_reply_body_offset():
    reply = wire.accepted_header(7) + b"RESULT"
    header = wire.parse_reply(reply)
    assert header.success and reply[header.body_offset:] == b"RESULT"


# --- the fast path of parse_call against the step-by-step checks ----------------------

def _outcome(parse, msg):
    """What a parser answers: ("ok", every header field) or the error it raises.
    The service's fast path (parse_call_fields) and the step-by-step one
    (_parse_call_checked) give tuples; parse_call a CallHeader of the same."""
    try:
        h = parse(msg)
    except (wire.Unanswerable, wire.BadHeader) as error:
        return type(error).__name__, getattr(error, "reply", None), getattr(error, "kind", None)
    if isinstance(h, tuple):
        h = wire.CallHeader(*h)
    return ("ok", h.xid, h.prog, h.vers, h.proc, h.cred_flavor, bytes(h.cred_body),
            h.verf_flavor, bytes(h.verf_body), h.args_offset)


@pytest.mark.parametrize("cred_len", [0, 1, 3, 4, 5, 255, 400])
@pytest.mark.parametrize("verf_len", [0, 2, 8, 400])
def test_fast_parse_agrees_with_the_checked_parse_on_good_headers(cred_len, verf_len):
    msg = call_msg(0xABCD, 100005, 3, 1, args=b"ARGUMENTS",
                   cred=(wire.AUTH_SYS, bytes(i % 251 for i in range(cred_len))),
                   verf=(wire.AUTH_NONE, b"v" * verf_len))
    for given in (msg, memoryview(msg), bytearray(msg)):
        fast = _outcome(wire.parse_call_fields, given)
        assert fast[0] == "ok" and fast == _outcome(wire._parse_call_checked, given)
        assert fast == _outcome(wire.parse_call, given)
        assert msg[fast[-1]:] == b"ARGUMENTS"


def test_fast_parse_agrees_with_the_checked_parse_on_every_cut_and_bad_field():
    """Each prefix of a call, and calls with a bad type, version or length, get
    exactly the answer the step-by-step parser gives."""
    msg = call_msg(77, cred=(wire.AUTH_SYS, b"c" * 5), verf=(wire.AUTH_NONE, b"vvv"), args=b"A")
    for cut in range(len(msg) + 1):
        assert _outcome(wire.parse_call_fields, msg[:cut]) == \
            _outcome(wire._parse_call_checked, msg[:cut]) == \
            _outcome(wire.parse_call, msg[:cut]), cut
    bad = []
    # words: 4 message type, 8 rpcvers, 28 credential length (5, padded to 8),
    # 44 verifier length (3)
    for at, value in ((4, wire.REPLY), (8, 3), (28, 401), (28, 0xFFFFFFFF), (44, 401),
                      (44, 0x7FFFFFFF), (28, 100), (44, 8)):
        changed = bytearray(msg)
        struct.pack_into(">I", changed, at, value)
        bad.append(bytes(changed))
    for changed in bad:
        outcome = _outcome(wire.parse_call_fields, changed)
        assert outcome[0] != "ok" and outcome == _outcome(wire._parse_call_checked, changed)
        assert outcome == _outcome(wire.parse_call, changed)


def test_success_header_is_the_accepted_header():
    assert wire.SUCCESS_HEADER.pack(0xDEADBEEF, wire.SUCCESS_TAIL) == \
        wire.accepted_header(0xDEADBEEF)
