"""The Python classes that hold decoded XDR structs.

One class per struct, built from source like collections.namedtuple does, so
instances are plain __slots__ objects: cheap to create on the decode path and
cheap to read on the encode path.  The encoder only reads attributes, so any
object with the right attribute names can be encoded; these classes are what
decoding returns and what calling a struct codec builds.

A linked-list node (a struct whose last member points to its own type) gets
no attribute for that pointer: the list is a Python list of nodes.
"""
from __future__ import annotations

import keyword


class XdrStruct:
    """Base of every generated struct class: equality and repr by field."""

    __slots__ = ()
    _fields: tuple = ()

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    __hash__ = None        # mutable, like a list

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{self.__class__.__name__}({inner})"

    def _asdict(self) -> dict:
        return {f: getattr(self, f) for f in self._fields}


def make_struct_class(name: str, fields: list[str], module: str) -> type:
    """A subclass of XdrStruct with __slots__ = fields and an __init__ taking
    them positionally or by keyword, in order, all required."""
    for f in fields:
        if not f.isidentifier() or keyword.iskeyword(f):
            raise ValueError(f"bad field name {f!r} for {name}")
    pyname = name + "_" if keyword.iskeyword(name) else name
    params = "".join(f", {f}" for f in fields)
    body = "".join(f"\n        self.{f} = {f}" for f in fields) or "\n        pass"
    src = (f"class {pyname}(XdrStruct):\n"
           f"    __slots__ = {tuple(fields)!r}\n"
           f"    _fields = {tuple(fields)!r}\n"
           f"    def __init__(self{params}):{body}\n")
    namespace = {"XdrStruct": XdrStruct}
    exec(compile(src, f"<xdr struct {name}>", "exec"), namespace)
    cls = namespace[pyname]
    cls.__module__ = module
    cls.__qualname__ = pyname
    return cls
