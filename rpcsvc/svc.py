"""The RPC service: programs, the call path from header to reply, drain and stats.

One call travels like this (DESIGN.md "The way one request travels"):

  event thread   record -> parse the call header (wire) -> credentials (auth)
                 -> program / version / procedure -> minimum flavour and
                 privileged-port checks -> duplicate request cache -> stage
  stage thread   peer check -> decode the arguments -> actor -> encode the
                 result -> DRC keeps it -> transport writes it

Every refusal before the stage is answered from the event thread: those
replies are a few fixed words and cost less than a hand-off.  The order of
the checks follows gnfs's `rpcsvc_handle_rpc_call` (auth, then program, then
port, then DRC), with one deliberate difference: PROG_MISMATCH carries the
real lowest and highest version served (gnfs sends 0/0).
"""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter

from glusterfsd import log as gflog
from glusterfsd.after_reply import pending_here as _pending_here, run as _run_deferred
from rpcsvc import auth, wire, xdr
from rpcsvc.drc import DROP, HIT, DuplicateRequestCache
from rpcsvc.program import Program, Reply, Request, RpcAuthError, RpcError
from rpcsvc.stage import StagePool, Ticker
from rpcsvc.listener import TcpListener
from rpcsvc.transport import TcpConnection, UdpEndpoint

logger = gflog.get_logger("rpcsvc")

parse_call_fields = wire.parse_call_fields
credentials = auth.credentials
_unpack_call_fixed = wire.CALL_FIXED.unpack_from     # xid type rpcvers prog vers proc cflavor clen
_unpack_two = wire.AUTH_HEAD.unpack_from             # an opaque_auth's flavor and length
_CALL_SIZE = wire.CALL_FIXED.size
_MIN_CALL = _CALL_SIZE + 8
_EMPTY_VERIFIER = (wire.AUTH_NONE, 0)
_CALL, _RPC_VERSION, _MAX_AUTH_BYTES = wire.CALL, wire.RPC_VERSION, wire.MAX_AUTH_BYTES
_AUTH_SYS = wire.AUTH_SYS
_sys_cache_get = auth.sys_cache_get
_success_header = wire.SUCCESS_HEADER.pack
_SUCCESS_TAIL = wire.SUCCESS_TAIL
_AUTH_NONE = wire.AUTH_NONE
_PRIVILEGED_PORT_LIMIT = auth.PRIVILEGED_PORT_LIMIT

DEFAULT_MAX_RECORD = (1 << 20) + 64 * 1024   # 1 MiB write size plus header room
DEFAULT_OUTSTANDING_LIMIT = 16               # gnfs rpc.outstanding-rpc-limit for NFS
DEFAULT_DRC_SIZE = 0x20000                   # gnfs nfs.drc-size
DEFAULT_IDLE_TIMEOUT = 360.0                 # seconds, as knfsd closes idle TCP connections
DEFAULT_MAX_CONNECTIONS = 1024               # TCP connections per service (per worker)
MAX_SWEEP_INTERVAL = 30.0                    # an idle connection lives < timeout + this
ACL_PROGRAM = 100227                         # probed by clients; its absence is not news

_DECODE_ERRORS = (xdr.XdrError, ValueError, IndexError, OverflowError)


