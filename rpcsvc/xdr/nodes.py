"""The type tree a .x file parses into.

Nodes are compared by identity (eq=False): the code generator keeps a set of
the named types it is currently expanding to spot recursion, and two
structurally equal structs are still two different types.

Sizes, maxima, enum values and case labels are written in a .x file as a
number or a constant's name (`opaque data<NFS3_FHSIZE>`, `= RPCBPROC_CALLIT`);
the parser stores what it read (int or str) and spec building replaces each
with its int once every constant is known, because a constant may be
declared after its first use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional as _Opt, Union as _U

Value = _U[int, str]          # a literal, or the name of a constant


@dataclass(eq=False)
class Node:
    line: int = 0


@dataclass(eq=False)
class Prim(Node):
    """int, unsigned int, hyper, unsigned hyper, float, double or bool."""
    kind: str = "int"

    # struct format character and wire size of each kind
    FORMATS = {"int": ("i", 4), "uint": ("I", 4), "hyper": ("q", 8),
               "uhyper": ("Q", 8), "float": ("f", 4), "double": ("d", 8),
               "bool": ("I", 4)}
    SPELLING = {"int": "int", "uint": "unsigned int", "hyper": "hyper",
                "uhyper": "unsigned hyper", "float": "float",
                "double": "double", "bool": "bool"}


@dataclass(eq=False)
class Void(Node):
    pass


@dataclass(eq=False)
class Ref(Node):
    """A use of a type by name; resolved lazily so order does not matter."""
    name: str = ""


@dataclass(eq=False)
class Enum(Node):
    name: str = ""
    members: list = field(default_factory=list)    # [(name, Value)]
    values: frozenset = frozenset()                 # filled at spec build


@dataclass(eq=False)
class Decl:
    """One declaration: a struct field, a union arm, a typedef."""
    name: _Opt[str]
    type: Node
    line: int = 0
    attr: str = ""           # the Python attribute name (keywords get a '_')


@dataclass(eq=False)
class Struct(Node):
    name: str = ""
    fields: list = field(default_factory=list)      # [Decl]
    cls: type = None                                # value class, set at build
    is_list: bool = False     # last member points to this type: a linked list


@dataclass(eq=False)
class Union(Node):
    name: str = ""
    disc: Decl = None
    arms: list = field(default_factory=list)        # [([Value], Decl)]
    default: _Opt[Decl] = None


@dataclass(eq=False)
class Opaque(Node):
    fixed: bool = False
    size: _Opt[Value] = None      # fixed length, or maximum (None: no maximum)


@dataclass(eq=False)
class String(Node):
    size: _Opt[Value] = None      # maximum, None: no maximum


@dataclass(eq=False)
class Array(Node):
    elem: Node = None
    fixed: bool = False
    size: _Opt[Value] = None


@dataclass(eq=False)
class Optional(Node):
    """`T *name`: a bool followed by T when it is TRUE."""
    elem: Node = None


@dataclass(eq=False)
class ProcDef:
    name: str
    number: Value
    arg: Node
    res: Node
    line: int = 0


@dataclass(eq=False)
class VersionDef:
    name: str
    number: Value
    procs: list = field(default_factory=list)
    line: int = 0


@dataclass(eq=False)
class ProgramDef:
    name: str
    number: Value
    versions: list = field(default_factory=list)
    line: int = 0


@dataclass(eq=False)
class Definitions:
    """Everything one .x file declares, in declaration order."""
    filename: str = "<source>"
    consts: dict = field(default_factory=dict)      # name -> (Value, line)
    types: dict = field(default_factory=dict)       # name -> Node
    programs: list = field(default_factory=list)    # [ProgramDef]
