"""Registering with the portmapper, as gnfs does at start (`rpc.register-with-portmap`).

`register_programs` tells the portmapper on `host` (port 111) where each
program/version/transport listens, with portmap v2 SET.  Before the SETs it
UNSETs each program/version: a previous instance that died without
unregistering leaves entries behind, and rpcbind refuses a SET over an
existing entry.

Against a local rpcbind the calls go through its Unix socket
(`/run/rpcbind.sock`) when it exists: rpcbind then knows our uid, records the
entries as owned by "superuser", and lets only us (root, or that socket) remove
them.  Otherwise they go over TCP to port 111 — which is also how the built-in
portmapper (`pmap_server.BuiltinPortmapper`, re-exported here) is reached.
"""
from __future__ import annotations

import os

from glusterfsd import log as gflog
from rpcsvc import xdr
from rpcsvc.client import RpcClient, RpcClientError
from rpcsvc.pmap_server import BuiltinPortmapper  # re-exported: the daemon imports it from here

logger = gflog.get_logger("rpcsvc")

PMAP = xdr.load("portmap")
PMAP_PORT = 111
RPCBIND_SOCKET = "/run/rpcbind.sock"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
PROTOCOLS = {"tcp": 6, "udp": 17}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}

_V2 = PMAP.programs["PMAP_PROG"].versions[2]


def _proc(name: str):
    for proc in (_V2.procs.values() if isinstance(_V2.procs, dict) else _V2.procs):
        if proc.name == name:
            return proc
    raise LookupError(f"portmap.x has no {name}")


_NULL = _proc("PMAPPROC_NULL")
_SET = _proc("PMAPPROC_SET")
_UNSET = _proc("PMAPPROC_UNSET")
_GETPORT = _proc("PMAPPROC_GETPORT")
_DUMP = _proc("PMAPPROC_DUMP")


def _clients(host: str, port: int, timeout: float):
    """Where to reach the portmapper, best first."""
    if host in LOCAL_HOSTS and port == PMAP_PORT and os.path.exists(RPCBIND_SOCKET):
        yield RpcClient(RPCBIND_SOCKET, 0, "tcp", timeout)
    yield RpcClient(host, port, "tcp", timeout)


def _call(client: RpcClient, proc, value):
    return client.call(PMAP.PMAP_PROG, 2, proc.number, proc.arg, value, proc.res)


def _mapping(prog: int, vers: int, proto: str, port: int):
    if proto not in PROTOCOLS:
        raise ValueError(f"portmap v2 knows tcp and udp, not {proto!r}")
    return PMAP.mapping(prog=prog, vers=vers, prot=PROTOCOLS[proto], port=port)


def _with_portmapper(host: str, port: int, timeout: float, work):
    """Run `work(client)` on the first portmapper that answers NULL; None if none does."""
    for client in _clients(host, port, timeout):
        try:
            _call(client, _NULL, None)
        except RpcClientError as error:
            logger.debug("portmapper via %s: %s", client.host, error)
            client.close()
            continue
        try:
            return work(client)
        finally:
            client.close()
    return None


def portmapper_answers(host: str = "127.0.0.1", port: int = PMAP_PORT,
                       timeout: float = 2.0) -> bool:
    """True if a portmapper answers a NULL call on host:port."""
    return bool(_with_portmapper(host, port, timeout, lambda client: True))


def register_programs(mappings, host: str = "127.0.0.1", port: int = PMAP_PORT,
                      timeout: float = 2.0) -> bool:
    """SET every (prog, vers, proto, port); True if a portmapper answered and took them all."""
    mappings = list(mappings)

    def work(client):
        ok = True
        for prog, vers in sorted({(m[0], m[1]) for m in mappings}):
            _call(client, _UNSET, _mapping(prog, vers, "tcp", 0))
        for prog, vers, proto, where in mappings:
            if not _call(client, _SET, _mapping(prog, vers, proto, where)):
                logger.error("portmapper refused %d v%d %s port %d", prog, vers, proto, where)
                ok = False
            else:
                logger.info("registered %d v%d %s port %d with the portmapper", prog, vers,
                            proto, where)
        return ok

    try:
        return bool(_with_portmapper(host, port, timeout, work))
    except RpcClientError as error:
        logger.error("registering with the portmapper on %s failed: %s", host, error)
        return False


def unregister_programs(mappings, host: str = "127.0.0.1", port: int = PMAP_PORT,
                        timeout: float = 2.0) -> bool:
    """UNSET every program/version of `mappings` (all transports); True if all went."""
    pairs = sorted({(m[0], m[1]) for m in mappings})

    def work(client):
        return all([_call(client, _UNSET, _mapping(prog, vers, "tcp", 0))
                    for prog, vers in pairs])

    try:
        return bool(_with_portmapper(host, port, timeout, work))
    except RpcClientError as error:
        logger.warning("unregistering from the portmapper on %s failed: %s", host, error)
        return False


def register_or_serve(pool, mappings, host: str = "127.0.0.1", port: int = PMAP_PORT,
                      timeout: float = 2.0):
    """Start-up registration with the built-in fallback: (registered, builtin or None).

    A portmapper that answers gets the SETs (its verdict is final).  When none
    answers and the port is free, a `BuiltinPortmapper` is started on `pool`
    and the mappings go into it directly; the caller stops it at shutdown.
    """
    mappings = list(mappings)
    if portmapper_answers(host, port, timeout):
        return register_programs(mappings, host, port, timeout), None
    builtin = BuiltinPortmapper(pool)
    if not builtin.start(host, port):
        logger.error("no portmapper answers on %s:%d and the port is taken", host, port)
        return False, None
    return builtin.register(mappings), builtin


def getport(prog: int, vers: int, proto: str = "tcp", host: str = "127.0.0.1",
            port: int = PMAP_PORT, timeout: float = 2.0) -> int:
    """The port a program listens on (0: not registered), by portmap v2 GETPORT."""
    with RpcClient(host, port, "tcp", timeout) as client:
        return _call(client, _GETPORT, _mapping(prog, vers, proto, 0))


def dump(host: str = "127.0.0.1", port: int = PMAP_PORT, timeout: float = 2.0) -> list:
    """[(prog, vers, proto, port)] as portmap v2 DUMP lists them."""
    with RpcClient(host, port, "tcp", timeout) as client:
        entries = _call(client, _DUMP, None) or []
    return [(n.map.prog, n.map.vers, PROTOCOL_NAMES.get(n.map.prot, str(n.map.prot)), n.map.port)
            for n in entries]


__all__ = ["register_programs", "unregister_programs", "register_or_serve",
           "portmapper_answers", "getport", "dump", "BuiltinPortmapper"]
