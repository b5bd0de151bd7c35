"""The NFS servers under test (ours and NFS-Ganesha) and the rpcbind both register with.

Each server is started by the harness, in the foreground, on 127.0.0.1, and stopped
by its pid (SIGTERM, then SIGKILL after a grace period). Both need port 2049, so
only one runs at a time: `start()` refuses if 2049 is taken.

Clients are given the MOUNT port explicitly (`mountport=` in the URL), read from the
portmapper right after the server registered. Why: other test suites on the same
machine register and unregister programs with the same rpcbind, and once we saw
Ganesha's registrations vanish mid-run; a client that looked the port up again at
unmount time would then fail. Looking it up once keeps the user's path (the
portmapper tells where MOUNT is) and makes the run immune to that churn.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import procs

HOST = "127.0.0.1"
NFS_PORT = 2049
PMAP_PORT = 111
MOUNT_PROGRAM = 100005
NFS_PROGRAM = 100003
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 30.0
REPO_ROOT = Path(__file__).resolve().parent.parent
GANESHA_CONF_TEMPLATE = Path(__file__).resolve().parent / "ganesha.conf"


class ServerError(RuntimeError):
    """A server could not be started, found, or stopped as expected."""


def registered_ports(host: str = HOST, timeout_s: float = 10.0) -> dict[tuple[int, int, str], int]:
    """The portmapper's table as {(program, version, proto): port}, via `rpcinfo -p`."""
    result = procs.run_bounded(["rpcinfo", "-p", host], timeout_s)
    if result.returncode != 0:
        raise ServerError(f"rpcinfo -p {host} failed: {result.stderr.strip()}")
    return parse_rpcinfo(result.stdout)


def parse_rpcinfo(text: str) -> dict[tuple[int, int, str], int]:
    """Parse `rpcinfo -p` output; lines that are not table rows are skipped."""
    table: dict[tuple[int, int, str], int] = {}
    for line in text.splitlines():
        match = re.match(r"\s*(\d+)\s+(\d+)\s+(tcp|udp|tcp6|udp6)\s+(\d+)", line)
        if match:
            prog, vers, proto, port = match.groups()
            table[(int(prog), int(vers), proto)] = int(port)
    return table


class Rpcbind:
    """The portmapper: reused if one already answers, else started here and stopped after.

    Debian's `rpcbind -h 127.0.0.1` aborts (double free in 1.2.6), so when started here
    it runs as `rpcbind -f -w` and listens on all addresses; it only holds the table of
    ports, and every server and client of the harness uses 127.0.0.1.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def ensure(self) -> None:
        if procs.port_open(HOST, PMAP_PORT):
            return
        binary = shutil.which("rpcbind") or "/usr/sbin/rpcbind"
        self.proc = subprocess.Popen([binary, "-f", "-w"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        procs.wait_until(lambda: procs.port_open(HOST, PMAP_PORT), 15, "rpcbind", self.proc)

    @property
    def started_here(self) -> bool:
        return self.proc is not None

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop_tree(self.proc.pid)
            self.proc.wait(timeout=5)
            self.proc = None


@dataclass
class NfsServer:
    """One server under test. Subclasses say how to start it and what they changed."""

    name: str
    export_dir: Path
    workdir: Path
    proc: subprocess.Popen | None = None
    mount_port: int = 0
    log_path: Path | None = None
    launcher: list[str] = field(default_factory=list)         # replaces `python -m glusterfsd`
    extra_args: list[str] = field(default_factory=list)       # appended to the command
    ours_options: list[str] = field(default_factory=list)     # XL.KEY=VALUE overrides

    # --- what subclasses provide ---------------------------------------
    @property
    def mount_path(self) -> str:
        """What MOUNT's MNT is given for the export."""
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files into workdir before start."""

    def non_default_settings(self) -> list[str]:
        raise NotImplementedError

    # --- common life cycle ----------------------------------------------
    def url(self, subdir: str = "") -> str:
        """The libnfs URL of the export (or of a directory in it), ports given."""
        path = self.mount_path.rstrip("/") + "/" + (subdir.strip("/") + "/" if subdir else "")
        return f"nfs://{HOST}{path}?nfsport={NFS_PORT}&mountport={self.mount_port}"

    def start(self) -> None:
        if self.proc is not None:
            raise ServerError(f"{self.name} is already running (pid {self.proc.pid})")
        if procs.port_open(HOST, NFS_PORT):
            raise ServerError(f"port {NFS_PORT} on {HOST} is taken before starting "
                              f"{self.name}: is another NFS server running?")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        stdout = open(self.workdir / f"{self.name}.stdout", "ab")
        try:
            self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT,
                                         stdout=stdout, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            stdout.close()
        try:
            procs.wait_until(self._ready, START_TIMEOUT_S, f"{self.name} server", self.proc,
                             interval_s=0.2)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if not procs.port_open(HOST, NFS_PORT):
            return False
        table = registered_ports()
        port = table.get((MOUNT_PROGRAM, 3, "tcp"))
        if not port:
            return False
        self.mount_port = port
        return True

    @property
    def pid(self) -> int:
        """The server's (master's) pid."""
        if self.proc is None:
            raise ServerError(f"{self.name} is not running")
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, wait (graceful shutdown), SIGKILL after STOP_GRACE_S; then wait for 2049.

        The server's children (prefork workers) are listed first and ended by pid too if
        they outlive their master, so nothing is left holding the port.
        """
        if self.proc is None:
            return
        children = procs.descendants(self.proc.pid)
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            procs.stop_tree(self.proc.pid, grace_s=5)
            self.proc.wait(timeout=10)
        for child in children:
            if procs.pid_alive(child.pid):
                procs.stop_tree(child.pid, grace_s=5)
        self.proc = None
        deadline = time.monotonic() + 30
        while procs.port_open(HOST, NFS_PORT) and time.monotonic() < deadline:
            time.sleep(0.2)


