"""GETSTAT's lookup counters stay bounded whatever remote callers ask for (review finding 14a)."""
from __future__ import annotations

import pytest

from rpcsvc import xdr
from rpcsvc.client import RpcClient
from rpcsvc.pmap_server import MAX_ADDR_STATS, BuiltinPortmapper, _Stats

PM = xdr.load("portmap")
V2 = PM.programs["PMAP_PROG"].versions[2].procs
V4 = PM.programs["RPCBPROG"].versions[4].procs


@pytest.fixture
def portmapper(pool):
    pm = BuiltinPortmapper(pool)
    assert pm.start("127.0.0.1", 0)
    pm.register([(400500, 1, "tcp", 2049)])
    yield pm
    pm.stop()


def lookups(stat) -> dict:
    return {(a.prog, a.vers, bytes(a.netid)): (a.success, a.failure) for a in stat.addrinfo}


def test_lookups_of_unregistered_programs_are_not_counted(portmapper):
    with RpcClient("127.0.0.1", portmapper.port, "tcp", timeout=5) as client:
        for n in range(40):
            port = client.call(100000, 2, 3, V2[3].arg, PM.mapping(700000 + n, n, 6, 0), V2[3].res)
            assert port == 0
            addr = client.call(100000, 4, 3, V4[3].arg,
                               PM.rpcb(700000 + n, 1, b"junk%d" % n, b"", b""), V4[3].res)
            assert addr == b""
        # a registered program is counted, a bogus netid under the request's transport
        assert client.call(100000, 2, 3, V2[3].arg, PM.mapping(400500, 1, 6, 0), V2[3].res) == 2049
        assert client.call(100000, 4, 3, V4[3].arg, PM.rpcb(400500, 7, b"bogus", b"", b""),
                           V4[3].res) == b""
        v2, _v3, v4 = client.call(100000, 4, 12, V4[12].arg, None, V4[12].res)
    assert lookups(v2) == {(400500, 1, b"tcp"): (1, 0)}
    assert lookups(v4) == {(400500, 7, b"tcp"): (0, 1)}


def test_versions_of_a_registered_program_are_capped():
    stats = _Stats()
    for vers in range(MAX_ADDR_STATS + 100):
        stats.lookup(2, 400500, vers, "udp", False)
    stats.lookup(2, 400500, 0, "udp", True)                   # a known key still counts
    assert len(stats.addrinfo[2]) == MAX_ADDR_STATS
    assert stats.addrinfo[2][(400500, 0, "udp")] == [1, 1]
    assert len(stats.encode()[0].addrinfo) == MAX_ADDR_STATS
