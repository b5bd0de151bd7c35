"""Build a graph of xlators from a volfile, validate it, and run its lifecycle.

Order matters as in GlusterFS: every option is checked against its xlator's
table *before* any xlator is initialised, so a typo stops the daemon with
`FILE:LINE: ...` and nothing is bound or opened.  Then `init` runs children
first, `parent-up` travels down from the top, and `fini` runs top first.

A reload compares the new volfile with the running graph: same topology
(names, types, subvolumes) means only options changed and each xlator's
`reconfigure` gets what changed; anything else needs a new graph.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from glusterfsd import log as gflog
from glusterfsd.options import OptionError
from glusterfsd.volfile import Volfile, VolfileError, parse_file
from glusterfsd.xlator import EVENT_PARENT_UP, Xlator, lookup_type

logger = gflog.get_logger("graph")


@dataclass
class XlatorOverride:
    """One `--xlator-option XL.KEY=VALUE` from the command line."""

    xlator: str
    key: str
    value: str

    @classmethod
    def parse(cls, text: str) -> "XlatorOverride":
        name_key, sep, value = text.partition("=")
        xlator, dot, key = name_key.partition(".")
        if not sep or not dot or not xlator or not key:
            raise ValueError(f"--xlator-option '{text}' is not of the form XLATOR.KEY=VALUE")
        return cls(xlator, key, value)


class Graph:
    """A constructed (and later initialised) xlator graph."""

    _next_id = 0

    def __init__(self, volfile: Volfile, xlators: dict[str, Xlator]):
        self.volfile = volfile
        self.xlators = xlators  # declaration order
        self.top = xlators[volfile.top.name]
        self.checksum = hashlib.sha256(volfile.text.encode()).hexdigest()
        Graph._next_id += 1
        self.id = Graph._next_id - 1
        self.initialised: list[Xlator] = []
        for xl in xlators.values():
            xl.graph_id = self.id
            xl.log = gflog.get_logger(xl.name, self.id)

    # --- construction ---------------------------------------------------
    @classmethod
    def construct(cls, volfile: Volfile, overrides: list[XlatorOverride] = ()) -> "Graph":
        """Instantiate and validate every xlator; raises VolfileError."""
        given = {decl.name: dict(decl.options) for decl in volfile.volumes}
        for override in overrides:
            if override.xlator not in given:
                raise VolfileError(volfile.path, 0, f"--xlator-option names '{override.xlator}', "
                                   "which is not a volume of this volfile", override.key)
            given[override.xlator][override.key] = override.value
        overridden = {(o.xlator, o.key) for o in overrides}
        xlators: dict[str, Xlator] = {}
        for decl in volfile.volumes:
            try:
                kind = lookup_type(decl.type)
            except LookupError as err:
                raise VolfileError(volfile.path, decl.type_line, f"volume '{decl.name}': {err}") from None
            low, high = kind.children_range
            count = len(decl.subvolumes)
            if count < low or (high is not None and count > high):
                want = f"exactly {low}" if low == high else (f"at least {low}" if high is None
                                                           else f"{low} to {high}")
                raise VolfileError(volfile.path, decl.subvolumes_line or decl.line,
                                   f"volume '{decl.name}' ({decl.type}) takes {want} subvolume(s), "
                                   f"found {count}")
            try:
                values = kind.option_table().validate(given[decl.name])
            except OptionError as err:
                if (decl.name, err.key) in overridden:
                    line, where = 0, f"--xlator-option {decl.name}.{err.key}"
                else:
                    line = decl.option_lines.get(err.key, 0)
                    where = f"option '{err.key}' of volume '{decl.name}'"
                raise VolfileError(volfile.path, line, f"{where}: {err.message}", err.key) from None
            children = [xlators[name] for name in decl.subvolumes]
            xlators[decl.name] = kind(decl.name, values, children)
        graph = cls(volfile, xlators)
        graph._check(volfile)
        return graph

    @classmethod
    def from_file(cls, path: str, overrides: list[XlatorOverride] = ()) -> "Graph":
        return cls.construct(parse_file(path), overrides)

    def _check(self, volfile: Volfile) -> None:
        """Cross-option checks each xlator defines (`check()`), with line numbers."""
        for name, xl in self.xlators.items():
            checker = getattr(xl, "check", None)
            if checker is None:
                continue
            try:
                checker()
            except OptionError as err:
                decl = volfile.volume(name)
                line = decl.option_lines.get(err.key, decl.line)
                raise VolfileError(volfile.path, line, f"volume '{name}': {err.message}", err.key) from None

    # --- lifecycle ------------------------------------------------------
    def init(self) -> None:
        """init() children first; on failure, fini what was initialised and re-raise."""
        for xl in self.xlators.values():  # declaration order is children first
            try:
                xl.init()
            except Exception:
                self.fini()
                raise
            self.initialised.append(xl)
        logger.info("graph %d initialised (top: %s)", self.id, self.top.name)

    def activate(self) -> None:
        """Send parent-up down the graph: storage announces child-up in return."""
        self.top.notify(EVENT_PARENT_UP, None)

    def fini(self) -> None:
        while self.initialised:
            xl = self.initialised.pop()
            try:
                xl.fini()
            except Exception:  # fini must not stop the others
                xl.log.exception("fini failed")

    # --- reload ---------------------------------------------------------
    def topology(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(xl.name, xl.type_name, tuple(c.name for c in xl.children))
                for xl in self.xlators.values()]

    def same_topology(self, other: "Graph") -> bool:
        return self.topology() == other.topology()

    def reconfigure_from(self, other: "Graph") -> dict[str, dict[str, Any]]:
        """Apply to this running graph the options of `other` (same topology).

        Returns {xlator: {key: new value}} for what changed; an option the new
        volfile dropped goes back to its default.
        """
        changes: dict[str, dict[str, Any]] = {}
        for name, xl in self.xlators.items():
            new = other.xlators[name]
            changed = {k: v for k, v in new.opts.items() if xl.opts.get(k) != v}
            table = xl.option_table()
            for key in xl.opts.keys() - new.opts.keys():  # dropped `*` keys go back to default
                opt = table.lookup(key)
                changed[key] = opt.default_value() if opt else None
            if changed:
                xl.reconfigure(changed)
                xl.given = dict(new.given)
                changes[name] = changed
                xl.log.info("reconfigured: %s", ", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
        self.volfile = other.volfile
        self.checksum = other.checksum
        return changes

    def dump(self) -> dict[str, dict[str, Any]]:
        """Per-xlator statedump sections."""
        sections = {}
        for name, xl in self.xlators.items():
            section = {"type": xl.type_name}
            section.update({f"option.{k}": v for k, v in sorted(xl.given.items())})
            try:
                section.update(xl.dump_private())
            except Exception as err:  # a dump must never kill the daemon
                section["dump-error"] = repr(err)
            sections[name] = section
        return sections
