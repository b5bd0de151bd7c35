"""The built-in portmapper (v2, v3, v4) and the registration client, on ephemeral ports."""
from __future__ import annotations

import socket
import time

import pytest

from rpcsvc import pmap, wire, xdr
from rpcsvc.client import RpcCallError, RpcClient
from rpcsvc.pmap_server import (BuiltinPortmapper, Registry, parse_uaddr, taddr_to_uaddr,
                                uaddr, uaddr_to_taddr)
from rpcsvc.program import RpcAuthError

PM = xdr.load("portmap")
V2 = PM.programs["PMAP_PROG"].versions[2].procs
V3 = PM.programs["RPCBPROG"].versions[3].procs
V4 = PM.programs["RPCBPROG"].versions[4].procs


@pytest.fixture
def portmapper(pool):
    pm = BuiltinPortmapper(pool)
    assert pm.start("127.0.0.1", 0)
    yield pm
    pm.stop()


def call(pm, vers, proc, value=None, proto="tcp"):
    table = {2: V2, 3: V3, 4: V4}[vers]
    with RpcClient("127.0.0.1", pm.port, proto, timeout=5) as client:
        return client.call(100000, vers, proc, table[proc].arg, value, table[proc].res)


def rpcb(prog, vers, netid=b"", addr=b"", owner=b""):
    return PM.rpcb(prog, vers, netid, addr, owner)


def test_registers_itself_for_every_version_and_transport(portmapper):
    listed = pmap.dump(port=portmapper.port)
    for vers in (2, 3, 4):
        for proto in ("tcp", "udp"):
            assert (100000, vers, proto, portmapper.port) in listed
    assert call(portmapper, 2, 0, proto="udp") is None


def test_register_and_unregister_programs(portmapper):
    mappings = [(100003, 3, "tcp", 2049), (100003, 3, "udp", 2049), (100005, 3, "tcp", 38465)]
    assert pmap.register_programs(mappings, port=portmapper.port)
    listed = pmap.dump(port=portmapper.port)
    assert all(m in listed for m in mappings)
    assert pmap.getport(100005, 3, "tcp", port=portmapper.port) == 38465
    # registering again (a restart after a crash) replaces the stale entries
    assert pmap.register_programs([(100003, 3, "tcp", 3049)], port=portmapper.port)
    assert pmap.getport(100003, 3, "tcp", port=portmapper.port) == 3049
    assert pmap.getport(100003, 3, "udp", port=portmapper.port) == 0
    assert pmap.unregister_programs(mappings, port=portmapper.port)
    assert not any(m[0] in (100003, 100005) for m in pmap.dump(port=portmapper.port))


def test_no_portmapper_answering():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert not pmap.portmapper_answers(port=port, timeout=1)
        assert pmap.register_programs([(100003, 3, "tcp", 2049)], port=port, timeout=1) is False


def test_v2_set_unset_getport_rules(portmapper):
    m = PM.mapping(400100, 1, 6, 4000)
    assert call(portmapper, 2, 1, m) is True
    assert call(portmapper, 2, 1, PM.mapping(400100, 1, 6, 4001)) is False   # already there
    assert call(portmapper, 2, 1, PM.mapping(400100, 1, 99, 4001)) is False  # unknown prot
    # unregistered version of a known program: rpcbind answers another version's port
    assert call(portmapper, 2, 3, PM.mapping(400100, 7, 6, 0)) == 4000
    assert call(portmapper, 2, 3, PM.mapping(400199, 1, 6, 0)) == 0
    assert call(portmapper, 2, 3, PM.mapping(400100, 1, 17, 0)) == 0
    assert call(portmapper, 2, 2, m) is True
    assert call(portmapper, 2, 2, m) is False


def test_callit_is_not_served(portmapper):
    with pytest.raises(RpcCallError) as caught:
        call(portmapper, 2, 5, PM.call_args(100000, 2, 0, b""))
    assert caught.value.stat == wire.PROC_UNAVAIL


def test_v3_set_getaddr_dump_unset(portmapper):
    assert call(portmapper, 3, 1, rpcb(400200, 1, b"tcp", b"0.0.0.0.15.160")) is True
    assert call(portmapper, 3, 1, rpcb(400200, 1, b"udp", b"127.0.0.1.15.161")) is True
    assert call(portmapper, 3, 1, rpcb(400200, 2, b"tcp", b"not-an-address")) is False
    # a wildcard address is answered with the address the request came in on
    assert call(portmapper, 3, 3, rpcb(400200, 1, b"tcp")) == b"127.0.0.1.15.160"
    assert call(portmapper, 3, 3, rpcb(400200, 1, b"udp")) == b"127.0.0.1.15.161"
    assert call(portmapper, 3, 3, rpcb(400201, 1, b"tcp")) == b""
    dumped = {(e.r_prog, e.r_vers, bytes(e.r_netid)): e for e in
              (node.rpcb_map for node in call(portmapper, 3, 4))}
    assert bytes(dumped[(400200, 1, b"tcp")].r_owner) == b"unknown"
    assert call(portmapper, 3, 2, rpcb(400200, 1, b"")) is True         # all netids
    assert call(portmapper, 3, 3, rpcb(400200, 1, b"udp")) == b""


