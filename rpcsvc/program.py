"""What a program (NFS, MOUNT, portmap ...) gives the RPC service, and what its actors get.

A `Program` is one version of one program from an `.x` spec, with the actors
that implement its procedures.  The codecs come from the spec, so an actor
receives decoded arguments and returns a plain value that the procedure's
result codec encodes.  Procedures of the spec without an actor answer
PROC_UNAVAIL, as gnfs's NULL slots in its actor tables do.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from rpcsvc import wire


class RpcError(Exception):
    """Raised by an actor to answer with an accept_stat (GARBAGE_ARGS, SYSTEM_ERR ...)."""

    def __init__(self, accept_stat: int, message: str = ""):
        super().__init__(message or wire.ACCEPT_STAT_NAMES.get(accept_stat, str(accept_stat)))
        self.accept_stat = accept_stat


class RpcAuthError(Exception):
    """Raised by an actor (or a peer check) to deny with MSG_DENIED/AUTH_ERROR `auth_stat`."""

    def __init__(self, auth_stat: int, message: str = ""):
        super().__init__(message or f"auth_stat {auth_stat}")
        self.auth_stat = auth_stat


class Reply:
    """A result an actor encoded itself: buffers sent as they are after the RPC header.

    Lets READ send `[encoded READ3resok head, data, padding]` in one sendmsg
    without copying the data into an encoding.  The buffers must not change
    after the actor returns (a partial write may still be sending them).
    They are kept as given, empty ones too (an empty iovec costs the kernel
    nothing; sifting them out cost every READ a list comprehension).
    """

    __slots__ = ("buffers",)

    def __init__(self, *buffers):
        self.buffers = buffers

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers)


class Request:
    """One call as an actor sees it."""

    __slots__ = ("xid", "prog", "vers", "proc", "args", "caller", "cred_flavor",
                 "machinename", "peer", "local", "transport", "privileged",
                 "program", "proc_spec", "_entry", "_record", "_args_offset",
                 "_conn", "_drc_entry")

    def __init__(self, xid: int, entry: "ProcEntry", creds, peer, local, transport: str,
                 privileged: bool, conn, record, args_offset: int):
        program = entry.program
        self.xid = xid
        self.prog = program.number
        self.vers = program.version
        self.proc = entry.number
        self.args: Any = None
        self.caller = creds.caller
        self.cred_flavor = creds.flavor
        self.machinename = creds.machinename
        self.peer = peer
        self.local = local
        self.transport = transport
        self.privileged = privileged
        self.program: Program = program
        self.proc_spec = entry.spec
        self._entry = entry
        self._record = record
        self._args_offset = args_offset
        self._conn = conn
        self._drc_entry = None

    @property
    def local_port(self) -> int:
        return self.local[1] if self.local else 0

    @property
    def raw_args(self) -> memoryview:
        """The undecoded argument bytes (a view into the received record)."""
        return memoryview(self._record)[self._args_offset:]


class ProcEntry:
    """One served procedure with all the service's call path asks about it:
    its spec (codecs), actor, and whether it is void, inline or non-idempotent.
    Built once by `Program`; the service finds it with one dict lookup per
    call instead of one lookup per question (each a set or dict of the
    Program).  The service counts calls per entry (its `_calls`)."""

    __slots__ = ("program", "number", "spec", "actor", "void_args", "void_results",
                 "inline", "inline_if", "non_idempotent")

    def __init__(self, program: "Program", number: int, actor: "Actor"):
        self.program = program
        self.number = number
        self.spec = program.procs[number]
        self.actor = actor
        self.void_args = number in program.void_args
        self.void_results = number in program.void_results
        self.inline = number in program.inline
        self.inline_if = program.inline_if.get(number)
        self.non_idempotent = number in program.non_idempotent


Actor = Callable[[Request], Any]


def _proc_table(version_spec) -> dict[int, Any]:
    """number -> Proc for a spec version, whether the codec lists procs as a dict or a list."""
    procs = version_spec.procs
    if isinstance(procs, dict):
        return dict(procs)
    return {p.number: p for p in procs}


class Program:
    """One version of one RPC program, served by `RpcService.add_program`.

    spec_program: the codec's program object (`spec.programs["NFS_PROGRAM"]`).
    actors: {procedure number: actor}.  Numbers the spec does not define are
      rejected here; defined ones without an actor answer PROC_UNAVAIL.
    min_auth: the weakest credential flavour accepted (AUTH_TOOWEAK below it).
    non_idempotent: procedure numbers whose replies the duplicate request
      cache keeps, so a retransmission does not run them twice.
    unprivileged: calls from source ports >= 1024 are allowed even when the
      service refuses insecure ports (gnfs's per-actor `unprivileged`).
    peer_check: optional `fn(address) -> bool`; False denies the call with
      AUTH_ERROR/`peer_refusal` (default AUTH_TOOWEAK).
    inline: procedure numbers run on the event thread that read the call,
      as gnfs runs its actors, instead of being handed to a stage thread.
      For quick calls the hand-off (a queue, a wake-up, the GIL changing
      hands twice) cost more than the call: 4 KiB random reads went from
      ~6.4k to ~12k IOPS here.  The price: while an inline call runs, its
      connection is not read and that event thread polls nothing else, so
      only calls that do not wait long belong here.
    inline_if: {procedure number: `fn(record, args_offset) -> bool`}: run the
      call inline when fn, looking at its undecoded arguments, says it is a
      quick one (NFS WRITE: UNSTABLE ones are a page-cache copy, FILE_SYNC
      ones wait for the disk).  fn must not raise; a call it cannot judge
      (short, malformed) goes to the stage, whose decoding answers it.
    """

    def __init__(self, spec_program, version: int, actors: dict[int, Actor],
                 min_auth: int = wire.AUTH_NONE, non_idempotent: Iterable[int] = (),
                 unprivileged: bool = True, peer_check: Callable[[str], bool] | None = None,
                 peer_refusal: int = wire.AUTH_TOOWEAK, name: str | None = None,
                 inline: Iterable[int] = (),
                 inline_if: dict[int, Callable[[Any, int], bool]] | None = None):
        if version not in spec_program.versions:
            raise ValueError(f"{_spec_name(spec_program)} has no version {version}")
        self.spec = spec_program
        self.number = _spec_number(spec_program)
        self.name = name or _spec_name(spec_program)
        self.version = version
        self.procs = _proc_table(spec_program.versions[version])
        unknown = set(actors) - set(self.procs)
        if unknown:
            raise ValueError(f"{self.name} v{version} defines no procedure {sorted(unknown)}")
        self.actors = dict(actors)
        self.min_auth = min_auth
        self.non_idempotent = frozenset(non_idempotent)
        bad = self.non_idempotent - set(self.procs)
        if bad:
            raise ValueError(f"non_idempotent names undefined procedures {sorted(bad)}")
        self.inline = frozenset(inline)
        bad = self.inline - set(self.procs)
        if bad:
            raise ValueError(f"inline names undefined procedures {sorted(bad)}")
        self.inline_if = dict(inline_if or {})
        bad = (set(self.inline_if) - set(self.procs)) | (set(self.inline_if) & self.inline)
        if bad:
            raise ValueError(f"inline_if names undefined or always-inline procedures {sorted(bad)}")
        # Procedures whose arguments / results are XDR void (NULL, at least):
        # the service skips the codec for them.  Its generated decode and
        # encode of "nothing" cost ~1.5 us, a fifth of a NULL call's Python.
        self.void_args = frozenset(n for n, p in self.procs.items() if _is_void(p.arg))
        self.void_results = frozenset(n for n, p in self.procs.items() if _is_void(p.res))
        self.unprivileged = unprivileged
        self.peer_check = peer_check
        self.peer_refusal = peer_refusal
        # number -> ProcEntry of every procedure with an actor (the others are
        # PROC_UNAVAIL); built last, from the tables above, which never change.
        self.entries = {number: ProcEntry(self, number, actor)
                        for number, actor in self.actors.items()}

    def proc_name(self, number: int) -> str:
        proc = self.procs.get(number)
        return proc.name if proc is not None else str(number)

    def __repr__(self) -> str:
        return f"<Program {self.name} ({self.number}) v{self.version}>"


def _is_void(codec) -> bool:
    """Whether a procedure's argument or result codec is XDR void (False if it cannot say)."""
    return getattr(codec, "is_void", False) is True


def _spec_number(spec_program) -> int:
    for attr in ("number", "prog", "value"):
        value = getattr(spec_program, attr, None)
        if isinstance(value, int):
            return value
    raise TypeError(f"cannot find the program number of {spec_program!r}")


def _spec_name(spec_program) -> str:
    return str(getattr(spec_program, "name", spec_program))
