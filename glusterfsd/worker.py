"""One worker's life, from the fork to its exit (the master's side is glusterfsd.arbiter).

    boot      set the title, reset the master's signal handlers, ask the kernel
              to SIGTERM us if the master dies, then initialise this worker's
              own instance of the graph (storage handles, event pool, stage
              threads: all made after the fork -- libgfapi, like most
              threaded libraries, cannot be initialised before one), serving
              the sockets the master bound.  Report `ready`, or `fail` with
              the reason and exit EXIT_BOOT_ERROR so the master does not
              restart a worker that cannot start in a loop.
    serve     the event and stage threads serve; the main thread is free, so
              it beats (only while `probe()` shows the threads progressing),
              answers the master's requests, and watches for the master's death.
    leave     SIGTERM (reload, TTOU, stop) or the master gone: retire -- finish
              every call already read, then exit 0.  SIGQUIT: exit at once.
              SIGUSR2: write every thread's traceback to the log (the master
              sends it before killing a worker that stopped beating).
"""
from __future__ import annotations

import ctypes
import errno
import faulthandler
import gc
import math
import os
import select
import signal
import time

from glusterfsd import log as gflog
from glusterfsd import statedump
from glusterfsd.channel import Channel

logger = gflog.get_logger("glusterfsd")

EXIT_BOOT_ERROR = 3             # gunicorn's WORKER_BOOT_ERROR: do not restart in a loop
PR_SET_PDEATHSIG = 1
WORKER_SIGNALS = (signal.SIGTERM, signal.SIGQUIT)
IGNORED_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGTTIN,
                   signal.SIGTTOU, signal.SIGCHLD)
RETIRE_SLACK = 5                # seconds past the graceful timeout before SIGALRM ends us


