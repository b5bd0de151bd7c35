"""The prefork master's records of its children: generations of workers, and each child.

A generation is the set of workers made from one volfile (one constructed
graph, its sockets, how many workers it wants); a reload makes a new one and
the older is retired once the new one is all up.  A `Child` is one forked
process: a worker of a generation, or the built-in portmapper.
"""
from __future__ import annotations

import signal
import time

from glusterfsd import statedump
from glusterfsd.channel import Channel
from glusterfsd.worker import EXIT_BOOT_ERROR

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
STABLE_UPTIME = 5.0           # a worker that dies younger than this counts towards backoff


class Generation:
    """Workers made from one volfile: a graph, its sockets, its wanted count."""

    def __init__(self, number: int, graph, wanted: int, configured: int):
        self.number = number
        self.graph = graph
        self.top = graph.top
        self.wanted = wanted
        self.configured = configured     # what volfile or --workers asked (TTIN/TTOU aside)
        self.failures: dict[int, int] = {}   # worker number -> boot failures in a row
        self.early_deaths = 0
        self.booted_once = False
        self.last_failure = ""
        self.spawn_after = 0.0

    @property
    def worst(self) -> int:
        return max(self.failures.values(), default=0)

    def backoff(self) -> None:
        level = max(1, self.worst or self.early_deaths)
        self.spawn_after = time.monotonic() + min(BACKOFF_FIRST * 2 ** (level - 1), BACKOFF_MAX)


class Child:
    """The master's record of one child process."""

    def __init__(self, pid: int, channel: Channel, kind: str, number: int = 0,
                 generation: Generation | None = None):
        self.pid, self.channel, self.kind = pid, channel, kind
        self.number, self.generation = number, generation
        self.started = self.last_heard = time.monotonic()
        self.booted_at: float | None = None
        self.retire_by: float | None = None
        self.killed = False
        self.reason = ""
        self.dumps: dict = {}

    @property
    def label(self) -> str:
        if self.kind == "portmapper":
            return f"portmapper (pid {self.pid})"
        return f"worker {self.number}/{self.generation.wanted} (pid {self.pid}, " \
               f"generation {self.generation.number})"


def state_of(child: Child) -> str:
    if child.retire_by is not None:
        return "retiring"
    return "serving" if child.booted_at is not None else "starting"


def describe_exit(code: int, killed_by_us: bool) -> str:
    if code >= 0:
        return f"exited with status {code}" + (" (could not start)"
                                                if code == EXIT_BOOT_ERROR else "")
    name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
    if -code == signal.SIGKILL and not killed_by_us:
        return f"was killed by signal {-code} ({name}; out of memory, or an operator?)"
    return f"was killed by signal {-code} ({name})"


def figures_of(child: Child, reply: dict | None, timeout: float) -> dict:
    """A child's statedump section: who it is, psutil's view of it, and its call count."""
    figures = {"kind": child.kind, "number": child.number,
               "generation": child.generation.number if child.generation else 0,
               "state": state_of(child), "calls": reply.get("calls") if reply else "?"}
    try:
        figures.update(statedump.process_figures(child.pid))
    except Exception as err:            # gone meanwhile
        figures["process-error"] = repr(err)
    if reply is None:
        figures["dump-error"] = f"no answer within {timeout:.0f} s"
    return figures
