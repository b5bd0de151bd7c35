"""The service's fast call path (a known AUTH_SYS credential, read in _on_record
itself) answers exactly what the general path (wire.parse_call_fields and
auth.credentials) answers: same reply bytes, same Request fields, for good
calls and for every cut or altered header."""
from __future__ import annotations

import struct

import pytest

import rpc_testkit
from rpc_testkit import NULL, REMOVE, call_msg, nfs_program, remove_args, sys_cred
from rpcsvc import auth, svc as svc_module, wire
from rpcsvc.svc import RpcService

PEER = ("10.9.8.7", 800)


class Capture:
    """A transport that keeps the replies instead of writing them."""

    local = ("127.0.0.1", 2049)
    kind = "tcp"
    closed = False

    def __init__(self):
        self.replies = []

    def send_reply(self, buffers, peer=None):
        self.replies.append(b"".join(bytes(b) for b in buffers))
        return True

    defer_reply = send_reply

    def call_started(self):
        pass

    def call_done(self):
        pass


@pytest.fixture
def service(pool):
    actors = rpc_testkit.TestActors()
    svc = RpcService(pool, stage_threads=1, drc=False)
    svc.add_program(nfs_program(actors, inline=(NULL, REMOVE)))
    yield svc, actors
    svc.close()


def _answer(svc, actors, msg):
    """(reply bytes, the Request's fields or None) for one record."""
    conn = Capture()
    before = len(actors.requests)
    svc._on_record(conn, memoryview(msg), PEER)
    req = actors.requests[-1] if len(actors.requests) > before else None
    fields = None
    if req is not None:
        caller = req.caller
        fields = (req.xid, req.prog, req.vers, req.proc, req.cred_flavor, req.machinename,
                  caller.uid, caller.gid, tuple(caller.groups), req.privileged,
                  bytes(req.raw_args))
    return conn.replies, fields


def _record_requests(actors):
    """NULL records its Request already; REMOVE is made to as well."""
    remove = actors.remove

    def removing(req):
        actors.requests.append(req)
        return remove(req)
    return removing


def _cold_then_warm(svc, actors, msg):
    auth._sys_cache.clear()
    cold = _answer(svc, actors, msg)
    warm = _answer(svc, actors, msg)     # the credential is cached now
    return cold, warm


CREDS = [sys_cred(), sys_cred(0, 0, (), b""), sys_cred(4294967295, 5, tuple(range(16)), b"h" * 255),
         sys_cred(7, 7, (1,), b"abc"), sys_cred(7, 7, (1,), b"abcde")]


@pytest.mark.parametrize("cred", CREDS)
@pytest.mark.parametrize("verf", [(wire.AUTH_NONE, b""), (wire.AUTH_NONE, b"1234"),
                                  (wire.AUTH_SYS, b"")])
def test_good_and_refused_calls_answer_the_same_cold_and_warm(service, cred, verf):
    svc, actors = service
    for proc, args in ((NULL, b""), (REMOVE, remove_args(b"x" * 7)), (NULL, b"junk")):
        svc._programs[100003][3].entries[REMOVE].actor = _record_requests(actors)
        msg = call_msg(0x51, proc=proc, args=args, cred=cred, verf=verf)
        cold, warm = _cold_then_warm(svc, actors, msg)
        assert cold == warm
        header = wire.parse_call(msg)
        if verf == (wire.AUTH_NONE, b"") and args != b"junk":
            creds = auth.authenticate(header, PEER[0])
            replies, fields = warm
            assert fields == (0x51, 100003, 3, proc, wire.AUTH_SYS, creds.machinename,
                              creds.caller.uid, creds.caller.gid, tuple(creds.caller.groups),
                              True, args)
            assert len(replies) == 1 and wire.parse_reply(replies[0]).success


def test_a_known_credential_takes_the_fast_path(service, monkeypatch):
    """The point of the fast path: no parse_call_fields / credentials call once the
    credential is cached (and both again for one that is not)."""
    svc, actors = service
    general = []
    for name in ("parse_call_fields", "credentials"):
        real = getattr(svc_module, name)
        monkeypatch.setattr(svc_module, name,
                            lambda *a, _real=real, _name=name: general.append(_name) or _real(*a))
    auth._sys_cache.clear()
    _answer(svc, actors, call_msg(1, cred=sys_cred(9)))
    assert general == ["parse_call_fields", "credentials"]
    del general[:]
    replies, fields = _answer(svc, actors, call_msg(2, cred=sys_cred(9)))
    assert general == [] and fields[0] == 2 and fields[6] == 9
    _answer(svc, actors, call_msg(3, cred=sys_cred(10)))
    assert general == ["parse_call_fields", "credentials"]


def test_every_cut_and_altered_word_answers_the_same_cold_and_warm(service):
    svc, actors = service
    msg = call_msg(77, cred=sys_cred(5, 6, (7,), b"hostname"), verf=(wire.AUTH_NONE, b""))
    cases = [msg[:cut] for cut in range(len(msg) + 1)]
    # words: 4 type, 8 rpcvers, 12 prog, 16 vers, 20 proc, 24 cred flavour, 28 cred length,
    # then the verifier's flavour and length after the padded credential
    verf_at = 32 + ((struct.unpack_from(">I", msg, 28)[0] + 3) & ~3)
    for at, value in ((4, wire.REPLY), (8, 3), (12, 100004), (16, 2), (20, 99), (24, 0),
                      (24, 3), (28, 401), (28, 0xFFFFFFFF), (28, 1), (28, 100),
                      (verf_at, 1), (verf_at + 4, 4), (verf_at + 4, 401)):
        changed = bytearray(msg)
        struct.pack_into(">I", changed, at, value)
        cases.append(bytes(changed))
    for case in cases:
        auth._sys_cache.clear()
        _answer(svc, actors, msg)               # the good credential is cached
        warm = _answer(svc, actors, case)
        auth._sys_cache.clear()
        cold = _answer(svc, actors, case)
        assert warm == cold, case