class OursServer(NfsServer):
    """Our server: `python -m glusterfsd -N -f bench.vol` from the repository root."""

    @property
    def mount_path(self) -> str:        # the export is named after the subvolume
        return "/export"

    def volfile_text(self) -> str:
        return (f"volume export-posix\n"
                f"    type storage/posix\n"
                f"    option directory {self.export_dir}\n"
                f"end-volume\n"
                f"volume export\n"               # as contrib/nfs.vol, the default graph
                f"    type performance/readdir-ahead\n"
                f"    subvolumes export-posix\n"
                f"end-volume\n"
                f"volume nfs-server\n"
                f"    type nfs/server\n"
                f"    option transport.socket.bind-address {HOST}\n"
                f"    option nfs.port {NFS_PORT}\n"
                f"    subvolumes export\n"
                f"end-volume\n")

    def prepare(self) -> None:
        (self.workdir / "bench.vol").write_text(self.volfile_text())
        self.log_path = self.workdir / "ours.log"

    def command(self) -> list[str]:
        launcher = self.launcher or [sys.executable, "-m", "glusterfsd"]
        overrides = [arg for option in self.ours_options for arg in ("--xlator-option", option)]
        return launcher + ["-N", "-f", str(self.workdir / "bench.vol"), "-l", str(self.log_path)] \
            + overrides + self.extra_args

    def non_default_settings(self) -> list[str]:
        return [f"transport.socket.bind-address {HOST} (default 0.0.0.0: all addresses)"] + \
            [f"--xlator-option {option} (given with --ours-option)" for option in self.ours_options]


class GaneshaServer(NfsServer):
    """NFS-Ganesha 4.3 (Debian), VFS FSAL, NFSv3 over TCP, from benchmarks/ganesha.conf."""

    @property
    def mount_path(self) -> str:        # Ganesha's v3 MNT takes the export's Path
        return str(self.export_dir)

    def config_text(self) -> str:
        return render_ganesha_conf(GANESHA_CONF_TEMPLATE.read_text(),
                                   export_dir=str(self.export_dir), nfs_port=str(NFS_PORT))

    def prepare(self) -> None:
        (self.workdir / "ganesha.conf").write_text(self.config_text())
        self.log_path = self.workdir / "ganesha.log"

    def command(self) -> list[str]:
        binary = shutil.which("ganesha.nfsd") or "/usr/bin/ganesha.nfsd"
        return [binary, "-F", "-f", str(self.workdir / "ganesha.conf"), "-L", str(self.log_path),
                "-p", str(self.workdir / "ganesha.pid"), "-N", "NIV_EVENT"]

    def non_default_settings(self) -> list[str]:
        return [f"Bind_addr = {HOST} (default 0.0.0.0)",
                "Protocols = 3 (default 3, 4, 9P)",
                "Enable_NLM = false, Enable_RQUOTA = false (default true)",
                "Enable_UDP = false (default true); export Transports = TCP (default UDP, TCP)",
                "export Access_Type = RW (default None), Squash = No_Root_Squash "
                "(default root_squash: fio runs as root), SecType = sys (default none, sys)"]


PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def render_ganesha_conf(template: str, **values: str) -> str:
    """Fill {name} placeholders; an unknown or missing one is an error, not a blank."""
    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"ganesha.conf placeholder {{{key}}} has no value")
        return values[key]
    unused = set(values) - set(PLACEHOLDER.findall(template))
    if unused:
        raise KeyError(f"values given for no placeholder: {', '.join(sorted(unused))}")
    return PLACEHOLDER.sub(fill, template)
