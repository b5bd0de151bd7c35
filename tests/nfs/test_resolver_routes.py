"""HandleResolver keeps what a handle's export part means for a client address
(its route) for HOST_CACHE_SECONDS: host rules are asked once per address, a
refusal stays a refusal, and new exports or an expired route ask again."""
from __future__ import annotations

import pytest

from glusterfsd.xlator import IA_REG, ROOT_GFID, Caller, Iatt
from nfs import fh, resolver
from nfs.inode import InodeTables
from nfs.nfs3_attrs import N
from nfs.nfs3_errors import NfsError

VOLUME_ID = b"V" * 16
FILE_GFID = b"F" * 16


class _Volume:
    name = "vol"

    def lookup(self, caller, gfid, name):
        if gfid not in (ROOT_GFID, FILE_GFID):
            raise OSError(116, "stale")
        return Iatt(gfid, IA_REG, 0o644, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0)


class _Export:
    """The parts of nfs.exports.Export the resolver reads."""

    def __init__(self, allowed: set[str], volume: _Volume, mountid: bytes = b"M" * 16):
        self.volume_id = VOLUME_ID
        self.mountid = mountid
        self.path = "/vol"
        self.is_volume = True
        self.xlator = volume
        self.allowed = allowed
        self.asked: list[str] = []

    def host_allowed(self, address: str) -> bool:
        self.asked.append(address)
        return address in self.allowed


class _Req:
    def __init__(self, address: str):
        self.peer = (address, 800)
        self.caller = Caller(0, 0, ())


class _Handle:
    def __init__(self, data: bytes):
        self.data = data


def _handle(export, gfid=FILE_GFID) -> _Handle:
    return _Handle(fh.build(export.volume_id, gfid, export.mountid))


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(resolver, "_monotonic", lambda: now[0])
    return now


def test_host_rules_are_asked_once_per_address(clock):
    export = _Export({"10.0.0.1", "10.0.0.2"}, _Volume())
    handles = resolver.HandleResolver([export], InodeTables(100), False)
    for _ in range(5):
        target = handles.resolve(_Req("10.0.0.1"), _handle(export))
        assert target.export is export and target.gfid == FILE_GFID and target.type == IA_REG
    handles.resolve(_Req("10.0.0.2"), _handle(export))
    assert export.asked == ["10.0.0.1", "10.0.0.2"]


def test_a_refused_address_stays_refused_and_is_asked_again_once_expired(clock):
    export = _Export({"10.0.0.1"}, _Volume())
    handles = resolver.HandleResolver([export], InodeTables(100), False)
    for _ in range(3):
        with pytest.raises(NfsError) as refused:
            handles.resolve(_Req("10.6.6.6"), _handle(export))
        assert refused.value.status == N.NFS3ERR_ACCES
    assert export.asked == ["10.6.6.6"]
    export.allowed.add("10.6.6.6")              # say a host name now resolves to it
    clock[0] += resolver.HandleResolver.HOST_CACHE_SECONDS - 1
    with pytest.raises(NfsError):
        handles.resolve(_Req("10.6.6.6"), _handle(export))
    clock[0] += 1
    assert handles.resolve(_Req("10.6.6.6"), _handle(export)).export is export
    assert export.asked == ["10.6.6.6", "10.6.6.6"]


def test_new_exports_forget_every_route(clock):
    volume = _Volume()
    old = _Export({"10.0.0.1"}, volume)
    handles = resolver.HandleResolver([old], InodeTables(100), False)
    handles.resolve(_Req("10.0.0.1"), _handle(old))
    stricter = _Export(set(), volume)
    handles.set_exports([stricter], False)
    with pytest.raises(NfsError) as refused:
        handles.resolve(_Req("10.0.0.1"), _handle(old))
    assert refused.value.status == N.NFS3ERR_ACCES and stricter.asked == ["10.0.0.1"]


def test_bad_handles_are_still_named(clock):
    export = _Export({"10.0.0.1"}, _Volume())
    handles = resolver.HandleResolver([export], InodeTables(100), False)
    req = _Req("10.0.0.1")
    with pytest.raises(NfsError) as bad:
        handles.resolve(req, _Handle(b"short"))
    assert bad.value.status == N.NFS3ERR_BADHANDLE
    with pytest.raises(NfsError) as unexported:
        handles.resolve(req, _Handle(fh.build(b"X" * 16, FILE_GFID, export.mountid)))
    assert unexported.value.status == N.NFS3ERR_STALE
    with pytest.raises(NfsError) as gone:
        handles.resolve(req, _handle(export, gfid=b"G" * 16))
    assert gone.value.status == N.NFS3ERR_STALE


def test_the_route_cache_is_bounded(clock, monkeypatch):
    monkeypatch.setattr(resolver.HandleResolver, "HOST_CACHE_SIZE", 4)
    export = _Export({f"10.0.0.{i}" for i in range(10)}, _Volume())
    handles = resolver.HandleResolver([export], InodeTables(100), False)
    for i in range(10):
        handles.resolve(_Req(f"10.0.0.{i}"), _handle(export))
        assert len(handles._routes) <= 4


def test_a_route_worked_out_while_exports_change_is_not_kept(clock):
    """set_exports between reading the exports and keeping the route: the
    route of the old exports must not land in the new cache."""
    volume = _Volume()
    old = _Export({"10.0.0.1"}, volume)
    handles = resolver.HandleResolver([old], InodeTables(100), False)
    stricter = _Export(set(), volume)

    def exports_change_meanwhile(address):
        old.asked.append(address)
        handles.set_exports([stricter], False)
        return True

    old.host_allowed = exports_change_meanwhile
    handles.resolve(_Req("10.0.0.1"), _handle(old))     # answered with what it read
    with pytest.raises(NfsError) as refused:
        handles.resolve(_Req("10.0.0.1"), _handle(old))
    assert refused.value.status == N.NFS3ERR_ACCES and stricter.asked == ["10.0.0.1"]
