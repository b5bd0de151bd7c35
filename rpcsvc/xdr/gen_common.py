"""What the pack and decode generators share: the names generated code sees,
precompiled struct formats, and type resolution.

Generated code reaches its helpers as module globals of the exec'd source
(3.11 caches global loads, so they cost about what a local does).  Struct
formats are cached process-wide by format string: fattr3's 17-field run is
one struct.Struct no matter how many codecs inline it.
"""
from __future__ import annotations

import functools
import struct

from . import nodes as N
from .errors import (XdrBadDiscriminant, XdrBadPadding, XdrBadValue,
                     XdrLimitExceeded, XdrShortBuffer)

_STRUCTS: dict[str, struct.Struct] = {}


def struct_for(fmt: str) -> struct.Struct:
    s = _STRUCTS.get(fmt)
    if s is None:
        s = _STRUCTS[fmt] = struct.Struct(">" + fmt)
    return s


@functools.lru_cache(maxsize=512)
def array_packer(code: str, n: int):
    """pack(count, *items) for a counted array of n plain numbers."""
    return struct.Struct(f">I{n}{code}").pack


@functools.lru_cache(maxsize=512)
def array_unpacker(code: str, n: int):
    return struct.Struct(f">{n}{code}").unpack_from


def to_bytes(value) -> bytes:
    """Fixed opaques go through struct's 's' format, which wants bytes."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise XdrBadValue(f"expected bytes, got {type(value).__name__}")


ZPAD = (b"", b"\0\0\0", b"\0\0", b"\0")     # padding after n bytes, by n & 3
PADLEN = (0, 3, 2, 1)
# Prims that go into a struct run with no check of their own: struct.pack
# range-checks them and the wrapper turns struct.error into XdrBadValue.
PLAIN_PRIMS = frozenset(("int", "uint", "hyper", "uhyper", "float", "double"))
INLINE_FIXED_ARRAY_MAX = 64    # larger fixed arrays of numbers: one unpack


class Context:
    """State of one codec's generation: temporaries, globals, recursion."""

    def __init__(self, model, root_name: str):
        self.model = model
        self.root_name = root_name
        self.n = 0
        self.stack: list[N.Node] = []          # named types being expanded
        self._names: dict = {}
        self.globals = {
            "_BadValue": XdrBadValue, "_Short": XdrShortBuffer,
            "_Limit": XdrLimitExceeded, "_BadDisc": XdrBadDiscriminant,
            "_BadPad": XdrBadPadding, "_ZPAD": ZPAD, "_PADLEN": PADLEN,
            "_BOOLS": frozenset((0, 1)), "_TRUE4": b"\0\0\0\1",
            "_tobytes": to_bytes, "_ARRP": array_packer,
            "_ARRU": array_unpacker,
        }

    def tmp(self, prefix: str = "t") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def name_for(self, key, obj, prefix: str) -> str:
        """A global name bound to obj, one per key."""
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self.tmp(prefix)
            self.globals[name] = obj
        return name

    def packer(self, fmt: str) -> str:
        return self.name_for(("pack", fmt), struct_for(fmt).pack, "_P")

    def unpacker(self, fmt: str) -> str:
        return self.name_for(("unpack", fmt), struct_for(fmt).unpack_from, "_U")

    def struct_class(self, node: N.Struct) -> str:
        return self.name_for(("cls", id(node)), node.cls, "_C")

    def value_set(self, values) -> str:
        fs = frozenset(values)
        return self.name_for(("set", fs), fs, "_K")

    def codec_of(self, node: N.Node) -> str:
        codec = self.model.codec_by_node[id(node)]
        return self.name_for(("codec", id(node)), codec, "_R")

    # -- type questions --------------------------------------------------
    def resolve(self, node: N.Node) -> N.Node:
        while isinstance(node, N.Ref):
            node = self.model.types[node.name]
        return node

    def recursive_target(self, node: N.Node):
        """The named type a Ref points to if it is already being expanded."""
        if isinstance(node, N.Ref):
            target = self.resolve(node)
            if target in self.stack:
                return target
        return None

    def list_node(self, node: N.Node):
        """For `T *` where T is a linked-list node struct: T, else None."""
        node = self.resolve(node)
        if isinstance(node, N.Optional):
            elem = self.resolve(node.elem)
            if isinstance(elem, N.Struct) and elem.is_list:
                return elem
        return None

    def list_codec(self, elem: N.Struct) -> str:
        """A list of `elem` met while expanding elem itself (a node holding
        a list of its own kind, through some other member): that inner list
        is coded by a call to a codec for `elem *`, made once per spec."""
        codec = self.model.list_codec(elem)
        return self.name_for(("list", id(elem)), codec, "_R")

    def min_size(self, node: N.Node, seen=()) -> int:
        """The fewest bytes a value of this type takes on the wire."""
        if isinstance(node, N.Ref):
            target = self.resolve(node)
            return 0 if target in seen else self.min_size(target, seen + (target,))
        if isinstance(node, N.Prim):
            return N.Prim.FORMATS[node.kind][1]
        if isinstance(node, N.Void):
            return 0
        if isinstance(node, N.Opaque) and node.fixed:
            return node.size + PADLEN[node.size & 3]
        if isinstance(node, N.Array) and node.fixed:
            return node.size * self.min_size(node.elem, seen)
        if isinstance(node, N.Struct):
            return sum(self.min_size(f.type, seen) for f in node.fields)
        if isinstance(node, N.Union):
            arms = [d for _, d in node.arms] + ([node.default] if node.default else [])
            return 4 + min(self.min_size(d.type, seen) for d in arms)
        return 4       # enum, counted things, optional


def quote(text: str) -> str:
    return repr(text)
