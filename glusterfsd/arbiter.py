"""The prefork master (gunicorn's arbiter is the model): bind once, fork workers, supervise.

The master validates the graph but never initialises it: it binds the NFS and
MOUNT sockets (`top.prefork_bind`), makes what workers must share (write
verifier, DRC: `nfs.prefork.PreforkShared`), registers with the portmapper,
then forks `nfs.workers` workers (`glusterfsd.worker`) that each initialise
their own copy of the graph and serve the inherited sockets.  It stays
single-threaded, so every fork happens from a thread-safe point.

Supervision, one loop: signals arrive through a wakeup fd (handlers do no
work), worker messages through one channel each (glusterfsd.channel).
    SIGCHLD      reap; a worker that died is replaced (with backoff after failures)
    boot errors  at start: exit 1 at once with the reason; later, BOOT_ATTEMPTS
                 failures in a row stop the master (exit 1) instead of looping
    heartbeat    a worker silent for nfs.worker-timeout s gets SIGUSR2 (its
                 threads' tracebacks go to the log), then SIGKILL, and is replaced
    SIGTERM/INT  graceful stop: workers finish the calls they read, within
                 --graceful-timeout, then are killed; unregister; pidfile removed
    SIGQUIT      fast stop
    SIGHUP       reopen the log; a changed volfile starts a new generation of
                 workers on the same sockets and retires the old one only once
                 the new one is all up; a bad volfile is refused (logged) and the
                 running workers keep serving; new workers that cannot start
                 BOOT_ATTEMPTS times abandon the reload the same way
    SIGTTIN/TTOU one worker more / less (never below one)
    SIGUSR1      statedump: the master's section and one per worker
"""
from __future__ import annotations

import os
import select
import signal
import threading
import time

from glusterfsd import log as gflog
from glusterfsd import statedump
from glusterfsd.channel import Channel
from glusterfsd.children import BACKOFF_FIRST, STABLE_UPTIME, Child, Generation, describe_exit, \
    figures_of
from glusterfsd.graph import Graph
from glusterfsd.pidfile import Pidfile, PidfileError
from glusterfsd.registrar import Registrar
from glusterfsd.volfile import VolfileError
from glusterfsd.worker import GraphService, PortmapperService, Worker

logger = gflog.get_logger("glusterfsd")

MASTER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1,
                  signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD)
SIGNAL_NAMES = {int(sig): sig.name.lower() for sig in MASTER_SIGNALS}
BOOT_ATTEMPTS = 3             # failures in a row before giving up (no restart loop)
QUICK_TIMEOUT = 2.0           # SIGQUIT: how long workers get before SIGKILL
DUMP_TIMEOUT = 5.0
MAX_WORKERS = 64
TICK = 0.5


class HaltServer(Exception):
    def __init__(self, reason: str, status: int = 1):
        super().__init__(reason)
        self.reason, self.status = reason, status


