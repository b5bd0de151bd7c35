"""One server process: pidfile, graph life, and the signals ops send it.

This is the single-process mode: the graph runs in the process that parsed
the command line.  It serves graphs whose top binds no sockets (a bare
storage/posix volfile) and `nfs.workers 0` / `--workers 0`; an nfs/server
graph normally runs under the prefork master instead (glusterfsd.arbiter),
with worker processes (glusterfsd.worker).

Signals are blocked in every thread and taken by the main thread with
`sigwait`, as glusterfsd's dedicated sigwaiter thread does: a handler then
never runs in the middle of a request, and reload or shutdown happen in one
place, one at a time.

    SIGTERM/SIGINT  graceful stop (drain in-flight calls, fini, remove pidfile)
    SIGQUIT         fast stop (no drain)
    SIGHUP          reopen the log and reload the volfile
    SIGUSR1         statedump
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from glusterfsd import log as gflog
from glusterfsd import statedump
from glusterfsd.daemon import StatusPipe
from glusterfsd.graph import Graph, XlatorOverride
from glusterfsd.pidfile import Pidfile, PidfileError
from glusterfsd.volfile import VolfileError

logger = gflog.get_logger("glusterfsd")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1)
SIGNAL_NAMES = {sig: sig.name.lower() for sig in HANDLED_SIGNALS}


@dataclass
class ServerConfig:
    volfile: str
    pidfile: str | None = None
    overrides: list[XlatorOverride] = field(default_factory=list)
    statedump_dir: str = statedump.DEFAULT_DIR
    graceful_timeout: float = 30.0
    workers: int | None = None           # --workers; None: the volfile's nfs.workers
    volfile_arg: str | None = None       # the volfile as typed, for the process title


def set_title(text: str) -> None:
    """Say who this process is in ps/top (setproctitle); harmless if unavailable."""
    try:
        import setproctitle
    except ImportError:  # pragma: no cover - it is a declared dependency
        return
    setproctitle.setproctitle(text)


class Server:
    """Runs a graph until a stop signal; the top xlator does the serving."""

    def __init__(self, config: ServerConfig, graph: Graph, status: StatusPipe):
        self.config = config
        self.graph = graph
        self.status = status
        self.pidfile = Pidfile(config.pidfile) if config.pidfile else None
        self.running = False
        self.exit_code = 0

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)  # before any thread starts
        set_title(f"glusterfs: server -f {self.config.volfile}")
        try:
            if self.pidfile:
                self.pidfile.acquire()
            self.graph.init()
            self.graph.activate()
        except PidfileError as err:
            logger.error("%s", err)
            self.status.fail(str(err))
            return 1
        except Exception as err:
            logger.error("initialisation failed: %s", err, exc_info=not isinstance(err, OSError))
            self.status.fail(f"initialisation failed: {err}")
            self._release_pidfile()
            return 1
        logger.info("started (pid %d, volfile %s)", os.getpid(), self.config.volfile)
        self.status.ok()
        self.running = True
        while self.running:
            sig = signal.sigwait(HANDLED_SIGNALS)
            getattr(self, "handle_" + SIGNAL_NAMES[sig])()
        return self.exit_code

    # --- signal handlers (found by name, as gunicorn's arbiter does) ------
    def handle_sigterm(self) -> None:
        logger.info("received SIGTERM, shutting down gracefully")
        self.stop(graceful=True)

    def handle_sigint(self) -> None:
        logger.info("received SIGINT, shutting down gracefully")
        self.stop(graceful=True)

    def handle_sigquit(self) -> None:
        logger.info("received SIGQUIT, shutting down now")
        self.stop(graceful=False)

    def handle_sighup(self) -> None:
        gflog.reopen()
        logger.info("received SIGHUP: log reopened, reloading %s", self.config.volfile)
        self.reload()

    def handle_sigusr1(self) -> None:
        try:
            path = statedump.write(self.config.statedump_dir, self.dump_sections())
            logger.info("statedump written to %s", path)
        except OSError as err:
            logger.error("statedump to %s failed: %s (set --statedump-dir to a writable directory)",
                         self.config.statedump_dir, err)

    # --- actions ----------------------------------------------------------
    def stop(self, graceful: bool) -> None:
        drain = getattr(self.graph.top, "drain", None)
        if graceful and drain is not None:
            deadline = time.monotonic() + self.config.graceful_timeout
            if not drain(self.config.graceful_timeout):
                logger.warning("in-flight calls did not finish within %.0f s",
                               self.config.graceful_timeout)
            logger.debug("drained in %.3f s", self.config.graceful_timeout - (deadline - time.monotonic()))
        self.graph.fini()
        self._release_pidfile()
        logger.info("stopped")
        self.running = False

    def reload(self) -> None:
        """Re-read the volfile: nothing, reconfigure, or a whole new graph."""
        try:
            new = Graph.from_file(self.config.volfile, self.config.overrides)
        except VolfileError as err:
            logger.error("reload refused, the running graph is kept: %s", err)
            return
        if new.checksum == self.graph.checksum:
            logger.info("volfile unchanged, nothing to reload")
            return
        if self.graph.same_topology(new):
            changes = self.graph.reconfigure_from(new)
            logger.info("options reconfigured in %d xlator(s)", len(changes))
            return
        logger.info("topology changed: switching to a new graph")
        old = self.graph
        old_volfile = old.volfile
        old.fini()
        try:
            new.init()
            new.activate()
            self.graph = new
        except Exception as err:
            logger.error("new graph failed to start (%s); restarting the previous one", err)
            self.graph = Graph.construct(old_volfile, self.config.overrides)
            self.graph.init()
            self.graph.activate()

    def dump_sections(self):
        yield "process", statedump.process_figures()
        yield "graph", {"id": self.graph.id, "volfile": self.config.volfile,
                        "volfile-sha256": self.graph.checksum, "top": self.graph.top.name}
        for name, section in self.graph.dump().items():
            yield f"xlator.{name}", section

    def _release_pidfile(self) -> None:
        if self.pidfile:
            self.pidfile.release()
