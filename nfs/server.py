"""The `nfs/server` xlator: gnfs's top of the graph, serving NFSv3 and MOUNT.

Its subvolumes are the exported volumes (one export per child, named after
it, plus directory exports).  `init` builds, in order: the export table, the
inode table and fd cache, an event pool, one RpcService with NFS v3 and
MOUNT v3/v1, the listening sockets (TCP and UDP on nfs.port for NFS and on
nfs.mount-port for MOUNT), and the portmapper registration.  If no
portmapper answers and port 111 is free, a built-in one is started (as a
host without rpcbind would otherwise have no way for clients to find us).

Ports: 0 means "any free port"; the real ones are `self.nfs_port` and
`self.mount_port` (and in the statedump).  A port already in use stops init
with a message saying so.  `drain()` stops accepting and waits for calls in
flight; `fini()` unregisters, closes, and releases cached fds.

The option table is gnfs's (anchors §1.2) with our defaults where noted;
options for features not implemented here (NLM, NFS-ACL) are accepted only
when off, so a volfile asking for them fails loudly instead of silently.
"""
from __future__ import annotations

import errno
import os
import socket
from typing import Any

from glusterfsd.options import Option, OptionError
from glusterfsd.xlator import Xlator, register
from nfs import writeverf
from nfs.exports import EXPORT_OPTIONS, ExportTable, validate_export_options
from nfs.fdcache import FdCache
from nfs.inode import InodeTables
from nfs.nfs3 import Nfs3, Nfs3Config
from nfs.prefork import PreforkServing

MIB = 1 << 20
INODES_PER_MEM_FACTOR = 6000      # gnfs: inode LRU = nfs.mem-factor x 6000
FDS_PER_MEM_FACTOR = 32
UDP_PORT_TRIES = 20               # ephemeral TCP port whose UDP twin is taken: try again

NFS_OPTIONS: tuple[Option, ...] = (
    Option("nfs3.read-size", "sizet", "1MB", min=4096, max=MIB,
           description="Largest READ (FSINFO rtmax and rtpref), rounded up to 4 KiB."),
    Option("nfs3.write-size", "sizet", "1MB", min=4096, max=MIB,
           description="Largest WRITE (FSINFO wtmax and wtpref), rounded up to 4 KiB."),
    Option("nfs3.readdir-size", "sizet", "1MB", min=4096, max=MIB,
           description="Largest READDIR/READDIRPLUS reply (FSINFO dtpref), rounded up to 4 KiB."),
    Option("nfs.port", "int", "2049", min=0, max=65535,
           description="Port of the NFS program (TCP and UDP); 0 picks a free port."),
    Option("nfs.mount-port", "int", "38465", min=0, max=65535,
           description="Port of the MOUNT program (TCP and UDP); 0 picks a free port. "
                       "(gnfs fixes it at 38465; this option is our addition.)"),
    Option("nfs.bind-address", "str", "0.0.0.0",
           description="Address to listen on (also transport.socket.bind-address)."),
    Option("transport.socket.bind-address", "str", None,
           description="Address to listen on, as glusterd writes it; wins over nfs.bind-address."),
    Option("nfs.rdirplus", "bool", "on",
           description="Serve READDIRPLUS; off answers it NFS3ERR_NOTSUPP so clients use READDIR."),
    Option("nfs.mem-factor", "int", "15", min=1, max=1024,
           description="Size of the tables: inodes = mem-factor x 6000, cached fds = x 32."),
    Option("nfs.enable-ino32", "bool", "off",
           description="Report 32-bit fileids (for 32-bit applications and clients)."),
    Option("nfs.dynamic-volumes", "bool", "on",
           description="Handles carry the volume UUID (always so here; off is refused)."),
    Option("rpc.register-with-portmap", "bool", "on",
           description="Register NFS and MOUNT with the portmapper (a built-in one is started "
                       "if none answers and port 111 is free)."),
    Option("rpc.outstanding-rpc-limit", "int", "16", min=0, max=65536,
           description="Calls in flight per connection before reading from it pauses; 0 = no limit."),
    Option("nfs.drc", "bool", "on",
           description="Duplicate request cache for non-idempotent calls (on here; gnfs: off)."),
    Option("nfs.drc-size", "int", str(0x20000), min=1, max=1 << 24,
           description="Replies the duplicate request cache keeps."),
    Option("rpc-auth.ports.insecure", "bool", "on",
           description="Accept calls from source ports >= 1024 (gnfs allows them unless this "
                       "or rpc-auth-allow-insecure is set off)."),
    Option("rpc-auth-allow-insecure", "bool", "on",
           description="Same as rpc-auth.ports.insecure; off refuses unprivileged ports."),
    Option("rpc-auth.auth-unix", "bool", "on", description="Accept AUTH_UNIX (AUTH_SYS) calls."),
    Option("rpc-auth.auth-null", "bool", "on", description="Accept AUTH_NULL calls."),
    Option("nfs.event-threads", "int", "2", min=1, max=32,
           description="Event threads polling the sockets."),
    Option("nfs.stage-threads", "int", "8", min=1, max=256,
           description="Threads running NFS calls (our addition: gnfs ran fops asynchronously)."),
    Option("nfs.nlm", "bool", "off",
           description="NLM v4 locking: not implemented; only off is accepted."),
    Option("nfs.acl", "bool", "off",
           description="NFS-ACL v3: not implemented; only off is accepted."),
    Option("nfs.workers", "int", str(min(os.cpu_count() or 1, 64)), min=0, max=64,
           description="Worker processes serving the sockets (default: the CPU count); "
                       "0 serves in the one process, without a master (our addition)."),
    Option("nfs.worker-timeout", "double", "30", min=2, max=3600,
           description="A worker whose event and stage threads make no progress for this "
                       "many seconds (or that takes longer to start) is killed and replaced."),
    Option("nfs.mount-udp", "bool", "on",
           description="Serve (and register) MOUNT over UDP as well as TCP; off serves MOUNT "
                       "over TCP only (gnfs's default is off; some clients ask mountd over UDP)."),
    Option("nfs.idle-timeout", "double", "360", min=0, max=86400,
           description="Close a TCP connection with no traffic and no call in flight for this "
                       "many seconds (0 = never), as knfsd does after 6 minutes (our addition)."),
    Option("nfs.max-connections", "int", "1024", min=0, max=1 << 20,
           description="TCP connections one process serves at once; more are closed at accept "
                       "(0 = no cap; our addition)."),
)

