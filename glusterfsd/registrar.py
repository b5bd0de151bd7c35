"""The prefork master's portmapper registration: once for all workers, kept up to date.

Workers never register (they would race each other and unregister each
other on exit); the master registers the serving generation's ports, again
when a reload changed them, and unregisters at stop.  When no portmapper
answers, the master runs the built-in one in a child process of its own
(`glusterfsd.worker.PortmapperService`, supervised like a worker) and
registers into it once it says it is up -- and again if it had to be
restarted, since its table lived in the process that died.

The portmapper's port is 111; the environment variable GLUSTERFS_PMAP_PORT
moves it, for tests on machines where 111 belongs to the host's rpcbind.
"""
from __future__ import annotations

import os

from glusterfsd import log as gflog

logger = gflog.get_logger("glusterfsd")


def portmapper_port() -> int:
    from rpcsvc import pmap
    text = os.environ.get("GLUSTERFS_PMAP_PORT", "")
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else pmap.PMAP_PORT


class Registrar:
    def __init__(self):
        self.port = portmapper_port()
        self.registered: list = []
        self.builtin_wanted = False      # the master should run (and rerun) its own

    def start(self, top) -> None:
        """First registration; sets `builtin_wanted` if nobody answers."""
        from rpcsvc import pmap
        if not top.prefork_wants_portmap():
            return
        if self._register(top):
            return
        if pmap.portmapper_answers("127.0.0.1", self.port):
            logger.error("the portmapper refused our registration: clients must be told "
                         "nfsport=%d and mountport=%d", top.nfs_port, top.mount_port)
        else:
            self.builtin_wanted = True

    def builtin_up(self, top) -> None:
        """Our own portmapper (re)started: its table is empty, fill it."""
        self.registered = []
        if top.prefork_wants_portmap() and not self._register(top):
            logger.error("registering with the built-in portmapper failed")

    def builtin_failed(self, top, why: str) -> None:
        logger.warning("no built-in portmapper (%s): clients must be told nfsport=%d and "
                       "mountport=%d", why, top.nfs_port, top.mount_port)
        self.builtin_wanted = False

    def update(self, top) -> None:
        """A reload is done: follow the new graph's ports and its rpc.register-with-portmap."""
        if not top.prefork_wants_portmap():
            self.stop(builtin_running=False)
        elif not self.registered and not self.builtin_wanted:
            self.start(top)                  # turned on by the reload
        elif top.prefork_mappings() != self.registered:
            self._register(top)

    def stop(self, builtin_running: bool) -> None:
        """Unregister (pointless when the portmapper is our own, about to stop)."""
        from rpcsvc import pmap
        if self.registered and not builtin_running:
            pmap.unregister_programs(self.registered, host="127.0.0.1", port=self.port)
        self.registered = []

    def _register(self, top) -> bool:
        from rpcsvc import pmap
        mappings = top.prefork_mappings()
        if pmap.register_programs(mappings, host="127.0.0.1", port=self.port):
            self.registered = mappings
            return True
        return False
