"""From parsed .x definitions to a Spec: the namespace other modules use.

Building a Spec resolves every constant (constants may name other constants,
enum members or procedures, declared before or after), checks every type
reference, size and union case, marks linked-list structs, makes the value
classes and one Codec per named type, and the program tables.  Codegen is
deferred to each codec's first use.

`load(name)` reads rpcsvc/xdr/<name>.x once per process.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import NamedTuple

from . import nodes as N
from .codec import Codec
from .errors import XdrDefinitionError
from .values import make_struct_class
from .xparser import parse

XDR_DIR = Path(__file__).resolve().parent
_BUILTIN_CONSTS = {"TRUE": 1, "FALSE": 0}
_RESERVED = frozenset(("programs", "types", "consts", "compile_all"))
_UINT_MAX = 0xFFFFFFFF


class Proc(NamedTuple):
    name: str
    number: int
    arg: Codec
    res: Codec


class Version(NamedTuple):
    name: str
    number: int
    procs: dict          # number -> Proc


class Program(NamedTuple):
    name: str
    number: int
    versions: dict       # number -> Version


class Spec:
    """One .x file: constants and enum members as ints, a Codec per type,
    and `programs` (name -> Program).  `types` and `consts` are the same
    codecs and ints as dicts."""

    def __init__(self, name: str):
        self._name = name
        self.programs: dict[str, Program] = {}
        self.types: dict[str, Codec] = {}
        self.consts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<xdr spec {self._name}: {len(self.types)} types, {len(self.programs)} programs>"

    def compile_all(self) -> "Spec":
        for codec in self.types.values():
            codec.compile()
        for prog in self.programs.values():
            for ver in prog.versions.values():
                for proc in ver.procs.values():
                    proc.arg.compile()
                    proc.res.compile()
        return self


class Model:
    """What codecs of one spec share: the type table and constants."""

    def __init__(self, module: str):
        self.module = module
        self.types: dict[str, N.Node] = {}
        self.consts: dict[str, int] = {}
        self.codec_by_node: dict[int, Codec] = {}
        self._list_codecs: dict[int, Codec] = {}

    def list_codec(self, elem: N.Struct) -> Codec:
        """The codec of `elem *` (a list of elem), for lists nested in elem."""
        codec = self._list_codecs.get(id(elem))
        if codec is None:
            node = N.Optional(elem=N.Ref(name=elem.name))
            codec = self._list_codecs[id(elem)] = Codec(elem.name + " *", node, self)
        return codec


class _Builder:
    def __init__(self, defs: N.Definitions, name: str):
        self.defs = defs
        self.file = defs.filename
        self.model = Model(name)
        self.model.types = defs.types
        self._resolving: set = set()
        self._seen: set = set()
        self._anonymous: dict[str, Codec] = {}

    def fail(self, message: str, line: int = 0):
        raise XdrDefinitionError(message, f"{self.file}:{line}" if line else self.file)

    # -- constants ---------------------------------------------------------
    def const(self, name: str, line: int) -> int:
        consts = self.model.consts
        if name in consts:
            return consts[name]
        if name in _BUILTIN_CONSTS:
            return _BUILTIN_CONSTS[name]
        if name not in self.defs.consts:
            what = "a type, not a constant" if name in self.defs.types else "not defined"
            self.fail(f"{name!r} is {what}", line)
        if name in self._resolving:
            self.fail(f"constant {name!r} is defined in terms of itself", line)
        self._resolving.add(name)
        value, at = self.defs.consts[name]
        consts[name] = result = self.value(value, at)
        self._resolving.discard(name)
        return result

    def value(self, value, line: int) -> int:
        if isinstance(value, int):
            return value
        if isinstance(value, tuple):                 # implicit enum: previous + 1
            return self.const(value[0], line) + value[1]
        return self.const(value, line)

    def size(self, value, line: int, what: str):
        if value is None:
            return None
        n = self.value(value, line)
        if not 0 <= n <= _UINT_MAX:
            self.fail(f"{what} size {n} is out of range", line)
        return n

    # -- types -------------------------------------------------------------
    def resolve(self, node: N.Node, line: int) -> N.Node:
        hops = 0
        while isinstance(node, N.Ref):
            if node.name not in self.defs.types:
                what = ("a constant, not a type" if node.name in self.defs.consts
                        else "not a defined type")
                self.fail(f"{node.name!r} is {what}", node.line or line)
            node = self.defs.types[node.name]
            hops += 1
            if hops > len(self.defs.types):
                self.fail("typedefs refer to each other in a circle", line)
        return node

    def check(self, node: N.Node, line: int = 0):
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        line = node.line or line
        if isinstance(node, N.Ref):
            self.resolve(node, line)
        elif isinstance(node, N.Enum):
            values = []
            for member, _ in node.members:
                v = self.const(member, line)
                if not -0x80000000 <= v <= 0x7FFFFFFF:
                    self.fail(f"enum value {member} = {v} does not fit in 32 bits", line)
                values.append(v)
            node.values = frozenset(values)
        elif isinstance(node, (N.Opaque, N.String)):
            node.size = self.size(node.size, line, "opaque/string")
        elif isinstance(node, N.Array):
            node.size = self.size(node.size, line, "array")
            if node.fixed and node.size is None:         # pragma: no cover
                self.fail("fixed array without a size", line)
            self.check(node.elem, line)
        elif isinstance(node, N.Optional):
            self.check(node.elem, line)
        elif isinstance(node, N.Struct):
            for f in node.fields:
                self.check(f.type, f.line)
        elif isinstance(node, N.Union):
            self.check_union(node, line)

    def check_union(self, node: N.Union, line: int):
        self.check(node.disc.type, line)
        disc = self.resolve(node.disc.type, line)
        if isinstance(disc, N.Enum):
            self.check(disc, line)
            allowed = disc.values
        elif isinstance(disc, N.Prim) and disc.kind in ("int", "uint", "bool"):
            allowed = {"bool": frozenset((0, 1)), "int": range(-2 ** 31, 2 ** 31),
                       "uint": range(0, 2 ** 32)}[disc.kind]
        else:
            self.fail(f"union {node.name}: discriminant must be int, unsigned int, "
                      "bool or an enum", line)
        seen, arms = set(), []
        for values, decl in node.arms:
            ints = []
            for v in values:
                n = self.value(v, decl.line or line)
                if n in seen:
                    self.fail(f"union {node.name}: case {v} appears twice", decl.line or line)
                if n not in allowed:
                    self.fail(f"union {node.name}: case {v} is not a value of the "
                              "discriminant's type", decl.line or line)
                seen.add(n)
                ints.append(n)
            arms.append((ints, decl))
            self.check(decl.type, decl.line or line)
        node.arms = arms
        if node.default is not None:
            self.check(node.default.type, line)

    def mark_list(self, node: N.Struct):
        """A linked-list node: its LAST member, and only that one, is a
        pointer to the struct itself (entry3 *nextentry, mountlist ml_next)."""
        def points_back(decl) -> bool:
            t = self.resolve(decl.type, decl.line)
            return isinstance(t, N.Optional) and self.resolve(t.elem, decl.line) is node
        node.is_list = (points_back(node.fields[-1])
                        and not any(points_back(f) for f in node.fields[:-1]))

    # -- the whole spec ----------------------------------------------------
    def build(self) -> Spec:
        name = self.model.module
        for cname, (_, line) in self.defs.consts.items():
            self.const(cname, line)
        for node in self.defs.types.values():
            self.check(node)
        for prog in self.defs.programs:
            for ver in prog.versions:
                for proc in ver.procs:
                    self.check(proc.arg, proc.line)
                    self.check(proc.res, proc.line)
        structs = [n for n in self.defs.types.values() if isinstance(n, N.Struct)]
        for node in structs:
            self.mark_list(node)
        module = f"rpcsvc.xdr.{name}"
        for node in structs:
            fields = [f.attr for f in (node.fields[:-1] if node.is_list else node.fields)]
            node.cls = make_struct_class(node.name, fields, module)

        spec = Spec(name)
        spec.consts = dict(self.model.consts)
        for tname, node in self.defs.types.items():
            codec = Codec(tname, node, self.model)
            spec.types[tname] = codec
            if isinstance(node, (N.Struct, N.Union, N.Enum)) and node.name == tname:
                self.model.codec_by_node[id(node)] = codec
        for node in self.defs.types.values():        # `typedef struct {..} T`
            if isinstance(node, (N.Struct, N.Union, N.Enum)):
                self.model.codec_by_node.setdefault(id(node), spec.types[node.name])
        for prog in self.defs.programs:
            spec.programs[prog.name] = self.program(prog, spec)
        for attr, value in list(spec.consts.items()) + list(spec.types.items()):
            if attr in _RESERVED:
                self.fail(f"{attr!r} is reserved in a Spec; rename it")
            setattr(spec, attr, value)
        return spec

    def program(self, prog: N.ProgramDef, spec: Spec) -> Program:
        versions = {}
        for ver in prog.versions:
            vnum = self.value(ver.number, ver.line)
            if vnum in versions:
                self.fail(f"program {prog.name}: version {vnum} defined twice", ver.line)
            procs = {}
            for proc in ver.procs:
                pnum = self.value(proc.number, proc.line)
                if pnum in procs:
                    self.fail(f"{ver.name}: procedure number {pnum} used twice", proc.line)
                procs[pnum] = Proc(proc.name, pnum, self.codec_for(proc.arg, spec),
                                   self.codec_for(proc.res, spec))
            versions[vnum] = Version(ver.name, vnum, procs)
        return Program(prog.name, self.value(prog.number, prog.line), versions)

    def codec_for(self, node: N.Node, spec: Spec) -> Codec:
        if isinstance(node, N.Ref):
            return spec.types[node.name]
        key = _spelling(node)
        exact = isinstance(node, (N.Void, N.Prim)) or (
            isinstance(node, N.String) and node.size is None)
        if not exact:
            return Codec(key, node, self.model)
        codec = self._anonymous.get(key)
        if codec is None:
            codec = self._anonymous[key] = Codec(key, node, self.model)
        return codec


def _spelling(node: N.Node) -> str:
    if isinstance(node, N.Void):
        return "void"
    if isinstance(node, N.Prim):
        return N.Prim.SPELLING[node.kind]
    if isinstance(node, N.String):
        return "string<>"
    if isinstance(node, N.Optional) and isinstance(node.elem, N.Ref):
        return node.elem.name + " *"
    return type(node).__name__.lower()


def build(text: str, name: str, filename: str | None = None) -> Spec:
    """A Spec from .x source text (not cached)."""
    return _Builder(parse(text, filename or f"<{name}>"), name).build()


_CACHE: dict[str, Spec] = {}
_LOAD_LOCK = threading.Lock()
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


def load(name: str) -> Spec:
    """The Spec of rpcsvc/xdr/<name>.x, parsed once per process."""
    spec = _CACHE.get(name)
    if spec is not None:
        return spec
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise XdrDefinitionError(f"bad spec name {name!r}")
    with _LOAD_LOCK:
        spec = _CACHE.get(name)
        if spec is None:
            path = XDR_DIR / f"{name}.x"
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise XdrDefinitionError(f"no XDR definition file {name}.x in {XDR_DIR}") from None
            spec = _CACHE[name] = build(text, name, str(path))
    return spec