def set_parent_death_signal(sig: int) -> bool:
    """prctl(PR_SET_PDEATHSIG): the kernel sends `sig` when the master dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class GraphService:
    """An NFS worker's service: its own initialised instance of the master's graph."""

    kind = "nfs"

    def __init__(self, graph):
        self.graph = graph
        self.top = graph.top

    def boot(self) -> None:
        self.graph.init()
        self.graph.activate()

    def probe(self) -> bool:
        probe = getattr(self.top, "probe", None)
        return probe() if probe is not None else True

    def retire(self, timeout: float) -> bool:
        retire = getattr(self.top, "retire", None)
        return retire(timeout) if retire is not None else True

    def stop(self) -> None:
        self.graph.fini()

    def calls(self) -> int:
        svc = getattr(self.top, "svc", None)
        return count_calls(svc.stats()["calls"]) if svc is not None else 0

    def dump(self) -> list:
        return [(f"xlator.{name}", section) for name, section in self.graph.dump().items()]


class PortmapperService:
    """The built-in portmapper (rpcbind) in a child of the master, when the host has none.

    A child of its own rather than threads in the master: the master forks
    workers again and again, and a fork while another thread holds a lock
    (the log handler's, the event pool's) leaves that lock held forever in the
    child.  The master stays single-threaded; its registrations reach this
    child over RPC like they would reach rpcbind."""

    kind = "portmapper"

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.pool = self.portmapper = None
        self._probe = None

    def boot(self) -> None:
        from event import new_pool
        from rpcsvc.pmap_server import BuiltinPortmapper
        self.pool = new_pool(64, 1)
        self.pool.dispatch()
        self.portmapper = BuiltinPortmapper(self.pool)
        if not self.portmapper.start(self.host, self.port):
            self.pool.destroy()
            raise OSError(errno.EADDRINUSE, f"port {self.port} is taken by something that "
                                            "is not a portmapper")

    def probe(self) -> bool:
        from nfs.prefork import _Probe
        if self._probe is None:
            self._probe = _Probe(self.pool, self.portmapper.svc.stage)
        return self._probe.tick()

    def retire(self, timeout: float) -> bool:
        self.portmapper.svc.stop_accepting()
        return self.portmapper.svc.drain(timeout)

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.close()
        self.portmapper.stop()
        self.pool.destroy()

    def calls(self) -> int:
        return count_calls(self.portmapper.svc.stats()["calls"])

    def dump(self) -> list:
        entries = self.portmapper.registry.entries()
        return [("portmapper", {"address": f"{self.host}:{self.port}", "entries": len(entries),
                                "rpc": self.portmapper.svc.stats()})]


class Worker:
    """The child's side of one worker; `run()` returns the exit status."""

    def __init__(self, service, channel: Channel, master_pid: int, number: int, total: int,
                 generation: int, timeout: float, graceful_timeout: float):
        self.service = service
        self.channel = channel
        self.master_pid = master_pid
        self.number, self.total, self.generation = number, total, generation
        self.timeout = timeout
        self.graceful_timeout = graceful_timeout
        self._wake_r = self._wake_w = -1
        self._fault_fd = -1

    @property
    def name(self) -> str:
        if self.service.kind == "portmapper":
            return f"portmapper (pid {os.getpid()})"
        return f"worker {self.number}/{self.total} (pid {os.getpid()}, generation {self.generation})"

    def title(self, suffix: str = "") -> str:
        if self.service.kind == "portmapper":
            return "glusterfs: portmapper" + suffix
        return f"glusterfs: {self.service.kind} worker {self.number}/{self.total}{suffix}"

    # --- boot ---------------------------------------------------------------------------
    def run(self) -> int:
        """Called in the child right after fork, with the master's signals blocked."""
        from glusterfsd.process import set_title
        self._install_signals()
        set_title(self.title())
        set_parent_death_signal(signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # the master blocked them around fork
        if os.getppid() != self.master_pid:     # died before prctl took effect
            return 0
        signal.alarm(max(1, math.ceil(self.timeout)))   # SIGALRM (default: exit) if boot hangs
        try:
            self.service.boot()
        except BaseException as err:
            signal.alarm(0)
            reason = str(err) or type(err).__name__
            if isinstance(err, (OSError, ValueError)):   # the master logs the reason
                logger.debug("%s failed to start: %s", self.name, reason)
            else:
                logger.error("%s failed to start: %s", self.name, reason, exc_info=True)
            self.channel.send("fail", reason=reason)
            return EXIT_BOOT_ERROR
        signal.alarm(0)
        freeze_boot_objects()
        logger.info("%s serving", self.name)
        self.channel.send("ready", pid=os.getpid())
        return self._serve()

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in WORKER_SIGNALS:
            signal.signal(sig, _record_only)
        for sig in IGNORED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN if sig != signal.SIGCHLD else signal.SIG_DFL)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        self._fault_fd = os.dup(gflog.fileno())     # a fd of its own: logs may be reopened
        faulthandler.register(signal.SIGUSR2, file=self._fault_fd, all_threads=True)

    # --- serve --------------------------------------------------------------------------
    def _serve(self) -> int:
        beat_every = max(0.1, min(1.0, self.timeout / 4))
        next_beat = 0.0
        stuck_since = None
        while True:
            try:
                readable, _, _ = select.select([self._wake_r, self.channel], [], [], beat_every)
            except InterruptedError:
                readable = []
            for sig in self._signals(readable):
                if sig == signal.SIGTERM:
                    return self._retire("asked by the master")
                if sig == signal.SIGQUIT:
                    logger.info("%s: SIGQUIT, exiting now", self.name)
                    return 0
            if self.channel in readable:
                messages = self.channel.receive()
                if messages is None:
                    return self._retire("the master is gone")
                for message in messages:
                    self._command(message)
            if os.getppid() != self.master_pid:
                return self._retire("the master is gone")
            now = time.monotonic()
            if now >= next_beat:
                if self.service.probe():
                    self.channel.send("beat")
                    stuck_since = None
                elif stuck_since is None:      # said once; the master decides what follows
                    stuck_since = now
                    logger.warning("%s: its event or stage threads stopped answering; no "
                                   "heartbeat until they do", self.name)
                next_beat = now + beat_every

    def _signals(self, readable) -> list[int]:
        if self._wake_r not in readable:
            return []
        try:
            return list(os.read(self._wake_r, 64))
        except BlockingIOError:
            return []

    def _command(self, message: dict) -> None:
        kind = message.get("t")
        if kind == "dump":
            sections = [("process", statedump.process_figures()), ("gc", gc_figures())]
            try:
                sections += self.service.dump()
                calls = self.service.calls()
            except Exception as err:        # a dump must never kill a worker
                sections.append(("dump-error", {"error": repr(err)}))
                calls = -1
            self.channel.send("dump", id=message.get("id"), calls=calls, sections=sections)
        elif kind == "reopen-log":
            gflog.reopen()
        elif kind == "title":
            from glusterfsd.process import set_title
            self.number = int(message.get("number", self.number))
            self.total = int(message.get("total", self.total))
            set_title(self.title())

    # --- leave --------------------------------------------------------------------------
    def _retire(self, why: str) -> int:
        from glusterfsd.process import set_title
        set_title(self.title(" (retiring)"))
        logger.info("%s retiring (%s): finishing the calls in flight", self.name, why)
        signal.alarm(math.ceil(self.graceful_timeout) + RETIRE_SLACK)
        try:
            answered = self.service.retire(self.graceful_timeout)
        except Exception:
            logger.exception("%s: retiring failed", self.name)
            answered = False
        if not answered:
            logger.warning("%s: calls still in flight after %.0f s", self.name,
                           self.graceful_timeout)
        self.service.stop()
        logger.info("%s exits", self.name)
        return 0


def freeze_boot_objects() -> None:
    """Move everything the boot made (modules, the graph, the volfile's options)
    out of the collector's reach: it lives as long as the worker.

    Why: a full collection walks every tracked object, and a worker's first
    big job (a listing makes tens of thousands of objects) triggers one that
    spent ~15 ms walking boot objects that can never be garbage.  Frozen
    objects are also never written to by the collector, so the pages the
    worker shares with the master stay shared (the prefork use gc.freeze is
    documented for).  Cycles the boot left behind are collected first."""
    gc.collect()
    gc.freeze()


def gc_figures() -> dict:
    """The collector's side of a statedump: frozen objects and collections per generation."""
    figures = {"frozen_objects": gc.get_freeze_count()}
    for generation, stats in enumerate(gc.get_stats()):
        figures[f"gen{generation}"] = {"collections": stats["collections"],
                                       "collected": stats["collected"]}
    return figures


def count_calls(tree) -> int:
    """Sum of RpcService.stats()["calls"] ({program: {version: {procedure: count}}})."""
    if isinstance(tree, dict):
        return sum(count_calls(value) for value in tree.values())
    return tree if isinstance(tree, int) else 0


def _record_only(signum, frame) -> None:
    """The wakeup fd carries the signal number; the main loop acts on it."""