class Arbiter:
    def __init__(self, config, graph: Graph, status):
        self.config = config
        self.status = status
        self.pidfile = Pidfile(config.pidfile) if config.pidfile else None
        configured = self._configured(graph)
        self.target = Generation(1, graph, configured, configured)
        self.serving: Generation | None = None
        self.generations = [self.target]     # those whose sockets the master still holds
        self.children: dict[int, Child] = {}
        self.shared = None
        self.registrar = Registrar()
        self.pmap_spawn_after = 0.0
        self.pending: list[int] = []
        self.stopping = False
        self._wake_r = self._wake_w = -1
        self._dump_id = 0

    def _configured(self, graph: Graph) -> int:
        wanted = self.config.workers if self.config.workers is not None \
            else graph.top.prefork_workers()
        return min(max(1, wanted), MAX_WORKERS)

    # --- start ------------------------------------------------------------------------
    def run(self) -> int:
        from glusterfsd.process import set_title
        from nfs.prefork import PreforkShared
        set_title(f"glusterfs: master -f {self.config.volfile_arg or self.config.volfile}")
        try:
            if self.pidfile:
                self.pidfile.acquire()
            self.shared = PreforkShared.create(self.target.top)
            self.target.top.prefork_shared = self.shared
            self.target.top.prefork_bind()
        except (PidfileError, OSError) as err:
            logger.error("%s", err)
            self._cleanup()
            self.status.fail(str(err))
            return 1
        self._install_signals()
        logger.info("master started (pid %d, volfile %s): starting %d workers", os.getpid(),
                    self.config.volfile, self.target.wanted)
        self.registrar.start(self.target.top)
        try:
            self._manage()
            while True:
                self._once()
        except HaltServer as halt:
            return self._halt(halt)
        except StopIteration:
            return 0
        except Exception as err:            # a bug in the master: stop everything cleanly
            logger.critical("the master failed: %s", err, exc_info=True)
            return self._halt(HaltServer(f"the master failed: {err}"))

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in MASTER_SIGNALS:
            signal.signal(sig, _record_only)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER_SIGNALS)

    # --- the loop ---------------------------------------------------------------------
    def _once(self) -> None:
        self.pending += self._wait(TICK)
        self._reap()
        while self.pending:
            name = SIGNAL_NAMES.get(self.pending.pop(0))
            if name:
                getattr(self, "handle_" + name)()
        self._murder()
        self._manage()

    def _wait(self, timeout: float) -> list[int]:
        """Sleep until a signal, a message or `timeout`; handles messages, returns signals."""
        channels = [c.channel for c in self.children.values() if not c.channel.closed]
        try:
            readable, _, _ = select.select([self._wake_r, *channels], [], [], timeout)
        except InterruptedError:
            readable = []
        signals: list[int] = []
        if self._wake_r in readable:
            try:
                signals = list(os.read(self._wake_r, 256))
            except BlockingIOError:
                pass
        for child in list(self.children.values()):
            if child.channel in readable:
                messages = child.channel.receive()
                for message in messages or ():
                    self._on_message(child, message)
        return signals

    def _on_message(self, child: Child, message: dict) -> None:
        child.last_heard = time.monotonic()
        kind = message.get("t")
        if kind == "ready":
            child.booted_at = time.monotonic()
            logger.info("%s is up", child.label)
            if child.kind == "portmapper":
                self.registrar.builtin_up((self.serving or self.target).top)
            else:
                child.generation.failures.pop(child.number, None)
                child.generation.booted_once = True
        elif kind == "fail":
            child.reason = str(message.get("reason", ""))
        elif kind == "dump":
            child.dumps[message.get("id")] = message

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:
                self._exited(child, os.waitstatus_to_exitcode(status))

    def _exited(self, child: Child, code: int) -> None:
        for message in child.channel.receive() or ():   # its last words (a `fail` reason)
            self._on_message(child, message)
        child.channel.close()
        if self.shared is not None and self.shared.drc is not None:
            freed = self.shared.drc.forget_owner(child.pid)
            if freed:
                logger.info("%s: %d calls it was running are free to run again", child.label,
                            freed)
        how = describe_exit(code, child.killed)
        if child.kind == "portmapper":
            self._portmapper_exited(child, how)
            return
        generation = child.generation
        if child.retire_by is not None or self.stopping:
            logger.info("%s %s", child.label, "retired" if code == 0 else how)
        elif child.booted_at is None:
            count = generation.failures.get(child.number, 0) + 1
            generation.failures[child.number] = count
            generation.last_failure = child.reason or how
            tries = "" if self.serving is None else f" ({count} of {BOOT_ATTEMPTS} tries)"
            logger.error("%s failed to start%s: %s", child.label, tries, generation.last_failure)
            generation.backoff()
        else:
            logger.warning("%s %s; starting another", child.label, how)
            if time.monotonic() - child.booted_at < STABLE_UPTIME:
                generation.early_deaths += 1
                generation.backoff()

    def _murder(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.killed:
                continue
            timeout = child.generation.top.prefork_timeout() if child.generation else 30.0
            if child.retire_by is not None:
                if now > child.retire_by:
                    logger.warning("%s did not finish its calls within %.0f s: killing it",
                                   child.label, self.config.graceful_timeout)
                    self._kill(child, signal.SIGKILL)
            elif child.booted_at is None:
                if now - child.started > timeout:
                    child.reason = f"did not start within {timeout:.0f} s"
                    logger.error("%s %s: killing it", child.label, child.reason)
                    self._kill(child, signal.SIGKILL)
            elif now - child.last_heard > timeout:
                logger.error("%s sent no heartbeat for %.0f s: killing it (tracebacks of its "
                             "threads follow)", child.label, now - child.last_heard)
                self._kill(child, signal.SIGUSR2)
                time.sleep(0.2)
                self._kill(child, signal.SIGKILL)

    def _kill(self, child: Child, sig: int) -> None:
        if sig == signal.SIGKILL:
            child.killed = True
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            pass

    def _manage(self) -> None:
        if self.stopping:
            return
        target, now = self.target, time.monotonic()
        if target.worst >= self._boot_attempts():
            if self.serving is None:
                raise HaltServer(target.last_failure)
            if self.serving is target:
                raise HaltServer(f"a worker failed to start {target.worst} times in a row "
                                 f"(last: {target.last_failure}); stopping")
            self._abandon(target)
            target = self.target
        mine = [c for c in self.children.values() if c.generation is target
                and c.retire_by is None]
        if now >= target.spawn_after:
            taken = {c.number for c in mine}
            # The first worker of a generation boots alone: first-time set-up of the storage
            # (posix writes the volume id, creates its index) must not race with itself.
            alone = not target.booted_once
            for number in range(1, target.wanted + 1):
                if number not in taken and not (alone and taken):
                    self._spawn_worker(target, number)
                    taken.add(number)
        for child in mine:
            if child.number > target.wanted:
                self._retire(child, "fewer workers wanted")
            elif child.booted_at is not None and now - child.booted_at > STABLE_UPTIME:
                target.early_deaths = 0
        if target is not self.serving:
            up = {c.number for c in mine if c.booted_at is not None}
            if up >= set(range(1, target.wanted + 1)):
                self._promote(target)
        if self.registrar.builtin_wanted and now >= self.pmap_spawn_after and \
                not any(c.kind == "portmapper" for c in self.children.values()):
            self._spawn_portmapper()

    def _boot_attempts(self) -> int:
        """At start, the first failure ends it (an init script wants the reason now); once
        serving, a worker slot gets BOOT_ATTEMPTS tries before the master gives up."""
        return 1 if self.serving is None else BOOT_ATTEMPTS

    def _promote(self, generation: Generation) -> None:
        previous, self.serving = self.serving, generation
        pids = sorted(c.pid for c in self.children.values() if c.generation is generation)
        if previous is None:
            logger.info("serving with %d workers (pids %s)", generation.wanted,
                        ", ".join(map(str, pids)))
            self.status.ok()
        else:
            logger.info("reload done: generation %d serves (pids %s); retiring the older workers",
                        generation.number, ", ".join(map(str, pids)))
            self.registrar.update(generation.top)
        for child in list(self.children.values()):
            if child.kind == "nfs" and child.generation is not generation:
                self._retire(child, "replaced by a reload")
        self._release_sockets()

    def _abandon(self, generation: Generation) -> None:
        logger.error("reload abandoned: a new worker failed to start %d times in a row "
                     "(last: %s); generation %d keeps serving", generation.worst,
                     generation.last_failure, self.serving.number)
        self.target = self.serving
        for child in list(self.children.values()):
            if child.generation is generation:
                self._retire(child, "reload abandoned")
        self._release_sockets()

    def _retire(self, child: Child, why: str) -> None:
        if child.retire_by is not None:
            return
        logger.info("retiring %s: %s", child.label, why)
        child.retire_by = time.monotonic() + self.config.graceful_timeout
        self._kill(child, signal.SIGTERM)

    def _release_sockets(self) -> None:
        """Close the master's copies of sockets that neither the target nor the serving
        generation (the only ones it may fork again) uses."""
        live = [g for g in self.generations if g is self.target or g is self.serving]
        keep = {id(s) for g in live for s in g.top.prefork_sockets()}
        for generation in self.generations:
            if generation not in live:
                for sock in generation.top.prefork_sockets():
                    if id(sock) not in keep:
                        sock.close()
        self.generations = live

    # --- forking ----------------------------------------------------------------------
    def _spawn_worker(self, generation: Generation, number: int) -> None:
        keep = {id(s) for s in generation.top.prefork_sockets()}
        self._fork(GraphService(generation.graph), "nfs", number, generation, keep)

    def _spawn_portmapper(self) -> None:
        service = PortmapperService(self.target.top.bind_address, self.registrar.port)
        self._fork(service, "portmapper", 0, None, set())

    def _fork(self, service, kind: str, number: int, generation, keep: set) -> Child | None:
        if threading.active_count() > 1:    # never expected: see the module doc
            logger.warning("forking with %d threads in the master: locks they hold would "
                           "stay held in the child", threading.active_count())
        master_end, worker_end = Channel.pair()
        signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        try:
            pid = os.fork()
        except OSError as err:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER_SIGNALS)
            logger.error("cannot fork a worker: %s", err)
            master_end.close()
            worker_end.close()
            return None
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                master_end.close()
                self._close_inherited(keep)
                timeout = generation.top.prefork_timeout() if generation else 30.0
                total = generation.wanted if generation else 1
                code = Worker(service, worker_end, os.getppid(), number, total,
                              generation.number if generation else 0, timeout,
                              self.config.graceful_timeout).run()
            except BaseException:
                logger.exception("worker %d crashed", number)
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER_SIGNALS)
        worker_end.close()
        child = Child(pid, master_end, kind, number, generation)
        self.children[pid] = child
        logger.info("started %s", child.label)
        return child

    def _close_inherited(self, keep: set) -> None:
        """In a new child: close what belongs to the master or to other children."""
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        for child in self.children.values():
            child.channel.close()
        if self.status.fd is not None:      # the daemonize pipe: only the master reports
            os.close(self.status.fd)
            self.status.fd = None
        if self.pidfile is not None and self.pidfile.fd is not None:
            os.close(self.pidfile.fd)
            self.pidfile.fd = None
        for generation in self.generations:
            for sock in generation.top.prefork_sockets():
                if id(sock) not in keep:
                    sock.close()

    # --- signals (found by name, as gunicorn's arbiter does) --------------------------
    def handle_sigchld(self) -> None:
        self._reap()

    def handle_sigterm(self, name: str = "SIGTERM") -> None:
        logger.info("received %s, shutting down gracefully", name)
        self._stop(graceful=True)

    def handle_sigint(self) -> None:
        self.handle_sigterm("SIGINT")

    def handle_sigquit(self) -> None:
        logger.info("received SIGQUIT, shutting down now")
        self._stop(graceful=False)

    def handle_sighup(self) -> None:
        gflog.reopen()
        logger.info("received SIGHUP: log reopened, reloading %s", self.config.volfile)
        self._reload()

    def handle_sigttin(self) -> None:
        self._resize(+1)

    def handle_sigttou(self) -> None:
        self._resize(-1)

    def handle_sigusr1(self) -> None:
        try:
            path = statedump.write(self.config.statedump_dir, self._dump_sections())
            logger.info("statedump written to %s", path)
        except OSError as err:
            logger.error("statedump to %s failed: %s (set --statedump-dir to a writable "
                         "directory)", self.config.statedump_dir, err)

    # --- actions ----------------------------------------------------------------------
    def _resize(self, change: int) -> None:
        target = self.target
        wanted = min(max(1, target.wanted + change), MAX_WORKERS)
        if wanted == target.wanted:
            logger.info("workers stay at %d (the range is 1 to %d)", wanted, MAX_WORKERS)
            return
        logger.info("workers: %d -> %d", target.wanted, wanted)
        target.wanted = wanted
        for child in self.children.values():
            if child.generation is target and child.retire_by is None:
                child.channel.send("title", number=child.number, total=wanted)

    def _reload(self) -> None:
        try:
            graph = Graph.from_file(self.config.volfile, self.config.overrides)
        except VolfileError as err:
            logger.error("reload refused, the running workers keep serving: %s", err)
            return
        if graph.checksum == self.target.graph.checksum:
            logger.info("volfile unchanged: workers kept (their logs reopened)")
            for child in self.children.values():
                child.channel.send("reopen-log")
            return
        if not hasattr(graph.top, "prefork_bind"):
            logger.error("reload refused, the running workers keep serving: the new volfile's "
                         "top '%s' (%s) serves no sockets; restart to change that",
                         graph.top.name, graph.top.type_name)
            return
        graph.top.prefork_shared = self.shared
        try:
            graph.top.prefork_bind(previous=self.target.top)
        except OSError as err:
            logger.error("reload refused, the running workers keep serving: %s", err)
            return
        configured = self._configured(graph)
        wanted = self.target.wanted if configured == self.target.configured else configured
        previous = self.target
        self.target = Generation(previous.number + 1, graph, wanted, configured)
        self.generations.append(self.target)
        if previous is not self.serving:       # a reload still starting: drop it
            for child in list(self.children.values()):
                if child.generation is previous:
                    self._retire(child, "superseded by a newer reload")
        self._release_sockets()
        logger.info("reloading: generation %d (volfile sha256 %s...) starts %d workers",
                    self.target.number, graph.checksum[:12], wanted)

    def _stop(self, graceful: bool) -> None:
        """Workers finish (graceful) or quit, then the master cleans up and exits 0."""
        self.stopping = True
        for generation in self.generations:
            for sock in generation.top.prefork_sockets():
                sock.close()                   # the master's copies: stop accepting
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        workers = [c for c in self.children.values() if c.kind == "nfs"]
        for child in workers:
            self._kill(child, sig)
        deadline = time.monotonic() + (self.config.graceful_timeout if graceful else QUICK_TIMEOUT)
        while any(c.kind == "nfs" for c in self.children.values()):
            if time.monotonic() >= deadline:
                break
            signals = self._wait(0.1)
            self._reap()
            if graceful and (signal.SIGQUIT in signals or signal.SIGINT in signals):
                logger.info("stop: switching to a fast stop")
                graceful = False
                for child in self.children.values():
                    self._kill(child, signal.SIGQUIT)
                deadline = min(deadline, time.monotonic() + QUICK_TIMEOUT)
        for child in list(self.children.values()):
            if child.kind == "nfs":
                logger.warning("%s still running at the deadline: killing it", child.label)
                self._kill(child, signal.SIGKILL)
        self._portmap_stop()
        self._wait_children(QUICK_TIMEOUT)
        self._cleanup()
        logger.info("stopped")
        raise StopIteration

    def _wait_children(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.children and time.monotonic() < deadline:
            self._wait(0.05)
            self._reap()
        for child in list(self.children.values()):
            self._kill(child, signal.SIGKILL)
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            self.children.pop(child.pid, None)
            child.channel.close()

    def _halt(self, halt: HaltServer) -> int:
        """Stop everything and exit `halt.status`; the daemonize parent hears why only once
        the pidfile is gone, so an init script that sees the failure can start again."""
        logger.error("%s", halt.reason)
        self.stopping = True
        for child in self.children.values():
            self._kill(child, signal.SIGTERM if child.booted_at else signal.SIGKILL)
        self._portmap_stop()
        self._wait_children(self.config.graceful_timeout)
        self._cleanup()
        if self.serving is None:
            self.status.fail(f"initialisation failed: {halt.reason}")
        return halt.status

    def _cleanup(self) -> None:
        for generation in self.generations:
            for sock in generation.top.prefork_sockets():
                sock.close()
        if self.shared is not None:
            self.shared.close()
            self.shared = None
        if self.pidfile:
            self.pidfile.release()

    # --- portmapper -------------------------------------------------------------------
    def _portmapper_exited(self, child: Child, how: str) -> None:
        if self.stopping:
            return
        if child.booted_at is None:
            self.registrar.builtin_failed(self.target.top, child.reason or how)
            return
        logger.warning("%s %s; starting another", child.label, how)
        self.pmap_spawn_after = time.monotonic() + BACKOFF_FIRST

    def _portmap_stop(self) -> None:
        ours = [c for c in self.children.values() if c.kind == "portmapper"]
        self.registrar.stop(builtin_running=bool(ours))
        self.registrar.builtin_wanted = False
        for child in ours:
            self._kill(child, signal.SIGTERM)

    # --- statedump --------------------------------------------------------------------
    def _dump_sections(self) -> list:
        """The master's figures, then one section per child (psutil's view, its call count,
        and what it reports itself), collected over the channels within DUMP_TIMEOUT."""
        self._dump_id += 1
        ident = self._dump_id
        asked = [c for c in self.children.values() if c.channel.send("dump", id=ident)]
        deadline = time.monotonic() + DUMP_TIMEOUT
        while time.monotonic() < deadline and any(ident not in c.dumps for c in asked
                                                  if c.pid in self.children):
            self.pending += self._wait(0.05)
        sections = [("process", statedump.process_figures()), ("master", self._master_figures())]
        for child in sorted(asked, key=lambda c: (c.kind, c.number, c.pid)):
            reply = child.dumps.pop(ident, None)
            sections.append((f"worker.{child.pid}", figures_of(child, reply, DUMP_TIMEOUT)))
            for title, values in (reply or {}).get("sections", []):
                if title != "process":
                    sections.append((f"worker.{child.pid}.{title}", values))
        return sections

    def _master_figures(self) -> dict:
        serving = self.serving or self.target
        workers = [c for c in self.children.values() if c.kind == "nfs"]
        return {
            "volfile": self.config.volfile,
            "volfile-sha256": serving.graph.checksum,
            "generation": serving.number,
            "reload-in-progress": self.target is not self.serving,
            "workers-wanted": self.target.wanted,
            "workers": len(workers),
            "worker-pids": " ".join(str(c.pid) for c in sorted(workers, key=lambda c: c.pid)),
            "nfs_port": serving.top.nfs_port,
            "mount_port": serving.top.mount_port,
            "write_verifier": self.shared.verifier.current().hex() if self.shared else "",
            "portmap-registered": len(self.registrar.registered),
            "drc": self.shared.drc.stats() if self.shared and self.shared.drc else {},
        }


def _record_only(signum, frame) -> None:
    """The wakeup fd carries the signal number; the loop acts on it."""