class RpcService:
    """Serves `Program`s over TCP and UDP on an event pool (see the module doc).

    What one peer may pin is bounded (rpcsvc.transport's module doc):
    `reply_backlog` queued reply bytes per connection before it stops being
    read (default 2 x max_record; 0 = no bound), `idle_timeout` seconds
    without traffic before a connection is closed (0 = never),
    `max_connections` TCP connections (0 = no cap; above it a connection is
    accepted and closed at once, counted as `connections_refused`).
    """

    def __init__(self, pool, stage_threads: int = 4, max_record: int = DEFAULT_MAX_RECORD,
                 outstanding_limit: int = DEFAULT_OUTSTANDING_LIMIT, drc: bool = True,
                 drc_size: int = DEFAULT_DRC_SIZE, allow_insecure: bool = True,
                 name: str = "rpcsvc", peer_check=None, peer_refusal: int = wire.AUTH_TOOWEAK,
                 stage_queue: int = 4096, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 reply_backlog: int | None = None):
        if outstanding_limit < 0:
            raise ValueError("outstanding_limit must be >= 0 (0 = no limit)")
        if idle_timeout < 0 or max_connections < 0 or (reply_backlog or 0) < 0:
            raise ValueError("idle_timeout, max_connections and reply_backlog must be >= 0")
        self.pool = pool
        self.name = name
        self.max_record = max_record
        self.outstanding_limit = outstanding_limit
        self.reply_backlog = 2 * max_record if reply_backlog is None else reply_backlog
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._ticker = Ticker(name)
        self._sweeping = False
        self._tcp_connections = 0
        self.allow_insecure = allow_insecure
        self.peer_check = peer_check
        self.peer_refusal = peer_refusal
        self.drc = DuplicateRequestCache(drc_size) if drc else None
        self.stage = StagePool(stage_threads, stage_queue, name)
        self._programs: dict[int, dict[int, Program]] = {}
        self._listeners: list[TcpListener] = []
        self._transports: set = set()
        self._lock = threading.Lock()
        self._inflight = 0
        self._idle = threading.Condition(self._lock)
        self._draining = 0                # threads waiting in drain()
        self._accepting = True
        self._closed = False
        self._counts: Counter = Counter()
        self._calls: dict = {}        # ProcEntry -> calls; a plain dict: a Counter's += costs 10x

    # ---- programs ---------------------------------------------------------------------

    def add_program(self, prog: Program) -> None:
        with self._lock:
            versions = self._programs.setdefault(prog.number, {})
            if prog.version in versions:
                raise ValueError(f"{prog.name} v{prog.version} is already served")
            versions[prog.version] = prog
        logger.info("%s: serving %s (%d) version %d", self.name, prog.name, prog.number,
                    prog.version)

    def remove_program(self, prog) -> None:
        """Stop serving a Program (or a (number, version) pair)."""
        number, version = (prog.number, prog.version) if isinstance(prog, Program) else prog
        with self._lock:
            versions = self._programs.get(number, {})
            versions.pop(version, None)
            if not versions:
                self._programs.pop(number, None)

    def programs(self) -> list[Program]:
        with self._lock:
            return [p for versions in self._programs.values() for p in versions.values()]

    def mappings(self) -> list[tuple[int, int, str, int]]:
        """(prog, vers, proto, port) for every program on every socket: what the portmapper needs."""
        ports = []
        with self._lock:
            for listener in self._listeners:
                ports.append(("tcp", listener.local[1]))
            for transport in self._transports:
                if isinstance(transport, UdpEndpoint):
                    ports.append(("udp", transport.local[1]))
        return [(p.number, p.version, proto, port) for p in self.programs()
                for proto, port in sorted(set(ports))]

    # ---- sockets ----------------------------------------------------------------------

    def listen(self, host: str, port: int, proto: str = "tcp", backlog: int = 1024) -> socket.socket:
        """Bind host:port (0 = ephemeral) and serve it; returns the socket."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        if proto not in ("tcp", "udp"):
            raise ValueError(f"unknown protocol {proto!r}")
        sock = socket.socket(family, kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            if proto == "tcp":
                sock.listen(backlog)
            self.serve(sock, proto)
        except BaseException:
            sock.close()
            raise
        return sock

    def serve(self, sock: socket.socket, proto: str) -> None:
        """Serve an already bound socket (the prefork master binds, workers serve)."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        if proto == "tcp":
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            except OSError:
                listening = 0
            if not listening:
                sock.listen(1024)
            listener = TcpListener(self, sock)
            listener.start()
            with self._lock:
                self._listeners.append(listener)
                sweep, self._sweeping = self.idle_timeout and not self._sweeping, True
            if sweep:
                self._ticker.call_every(min(max(self.idle_timeout / 4, 0.05),
                                            MAX_SWEEP_INTERVAL), self._sweep_idle)
        elif proto == "udp":
            endpoint = UdpEndpoint(self, sock)
            with self._lock:
                self._transports.add(endpoint)
            endpoint.start()
        else:
            raise ValueError(f"unknown protocol {proto!r}")
        logger.info("%s: listening on %s %s:%d", self.name, proto, *sock.getsockname()[:2])

    def _accepted(self, sock: socket.socket, peer) -> None:
        """A TCP connection arrived (listener's event thread)."""
        if not self._accepting:
            sock.close()
            return
        try:
            conn = TcpConnection(self, sock, peer)
        except OSError as error:            # reset before we looked at it
            logger.debug("%s: connection from %s lost at once: %s", self.name, peer, error)
            sock.close()
            return
        with self._lock:        # one section: event threads accepting at once cannot overshoot
            full = self.max_connections and self._tcp_connections >= self.max_connections
            if full:
                self._counts["connections_refused"] += 1
            else:
                self._transports.add(conn)
                self._tcp_connections += 1
        if full:
            logger.debug("%s: %d connections already; closing the one from %s:%d", self.name,
                         self.max_connections, *conn.peer)
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn.start()
        except Exception as error:      # out of event slots, pool destroyed
            logger.error("%s: cannot watch connection from %s: %s", self.name, peer, error)
            conn.close()
            return
        self.count("connections_accepted")
        logger.debug("%s: connection from %s:%d", self.name, *conn.peer)

    def _forget_transport(self, transport) -> None:
        with self._lock:
            if transport in self._transports:
                self._transports.discard(transport)
                if isinstance(transport, TcpConnection):
                    self._tcp_connections -= 1

    # ---- housekeeping (ticker thread) ---------------------------------------------------

    def _call_later(self, delay: float, fn) -> bool:
        """Run `fn` on the housekeeping thread after `delay` seconds; False once closed."""
        return self._ticker.call_later(delay, fn)

    def _sweep_idle(self) -> None:
        """Shut down TCP connections silent for `idle_timeout` (their handlers close them)."""
        now = time.monotonic()
        with self._lock:
            conns = [t for t in self._transports if isinstance(t, TcpConnection)]
        for conn in conns:
            if not conn.reaped and conn.idle_for(now) >= self.idle_timeout:
                conn.reaped = True
                self.count("idle_closed")
                logger.debug("%s: closing idle connection from %s:%d", self.name, *conn.peer)
                conn.shutdown()

    # ---- the call path (event thread) -------------------------------------------------

    def count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _refuse(self, transport, peer, reply: bytes, what: str) -> None:
        self.count(what)
        transport.send_reply([reply], peer)

    def _on_record(self, transport, record, peer) -> None:
        """One call, from its header to its reply or its hand-off to the stage.

        This and `_run` are the whole per-call path of the service, written
        flat on purpose: every call pays for each Python call made here.  The
        header comes as a tuple (no CallHeader), and the procedure's
        `ProcEntry` answers every question about it in one lookup."""
        client = peer[0]
        creds = None
        # The call nearly every client makes: AUTH_SYS with the body of its last call
        # and an empty AUTH_NONE verifier.  Its header and credentials are taken here
        # with two unpacks and one cache lookup, no helper call; exactly what
        # parse_call_fields and credentials answer for it (tests/rpcsvc/test_svc_fast_call).
        # Anything else, or a body not in the cache, goes through them.
        size = len(record)
        if size >= _MIN_CALL:
            xid, mtype, rpcvers, prog_number, vers, proc, cflavor, clen = \
                _unpack_call_fixed(record, 0)
            verf_at = _CALL_SIZE + ((clen + 3) & ~3)
            if cflavor == _AUTH_SYS and mtype == _CALL and rpcvers == _RPC_VERSION and \
                    clen <= _MAX_AUTH_BYTES and verf_at + 8 <= size and \
                    _unpack_two(record, verf_at) == _EMPTY_VERIFIER:
                args_offset = verf_at + 8
                creds = _sys_cache_get((bytes(record[_CALL_SIZE:_CALL_SIZE + clen]), client))
        if creds is None:
            try:
                xid, prog_number, vers, proc, cflavor, cbody, vflavor, vbody, args_offset = \
                    parse_call_fields(record)
            except wire.Unanswerable as why:
                self.count("dropped_messages")
                logger.debug("%s: dropped a message from %s: %s", self.name, client, why)
                return
            except wire.BadHeader as bad:
                logger.debug("%s: call %#x from %s: %s", self.name, bad.xid, client, bad)
                self._refuse(transport, peer, bad.reply, bad.kind)
                return
            try:
                creds = credentials(cflavor, cbody, vflavor, vbody, client)
            except auth.AuthFailure as failure:
                logger.debug("%s: call %#x from %s refused: %s", self.name, xid, client, failure)
                self._refuse(transport, peer, wire.denied_auth(xid, failure.auth_stat),
                             "AUTH_ERROR")
                return
        versions = self._programs.get(prog_number)
        if not versions:
            log = logger.debug if prog_number == ACL_PROGRAM else logger.info
            log("%s: program %d not available (from %s)", self.name, prog_number, client)
            self._refuse(transport, peer, wire.accepted_header(xid, wire.PROG_UNAVAIL),
                         "PROG_UNAVAIL")
            return
        prog = versions.get(vers)
        if prog is None:
            known = list(versions)
            self._refuse(transport, peer, wire.accepted_header(
                xid, wire.PROG_MISMATCH, min(known), max(known)), "PROG_MISMATCH")
            return
        entry = prog.entries.get(proc)
        if entry is None:
            self._refuse(transport, peer, wire.accepted_header(xid, wire.PROC_UNAVAIL),
                         "PROC_UNAVAIL")
            return
        # `credentials` only lets AUTH_NONE and AUTH_SYS through, and both meet
        # a minimum of AUTH_NONE: the check is only needed above it.
        if prog.min_auth != _AUTH_NONE:
            try:
                auth.check_min_flavor(creds.flavor, prog.min_auth)
            except auth.AuthFailure as failure:
                self._refuse(transport, peer, wire.denied_auth(xid, failure.auth_stat),
                             "AUTH_ERROR")
                return
        privileged = 0 < peer[1] < _PRIVILEGED_PORT_LIMIT    # auth.is_privileged
        if not privileged and not self.allow_insecure and not prog.unprivileged:
            logger.info("%s: call from unprivileged port %s:%d refused", self.name, *peer)
            self._refuse(transport, peer, wire.denied_auth(xid, wire.AUTH_TOOWEAK), "AUTH_ERROR")
            return
        req = Request(xid, entry, creds, peer, transport.local, transport.kind, privileged,
                      transport, record, args_offset)
        if entry.non_idempotent and self.drc is not None:
            key = self.drc.make_key(client, xid, prog_number, vers, proc, req.raw_args)
            state, found = self.drc.lookup(key)
            if state == HIT:
                transport.send_reply([found], peer)
                return
            if state == DROP:
                return
            req._drc_entry = found
        calls = self._calls
        with self._lock:
            self._inflight += 1
            calls[entry] = calls.get(entry, 0) + 1
        quick = entry.inline_if
        if entry.inline or (quick is not None and quick(record, args_offset)):
            # No call_started/call_done: the transport's outstanding count throttles
            # reading while calls wait in the stage, and this one is done before the
            # event thread reads again.
            try:
                reply = self._run(req)
                if req._drc_entry is not None:
                    reply = self._keep_reply(req, reply)
                transport.defer_reply(reply, peer)
            finally:
                self._finished(req, inline=True)
            return
        transport.call_started()
        try:
            self.stage.submit(self._execute, req)
        except RuntimeError:        # stage stopped under us: the service is closing
            self._finished(req)

    # ---- the call path (stage thread) -------------------------------------------------

    def _execute(self, req: Request) -> None:
        pending = _pending_here()
        try:
            reply = self._run(req)
            if req._drc_entry is not None:
                reply = self._keep_reply(req, reply)
            req._conn.send_reply(reply, req.peer)
        finally:
            self._finished(req)
        if pending:
            _run_deferred(pending)

    def _keep_reply(self, req: Request, reply: list) -> list:
        """The duplicate request cache keeps the reply of a non-idempotent call."""
        joined = b"".join(reply)
        self.drc.finish(req._drc_entry, joined)
        return [joined]

    def _finished(self, req: Request, inline: bool = False) -> None:
        if req._drc_entry is not None and req._drc_entry.reply is None:
            self.drc.abandon(req._drc_entry)
        if not inline:
            req._conn.call_done()
        with self._lock:
            self._inflight -= 1
            if self._inflight == 0 and self._draining:
                self._idle.notify_all()   # only `drain` waits: no wake-up per call otherwise

    def _run(self, req: Request) -> list:
        """The reply message (as buffers) for an accepted call."""
        prog, entry, xid = req.program, req._entry, req.xid
        try:
            if self.peer_check is not None or prog.peer_check is not None:
                refused = self._peer_refused(req)
                if refused is not None:
                    return [refused]
            record = req._record
            try:
                if entry.void_args:     # what decoding void gives, without the codec
                    args, end = None, req._args_offset
                else:
                    args, end = entry.spec.arg.decode(record, req._args_offset)
                if end != len(record):
                    raise xdr.XdrError(f"{len(record) - end} bytes after the arguments")
            except _DECODE_ERRORS as error:
                self.count("GARBAGE_ARGS")
                logger.debug("%s: %s from %s: garbage arguments: %s", self.name,
                             entry.spec.name, req.peer[0], error)
                return [wire.accepted_header(xid, wire.GARBAGE_ARGS)]
            req.args = args
            result = entry.actor(req)
            if result.__class__ is Reply:
                return [_success_header(xid, _SUCCESS_TAIL), *result.buffers]
            if result is None and entry.void_results:
                return [_success_header(xid, _SUCCESS_TAIL)]
            return [_success_header(xid, _SUCCESS_TAIL), entry.spec.res.encode(result)]
        except RpcError as error:
            self.count(wire.ACCEPT_STAT_NAMES.get(error.accept_stat, "accept_errors"))
            return [wire.accepted_header(xid, error.accept_stat)]
        except RpcAuthError as error:
            self.count("AUTH_ERROR")
            return [wire.denied_auth(xid, error.auth_stat)]
        except Exception:
            self.count("SYSTEM_ERR")
            logger.error("%s: %s v%d %s (xid %#x) from %s raised", self.name, prog.name,
                         prog.version, entry.spec.name, xid, req.peer[0], exc_info=True)
            return [wire.accepted_header(xid, wire.SYSTEM_ERR)]

    def _peer_refused(self, req: Request) -> bytes | None:
        """The denial for a peer the service's or the program's check refuses."""
        prog = req.program
        for check in (self.peer_check, prog.peer_check):
            if check is not None and not check(req.peer[0]):
                refusal = self.peer_refusal if check is self.peer_check else prog.peer_refusal
                self.count("AUTH_ERROR")
                logger.info("%s: %s refused for %s v%d", self.name, req.peer[0], prog.name,
                            prog.version)
                return wire.denied_auth(req.xid, refusal)
        return None

    # ---- lifecycle --------------------------------------------------------------------

    def stop_accepting(self) -> None:
        """No new connections and no new calls; calls in flight still get their replies."""
        with self._lock:
            self._accepting = False
            listeners = list(self._listeners)
            transports = list(self._transports)
        for listener in listeners:
            listener.stop()
        for transport in transports:
            transport.pause()

    def drain(self, timeout: float) -> bool:
        """Wait until no call is in flight; True if that happened within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._idle:
            self._draining += 1
            try:
                while self._inflight:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._idle.wait(left)
                return True
            finally:
                self._draining -= 1

    def finish_connections(self, deadline: float, linger: float, poll: float = 0.01) -> None:
        """After `drain`: let queued replies leave, then half-close (FIN) every TCP
        connection so its client reconnects (to another worker) instead of losing a
        call, and wait up to `linger` seconds for the clients to close their side."""
        from rpcsvc.transport import TcpConnection
        with self._lock:
            connections = [t for t in self._transports if isinstance(t, TcpConnection)]
        _wait_until(lambda: not any(c.has_queued_replies for c in connections), deadline, poll)
        for conn in connections:
            conn.half_close()
        _wait_until(lambda: all(c.closed for c in connections),
                    min(deadline, time.monotonic() + linger), poll)

    @property
    def inflight(self) -> int:
        return self._inflight

    def close(self, timeout: float = 5.0) -> None:
        """Stop everything: listeners, connections, stage threads.  Idempotent."""
        if self._closed:
            return
        self.stop_accepting()
        self._closed = True
        self._ticker.stop(timeout)
        self.stage.stop(timeout)
        with self._lock:
            listeners, self._listeners = self._listeners, []
            transports = list(self._transports)
        for listener in listeners:
            listener.close()
        for transport in transports:
            transport.close()

    def stats(self) -> dict:
        """Counters for the statedump: calls per procedure, refusals, DRC, connections."""
        with self._lock:
            calls: dict = {}
            for entry, count in self._calls.items():
                prog = entry.program
                calls.setdefault(prog.name, {}).setdefault(prog.version, {})[
                    prog.proc_name(entry.number)] = count
            tcp = self._tcp_connections
            backlog = sum(t._queued_bytes for t in self._transports
                          if isinstance(t, TcpConnection))
            out = {
                "name": self.name,
                "calls": calls,
                "errors": dict(self._counts),
                "connections": tcp,
                "max_connections": self.max_connections,
                "idle_timeout": self.idle_timeout,
                "queued_reply_bytes": backlog,
                "inflight": self._inflight,
                "outstanding_limit": self.outstanding_limit,
                "stage_queue": self.stage.pending,
            }
        out["drc"] = self.drc.stats() if self.drc is not None else {"type": "none"}
        return out


def _wait_until(predicate, deadline: float, poll: float) -> bool:
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True