def test_v3_address_conversions_and_time(portmapper):
    netbuf = call(portmapper, 3, 7, b"127.0.0.1.8.1")
    assert netbuf.maxlen == len(netbuf.buf) == 16
    assert call(portmapper, 3, 8, netbuf) == b"127.0.0.1.8.1"
    assert call(portmapper, 3, 7, b"bogus").buf == b""
    assert call(portmapper, 3, 8, PM.netbuf(2, b"\0\0")) == b""
    assert abs(call(portmapper, 3, 6) - time.time()) < 5


def test_v4_versaddr_addrlist_and_stats(portmapper):
    assert call(portmapper, 4, 1, rpcb(400300, 3, b"tcp", b"0.0.0.0.8.1"))
    assert call(portmapper, 4, 1, rpcb(400300, 3, b"udp", b"0.0.0.0.8.2"))
    assert call(portmapper, 4, 9, rpcb(400300, 3, b"tcp")) == b"127.0.0.1.8.1"
    assert call(portmapper, 4, 9, rpcb(400300, 4, b"tcp")) == b""           # exact version only
    assert call(portmapper, 4, 3, rpcb(400300, 4, b"tcp")) == b"127.0.0.1.8.1"
    entries = [node.rpcb_entry_map for node in call(portmapper, 4, 11, rpcb(400300, 3))]
    got = {(bytes(e.r_nc_netid), bytes(e.r_maddr), e.r_nc_semantics, bytes(e.r_nc_proto))
           for e in entries}
    assert got == {(b"tcp", b"127.0.0.1.8.1", 3, b"tcp"), (b"udp", b"127.0.0.1.8.2", 1, b"udp")}
    stats = call(portmapper, 4, 12)
    v2, v3, v4 = stats
    assert v2.info[0] == 0 and v3.info[1] == 0 and v3.setinfo == 0    # counted per version
    assert v4.info[1] == 2 and v4.setinfo == 2 and v4.info[9] == 2 and v4.info[11] == 1
    lookups = {(a.prog, a.vers, bytes(a.netid)): (a.success, a.failure) for a in v4.addrinfo}
    assert lookups[(400300, 3, b"tcp")] == (2, 0) and lookups[(400300, 4, b"tcp")] == (1, 1)


def test_set_only_from_loopback(portmapper):
    class Req:
        peer = ("192.0.2.7", 600)
        privileged = True
        vers = 2
        args = PM.mapping(400400, 1, 6, 1)

    with pytest.raises(RpcAuthError) as caught:
        portmapper._pmap_set(Req())
    assert caught.value.auth_stat == wire.AUTH_TOOWEAK


def test_superuser_entries_need_a_privileged_caller():
    reg = Registry()
    assert reg.set(1, 1, "tcp", "0.0.0.0.0.1", "superuser")
    assert not reg.unset(1, 1, None, privileged=False)
    assert reg.unset(1, 1, None, privileged=True)


def test_start_refuses_a_taken_port(pool):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        pm = BuiltinPortmapper(pool)
        assert pm.start("127.0.0.1", s.getsockname()[1]) is False
        assert pm.svc is None


def test_in_process_registration(portmapper):
    assert portmapper.register([(100021, 4, "tcp", 4045)])
    assert pmap.getport(100021, 4, "tcp", port=portmapper.port) == 4045
    portmapper.unregister([(100021, 4, "tcp", 4045)])
    assert pmap.getport(100021, 4, "tcp", port=portmapper.port) == 0


def test_universal_addresses():
    assert uaddr("10.1.2.3", 2049) == "10.1.2.3.8.1"
    assert parse_uaddr("10.1.2.3.8.1") == ("10.1.2.3", 2049)
    assert parse_uaddr("::1.8.1") == ("::1", 2049)
    for bad in ("10.1.2.3", "10.1.2.3.256.1", "host.8.1", ""):
        assert parse_uaddr(bad) is None
    assert taddr_to_uaddr(uaddr_to_taddr("::1.0.111")) == "::1.0.111"
    assert uaddr_to_taddr("nonsense") == b""


def test_register_or_serve_falls_back_to_the_builtin(pool):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                  # free again once closed
    mappings = [(100003, 3, "tcp", 2049), (100005, 3, "udp", 20048)]
    registered, builtin = pmap.register_or_serve(pool, mappings, port=port, timeout=1)
    try:
        assert registered and builtin is not None and builtin.port == port
        assert all(m in pmap.dump(port=port) for m in mappings)
        # a second server on the same host finds that portmapper and registers through it
        again, second = pmap.register_or_serve(pool, [(100021, 4, "tcp", 4045)], port=port)
        assert again and second is None
        assert pmap.getport(100021, 4, "tcp", port=port) == 4045
    finally:
        if builtin:
            builtin.stop()
