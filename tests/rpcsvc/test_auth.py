"""Credentials: AUTH_NONE and AUTH_SYS decode onto a Caller; everything else is named."""
from __future__ import annotations

import struct

import pytest

from rpc_testkit import call_msg, sys_cred
from rpcsvc import auth, wire, xdr

RPC = xdr.load("rpc")


def authenticate(msg: bytes, client: str = "10.0.0.1"):
    return auth.authenticate(wire.parse_call(msg), client)


def test_auth_none_is_the_anonymous_caller():
    creds = authenticate(call_msg(1))
    assert creds.flavor == wire.AUTH_NONE
    assert (creds.caller.uid, creds.caller.gid, creds.caller.groups) == (65534, 65534, ())
    assert creds.caller.client == "10.0.0.1"


def test_auth_sys_fields_reach_the_caller():
    creds = authenticate(call_msg(1, cred=sys_cred(501, 20, tuple(range(16)), b"h" * 255, 99)))
    assert creds.flavor == wire.AUTH_SYS
    assert (creds.caller.uid, creds.caller.gid) == (501, 20)
    assert creds.caller.groups == tuple(range(16))
    assert creds.machinename == b"h" * 255 and creds.stamp == 99


def test_auth_sys_ids_the_kernel_cannot_hold_become_anonymous():
    # (uid_t)-1 would reach setfsuid(-1), "leave unchanged": mapped like knfsd does
    creds = authenticate(call_msg(1, cred=sys_cred(0xFFFFFFFF, 0xFFFFFFFF, (5, 0xFFFFFFFF))))
    assert (creds.caller.uid, creds.caller.gid) == (65534, 65534)
    assert creds.caller.groups == (5, 65534)
    # the largest valid ids pass unchanged, next to the invalid ones
    creds = authenticate(call_msg(1, cred=sys_cred(0xFFFFFFFE, 0xFFFFFFFE, (0xFFFFFFFE,))))
    assert (creds.caller.uid, creds.caller.gid, creds.caller.groups) == \
        (0xFFFFFFFE, 0xFFFFFFFE, (0xFFFFFFFE,))
    assert auth.map_invalid_ids(0, 0, (0,)) == (0, 0, (0,))  # root stays root (squash is storage's)


def test_encode_authsys_matches_the_rpc_x_codec():
    body = auth.encode_authsys(5, b"box", 1, 2, (3, 4))
    assert body == RPC.authsys_parms.encode(RPC.authsys_parms(5, b"box", 1, 2, [3, 4]))


def test_seventeen_groups_is_badcred():
    body = bytearray(auth.encode_authsys(1, b"m", 0, 0, range(16)))
    struct.pack_into(">I", body, len(body) - 16 * 4 - 4, 17)
    body += struct.pack(">I", 16)
    with pytest.raises(auth.AuthFailure) as caught:
        authenticate(call_msg(1, cred=(wire.AUTH_SYS, bytes(body))))
    assert caught.value.auth_stat == wire.AUTH_BADCRED


def test_long_machinename_truncated_and_trailing_bytes_are_badcred():
    long_name = struct.pack(">II", 1, 256) + b"n" * 256 + struct.pack(">III", 0, 0, 0)
    short = auth.encode_authsys(1, b"m", 0, 0, ())[:-2]
    trailing = auth.encode_authsys(1, b"m", 0, 0, ()) + b"\0\0\0\0"
    for body in (long_name, short, trailing, b"", b"\0" * 7):
        with pytest.raises(auth.AuthFailure) as caught:
            auth.decode_authsys(body)
        assert caught.value.auth_stat == wire.AUTH_BADCRED


def test_auth_none_with_a_body_is_badcred():
    with pytest.raises(auth.AuthFailure) as caught:
        authenticate(call_msg(1, cred=(wire.AUTH_NONE, b"abcd")))
    assert caught.value.auth_stat == wire.AUTH_BADCRED


@pytest.mark.parametrize("flavor", [RPC.AUTH_SHORT, RPC.AUTH_DH, RPC.RPCSEC_GSS, 390039])
def test_unsupported_flavours_are_rejectedcred(flavor):
    with pytest.raises(auth.AuthFailure) as caught:
        authenticate(call_msg(1, cred=(flavor, b"\0" * 12)))
    assert caught.value.auth_stat == wire.AUTH_REJECTEDCRED


def test_verifier_must_be_auth_none():
    with pytest.raises(auth.AuthFailure) as caught:
        authenticate(call_msg(1, cred=sys_cred(), verf=(wire.AUTH_SYS, b"\0" * 8)))
    assert caught.value.auth_stat == wire.AUTH_BADVERF


def test_minimum_flavour():
    auth.check_min_flavor(wire.AUTH_SYS, wire.AUTH_NONE)
    auth.check_min_flavor(wire.AUTH_SYS, wire.AUTH_SYS)
    with pytest.raises(auth.AuthFailure) as caught:
        auth.check_min_flavor(wire.AUTH_NONE, wire.AUTH_SYS)
    assert caught.value.auth_stat == wire.AUTH_TOOWEAK


def test_privileged_ports():
    assert auth.is_privileged(1023) and auth.is_privileged(111)
    assert not auth.is_privileged(1024) and not auth.is_privileged(50000)


def test_decoded_credentials_are_reused_per_body_and_client():
    first = authenticate(call_msg(1, cred=sys_cred(uid=1000)), "10.0.0.1")
    again = authenticate(call_msg(2, cred=sys_cred(uid=1000)), "10.0.0.1")
    other_uid = authenticate(call_msg(3, cred=sys_cred(uid=1001)), "10.0.0.1")
    other_host = authenticate(call_msg(4, cred=sys_cred(uid=1000)), "10.0.0.2")
    assert again is first
    assert other_uid.caller.uid == 1001 and other_uid is not first
    assert other_host.caller.client == "10.0.0.2" and other_host is not first
    with pytest.raises(auth.AuthFailure):  # a bad body is refused every time, never cached
        authenticate(call_msg(5, cred=(wire.AUTH_SYS, b"\0\0\0\1")), "10.0.0.1")
    with pytest.raises(auth.AuthFailure):
        authenticate(call_msg(6, cred=(wire.AUTH_SYS, b"\0\0\0\1")), "10.0.0.1")


def test_anonymous_credentials_are_reused_per_client():
    first = authenticate(call_msg(1), "10.0.0.1")
    again = authenticate(call_msg(2), "10.0.0.1")
    other_host = authenticate(call_msg(3), "10.0.0.2")
    assert again is first and first.flavor == wire.AUTH_NONE
    assert other_host is not first and other_host.caller.client == "10.0.0.2"
    assert (other_host.caller.uid, other_host.caller.gid) == (65534, 65534)
    with pytest.raises(auth.AuthFailure) as caught:     # the cache never excuses a bad one
        authenticate(call_msg(4, cred=(wire.AUTH_NONE, b"\0\0\0\1")), "10.0.0.1")
    assert caught.value.auth_stat == wire.AUTH_BADCRED
    with pytest.raises(auth.AuthFailure) as caught:
        authenticate(call_msg(5, verf=(wire.AUTH_SYS, b"\0" * 8)), "10.0.0.1")
    assert caught.value.auth_stat == wire.AUTH_BADVERF
