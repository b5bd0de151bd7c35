"""The `glusterfs` command line, compatible with GlusterFS's for what gnfs uses.

    glusterfs -f nfs.vol -p nfs.pid -l nfs.log

Every mistake an operator can make here (a bad flag, a bad volfile, a taken
pidfile or port) ends with a one-line reason on stderr and exit status 1,
before anything is bound, so init scripts and humans see it at once.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys

from glusterfsd import __version__
from glusterfsd import log as gflog
from glusterfsd import statedump
from glusterfsd.arbiter import MAX_WORKERS, Arbiter
from glusterfsd.daemon import StatusPipe, daemonize
from glusterfsd.graph import Graph, XlatorOverride
from glusterfsd.process import Server, ServerConfig
from glusterfsd.volfile import VolfileError
from glusterfsd.xlator import known_types

PROG = "glusterfs"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 1 like GlusterFS (argparse uses 2)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: {message}\n")
        sys.exit(1)


def _port(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number (1-65535)")
    return value


def _server(text: str) -> str:
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if text.startswith("/") or re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", text):
        return text
    raise argparse.ArgumentTypeError(f"'{text}' is not a host name, address or socket path")


def _workers(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if not 0 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"'{text}' is not a worker count (0-{MAX_WORKERS})")
    return value


def _override(text: str) -> XlatorOverride:
    try:
        return XlatorOverride.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="GlusterFS-style NFSv3 server (gnfs) in Python.",
                     epilog="Example: glusterfs -f nfs.vol -p nfs.pid -l nfs.log")
    add = parser.add_argument
    add("-f", "--volfile", "--spec-file", dest="volfile", metavar="VOLFILE",
        help="the volfile (graph of translators) to serve")
    add("-s", "--volfile-server", metavar="SERVER", type=_server,
        help="fetch the volfile from this glusterd (GETSPEC)")
    add("--volfile-server-port", metavar="PORT", type=_port, default=24007,
        help="glusterd's port (default 24007)")
    add("--volfile-id", metavar="KEY", help="volfile key to fetch, e.g. gluster/nfs")
    add("-p", "--pid-file", metavar="PIDFILE", help="write and lock this pidfile")
    add("-l", "--log-file", metavar="LOGFILE", help=f"log file (default {gflog.DEFAULT_LOG_FILE}; '-' = stderr)")
    add("-L", "--log-level", metavar="LOGLEVEL", default="INFO", type=str.upper,
        choices=list(gflog.LEVELS), help="TRACE, DEBUG, INFO (default), WARNING, ERROR, CRITICAL, NONE")
    add("-N", "--no-daemon", action="store_true", help="run in the foreground")
    add("--debug", action="store_true", help="no daemon, log level DEBUG, log to the console")
    add("--xlator-option", metavar="XL.KEY=VALUE", action="append", type=_override, default=[],
        help="set an option of one xlator, overriding the volfile (repeatable)")
    add("--volfile-check", action="store_true", help="validate the volfile and exit")
    add("--statedump-dir", metavar="DIR", default=statedump.DEFAULT_DIR,
        help=f"where SIGUSR1 writes statedumps (default {statedump.DEFAULT_DIR})")
    add("--graceful-timeout", metavar="SECONDS", type=float, default=30.0,
        help="how long SIGTERM waits for in-flight calls (default 30)")
    add("--workers", metavar="N", type=_workers,
        help="worker processes (overrides nfs.workers; default: the CPU count); "
             "0 serves in one process")
    add("--xlator-options", metavar="TYPE", nargs="?", const="all",
        help="list the options of an xlator type (or of all types) with their defaults, and exit")
    add("--version", action="version", version=f"{PROG} {__version__} (pygnfs)")
    return parser


def list_xlator_options(which: str) -> int:
    types = known_types()
    chosen = sorted(types) if which == "all" else [which]
    for name in chosen:
        if name not in types:
            sys.stderr.write(f"{PROG}: unknown xlator type '{name}' (known: {', '.join(sorted(types))})\n")
            return 1
        print(f"{name}:")
        for opt in types[name].options:
            print(f"    {opt.describe()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.xlator_options:
        return list_xlator_options(args.xlator_options)
    if args.debug:
        args.no_daemon, args.log_level, args.log_file = True, "DEBUG", "-"
    if args.volfile_server or args.volfile_id:
        if not (args.volfile_server and args.volfile_id):
            sys.stderr.write(f"{PROG}: --volfile-server and --volfile-id go together\n")
            return 1
        sys.stderr.write(f"{PROG}: fetching the volfile from {args.volfile_server}:"
                         f"{args.volfile_server_port} (GETSPEC) is not supported yet; "
                         "copy the volfile here and use -f\n")
        return 1
    if not args.volfile:
        sys.stderr.write(f"{PROG}: no volfile given: use -f VOLFILE (see --help)\n")
        return 1
    volfile = os.path.abspath(args.volfile)
    try:
        graph = Graph.from_file(volfile, args.xlator_option)
    except VolfileError as err:
        sys.stderr.write(f"{PROG}: {err}\n")
        return 1
    if args.volfile_check:
        print(f"{volfile}: OK ({len(graph.xlators)} volumes, top '{graph.top.name}')")
        return 0
    log_file = args.log_file or gflog.DEFAULT_LOG_FILE
    if log_file != "-":
        log_file = os.path.abspath(log_file)
    try:
        gflog.setup(args.log_level, log_file)
    except OSError as err:
        sys.stderr.write(f"{PROG}: cannot open log file {log_file}: {err.strerror}\n")
        return 1
    config = ServerConfig(
        volfile=volfile,
        pidfile=os.path.abspath(args.pid_file) if args.pid_file else None,
        overrides=args.xlator_option,
        statedump_dir=args.statedump_dir,
        graceful_timeout=args.graceful_timeout,
        workers=args.workers,
        volfile_arg=args.volfile,
    )
    status = StatusPipe(None) if args.no_daemon else daemonize()
    if uses_workers(graph, args.workers):
        return Arbiter(config, graph, status).run()
    return Server(config, graph, status).run()


def uses_workers(graph: Graph, workers: int | None) -> bool:
    """Prefork when the top binds sockets (nfs/server) and workers are not 0; a graph with
    nothing to serve (a bare storage volfile) runs in one process."""
    if not hasattr(graph.top, "prefork_bind"):
        return False
    return (workers if workers is not None else graph.top.prefork_workers()) > 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