NFS_PROGRAM, NFS_VERSIONS = 100003, (3,)
MOUNT_PROGRAM, MOUNT_VERSIONS = 100005, (3, 1)


def _round_4k(value: int) -> int:
    return (value + 4095) & ~4095


def _max_record(config: Nfs3Config) -> int:
    """The largest RPC record to accept: a WRITE of wtmax plus room for its header."""
    return config.write_size + 64 * 1024


def bind_pair(host: str, port: int, key: str = "nfs.port"):
    """(tcp, udp) sockets bound to the same port on host (port 0: any free one).

    `key` names the option in error messages: a port in use says which
    option to change.  Raises OSError with that advice.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(UDP_PORT_TRIES if port == 0 else 1):
        tcp = socket.socket(family, socket.SOCK_STREAM)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, port))
            tcp.listen(1024)
            udp.bind((host, tcp.getsockname()[1]))
            return tcp, udp
        except OSError as err:
            tcp.close()
            udp.close()
            if port != 0 or err.errno != errno.EADDRINUSE:
                raise bind_error(err, host, port, key) from None
            # an ephemeral TCP port whose UDP twin is taken: try another
    raise OSError(errno.EADDRINUSE, f"{key}: no port free for both TCP and UDP")


def bind_error(err: OSError, host: str, port: int, key: str) -> OSError:
    if err.errno == errno.EADDRINUSE:
        what = "NFS" if key == "nfs.port" else "MOUNT"
        return OSError(err.errno, f"port {port} is in use: is another {what} server "
                                  f"running? set {key}")
    if err.errno == errno.EACCES:
        return OSError(err.errno, f"cannot bind {host}:{port} ({key}): permission denied "
                                  "(ports below 1024 need root)")
    return OSError(err.errno, f"cannot bind {host}:{port} ({key}): {err.strerror}")


@register
class NfsServer(PreforkServing, Xlator):
    """nfs/server: NFSv3 + MOUNT over the exported subvolumes (prefork side: nfs.prefork)."""

    type_name = "nfs/server"
    options = NFS_OPTIONS + EXPORT_OPTIONS
    children_range = (1, None)

    def __init__(self, name: str, opts: dict[str, Any], children: list[Xlator]):
        super().__init__(name, opts, children)
        self.exports: ExportTable | None = None
        self.nfs3: Nfs3 | None = None
        self.svc = None
        self.pool = None
        self.portmapper = None
        self.registered: list = []
        self.nfs_port = 0
        self.mount_port = 0
        self.inodes: InodeTables | None = None
        self.fds: FdCache | None = None
        self._mappings: list = []
        # {"nfs.port" | "nfs.mount-port": (tcp, udp)} bound by a prefork master
        self.presets: dict = {}
        self.verifier = writeverf       # or the master's shared one (nfs.prefork)
        self._prefork_setup()

    # --- validation ------------------------------------------------------
    def check(self) -> None:
        for key in ("nfs.nlm", "nfs.acl"):
            if self.option(key):
                raise OptionError(key, f"{key} on: this server does not implement it; "
                                       f"set {key} off (or remove the option)")
        if not self.option("nfs.dynamic-volumes"):
            raise OptionError("nfs.dynamic-volumes", "nfs.dynamic-volumes off (index-based "
                              "handles) is not supported: handles always carry the volume UUID")
        if not self.option("rpc-auth.auth-unix") and not self.option("rpc-auth.auth-null"):
            raise OptionError("rpc-auth.auth-unix", "rpc-auth.auth-unix and rpc-auth.auth-null "
                                                    "are both off: no call could be accepted")
        validate_export_options(self)

    def _config(self) -> Nfs3Config:
        return Nfs3Config(
            read_size=_round_4k(self.option("nfs3.read-size")),
            write_size=_round_4k(self.option("nfs3.write-size")),
            readdir_size=_round_4k(self.option("nfs3.readdir-size")),
            enable_ino32=bool(self.option("nfs.enable-ino32")),
            rdirplus=bool(self.option("nfs.rdirplus")),
            auth_unix=bool(self.option("rpc-auth.auth-unix")),
            auth_null=bool(self.option("rpc-auth.auth-null")),
        )

    @property
    def bind_address(self) -> str:
        return self.option("transport.socket.bind-address") or self.option("nfs.bind-address")

    # --- lifecycle --------------------------------------------------------
    def init(self) -> None:
        from event import new_pool
        from mount.mount3 import mount_programs
        from mount.rmtab import Rmtab
        from rpcsvc.svc import RpcService

        self.check()
        self.exports = ExportTable.from_options(self)
        mem_factor = self.option("nfs.mem-factor")
        self.inodes = InodeTables(mem_factor * INODES_PER_MEM_FACTOR)
        self.fds = FdCache(mem_factor * FDS_PER_MEM_FACTOR)
        shared = self.prefork_shared
        if shared is None:
            writeverf.start()
            self.verifier = writeverf
        else:   # a prefork worker: the master's verifier, the same in every worker
            writeverf.set_current(shared.verifier.current())
            self.verifier = shared.verifier
        config = self._config()
        self.nfs3 = Nfs3(self.exports, config, self.inodes, self.fds, self.verifier)
        self.pool = new_pool(4096, self.option("nfs.event-threads"))
        try:
            self.pool.dispatch()
            allow_insecure = bool(self.option("rpc-auth.ports.insecure")) and \
                bool(self.option("rpc-auth-allow-insecure"))
            self.svc = RpcService(
                self.pool, stage_threads=self.option("nfs.stage-threads"),
                max_record=_max_record(config),
                outstanding_limit=self.option("rpc.outstanding-rpc-limit"),
                drc=bool(self.option("nfs.drc")) and shared is None,
                drc_size=self.option("nfs.drc-size"), allow_insecure=allow_insecure,
                name=self.name, idle_timeout=self.option("nfs.idle-timeout"),
                max_connections=self.option("nfs.max-connections"))
            if shared is not None and shared.drc is not None and self.option("nfs.drc"):
                self.svc.drc = shared.drc      # retransmissions may reach another worker
            nfs_program = self.nfs3.program(allow_insecure)
            self.svc.add_program(nfs_program)
            rmtab = Rmtab.from_option(self.option("nfs.mount-rmtab"))
            mount = mount_programs(lambda: self.exports, rmtab)
            for program in mount:
                self.svc.add_program(program)
            host = self.bind_address
            self.nfs_port = self._listen(host, self.option("nfs.port"), "nfs.port")
            self.mount_port = self._listen(host, self.option("nfs.mount-port"), "nfs.mount-port",
                                           udp=bool(self.option("nfs.mount-udp")))
            self._mappings = self.portmap_mappings()
            if self.option("rpc.register-with-portmap") and shared is None:
                self._register_portmap()       # a prefork master registers for its workers
        except BaseException:
            self._teardown()
            raise
        self.log.info("NFS v3 on %s:%d, MOUNT v3/v1 on %s:%d; exports: %s", self.bind_address,
                      self.nfs_port, self.bind_address, self.mount_port,
                      ", ".join(e.path for e in self.exports) or "none")

    def portmap_mappings(self) -> list[tuple[int, int, str, int]]:
        """(prog, vers, proto, port) to register: NFS v3 over TCP and UDP, MOUNT v3/v1
        over TCP (and UDP with nfs.mount-udp)."""
        mount_protos = ("tcp", "udp") if self.option("nfs.mount-udp") else ("tcp",)
        out = [(NFS_PROGRAM, vers, proto, self.nfs_port) for vers in NFS_VERSIONS
               for proto in ("tcp", "udp")]
        out += [(MOUNT_PROGRAM, vers, proto, self.mount_port) for vers in MOUNT_VERSIONS
                for proto in mount_protos]
        return out

    def _listen(self, host: str, port: int, key: str, udp: bool = True) -> int:
        """Serve TCP (and UDP unless told not to) on one port number (0: a free one);
        returns it.

        Sockets a prefork master bound before forking (`self.presets[key]`,
        made with `bind_pair`) are served as they are."""
        tcp, udp_sock = self.presets.pop(key, None) or bind_pair(host, port, key)
        self._served_listeners.append(tcp)
        try:
            self.svc.serve(tcp, "tcp")
        except BaseException:
            tcp.close()
            udp_sock.close()
            raise
        if not udp:  # UDP callers get "port unreachable" at once
            udp_sock.close()
            return tcp.getsockname()[1]
        udp = udp_sock
        try:
            self.svc.serve(udp, "udp")
        except BaseException:
            udp.close()
            raise
        return tcp.getsockname()[1]

    def _register_portmap(self) -> None:
        from rpcsvc import pmap
        if pmap.register_programs(self._mappings, host="127.0.0.1"):
            self.registered = list(self._mappings)
            return
        if pmap.portmapper_answers("127.0.0.1"):
            self.log.error("the portmapper refused our registration: clients must be told "
                           "nfsport=%d and mountport=%d", self.nfs_port, self.mount_port)
            return
        builtin = pmap.BuiltinPortmapper(self.pool)
        if not builtin.start(host=self.bind_address, port=pmap.PMAP_PORT):
            self.log.warning("no portmapper answers and port 111 is taken: clients must be "
                             "told nfsport=%d and mountport=%d", self.nfs_port, self.mount_port)
            return
        self.portmapper = builtin
        if pmap.register_programs(self._mappings, host="127.0.0.1"):
            self.registered = list(self._mappings)
        else:
            self.log.error("registering with the built-in portmapper failed")

    def drain(self, timeout: float) -> bool:
        """Stop accepting connections and calls; wait for those in flight."""
        if self.svc is None:
            return True
        self.svc.stop_accepting()
        return self.svc.drain(timeout)

    def fini(self) -> None:
        self._teardown()

    def _teardown(self) -> None:
        if self.registered:
            from rpcsvc import pmap
            try:
                pmap.unregister_programs(self.registered, host="127.0.0.1")
            except Exception as err:  # fini must not raise
                self.log.warning("unregistering from the portmapper failed: %s", err)
            self.registered = []
        if self.portmapper is not None:
            self.portmapper.stop()
            self.portmapper = None
        self._close_probe()
        self._served_listeners = []
        if self.svc is not None:
            self.svc.close()
            self.svc = None
        if self.fds is not None:
            self.fds.close_all()
        if self.pool is not None:
            self.pool.destroy()
            self.pool = None

    def reconfigure(self, changed: dict[str, Any]) -> None:
        """Apply changed options: exports, access rules, sizes and flags at once; ports
        and thread counts need a restart (logged)."""
        super().reconfigure(changed)
        needs_restart = {"nfs.port", "nfs.mount-port", "nfs.bind-address", "nfs.mount-udp",
                         "nfs.idle-timeout", "nfs.max-connections",
                         "transport.socket.bind-address", "nfs.stage-threads", "nfs.drc",
                         "nfs.drc-size", "nfs.mem-factor", "nfs.workers",
                         "nfs.worker-timeout"} & set(changed)
        if needs_restart:
            self.log.warning("options %s take effect at the next restart",
                             ", ".join(sorted(needs_restart)))
        if self.nfs3 is None:
            return
        self.exports = ExportTable.from_options(self)
        self.nfs3.config = self._config()
        self.nfs3.set_exports(self.exports)
        if "nfs.event-threads" in changed and self.pool is not None:
            self.pool.reconfigure_threads(self.option("nfs.event-threads"))
        if self.svc is not None:
            self.svc.outstanding_limit = self.option("rpc.outstanding-rpc-limit")
            self.svc.max_record = _max_record(self.nfs3.config)  # WRITEs as big as FSINFO says

    def dump_private(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nfs_port": self.nfs_port, "mount_port": self.mount_port,
                               "bind_address": self.bind_address,
                               "write_verifier": self.verifier.current().hex()}
        if self.exports is not None:
            out["exports"] = [f"{e.path} ({'ro' if e.read_only else 'rw'})" for e in self.exports]
        if self.inodes is not None:
            out.update({f"inodes.{k}": v for k, v in self.inodes.stats().items()})
        if self.fds is not None:
            out.update({f"fds.{k}": v for k, v in self.fds.stats().items()})
        if self.svc is not None:
            out["rpc"] = self.svc.stats()
        if self.portmapper is not None:
            out["builtin_portmapper"] = f"{self.portmapper.host}:{self.portmapper.port}"
        return out

