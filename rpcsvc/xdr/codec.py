"""Codec: the encoder/decoder of one XDR type, compiled on first use.

A Codec's pack/encode/decode/decode_all are instance attributes holding
plain functions generated from the type (see gen_pack / gen_decode), so
`codec.pack(v, out)` is one direct call with no method dispatch.  Until the
first call they hold stubs that compile the type, which keeps load() cheap:
a process only pays for the types it uses.  `codec.compile()` forces it (a
prefork master can compile before forking so workers share the code).

Error contract:
- encode/pack raise XdrBadValue / XdrLimitExceeded / XdrBadDiscriminant;
  pack() removes whatever it appended to `out` before raising.
- decode/decode_all raise XdrShortBuffer, XdrLimitExceeded, XdrBadPadding,
  XdrBadValue, XdrBadDiscriminant, XdrTrailingData.
"""
from __future__ import annotations

import linecache
import struct
import threading

from . import gen_decode, gen_pack
from . import nodes as N
from .errors import XdrBadValue, XdrError, XdrTrailingData
from .gen_common import Context

_COMPILE_LOCK = threading.RLock()
_ENCODE_ERRORS = (struct.error, TypeError, ValueError, AttributeError,
                  OverflowError, IndexError, KeyError)


def as_buffer(buf):
    """bytes stay bytes; bytearray becomes bytes (decoded opaques are then
    bytes, not views of a buffer the caller may reuse); anything else with
    the buffer protocol becomes a flat byte memoryview (opaques are then
    zero-copy slices of it)."""
    cls = buf.__class__
    if cls is bytes:
        return buf
    if cls is bytearray or isinstance(buf, (bytes, bytearray)):
        return bytes(buf)
    try:
        view = buf if cls is memoryview else memoryview(buf)
    except TypeError:
        raise XdrBadValue(f"cannot decode from {cls.__name__}") from None
    if not view.c_contiguous:
        raise XdrBadValue("cannot decode from a non-contiguous memoryview")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _render(lines, base: int) -> str:
    return "\n".join("    " * (base + ind) + text for ind, text in lines)


_RAW_TEMPLATE = '''\
def raw_pack(v, out):
{pack1}

def raw_decode(buf, off):
    blen = len(buf)
{dec1}
    return {expr}, off
'''

_TEMPLATE = '''\
def pack(v, out):
    start = len(out)
    try:
{pack2}
    except _XdrError:
        del out[start:]
        raise
    except _ENCODE_ERRORS as exc:
        del out[start:]
        raise _BadValue({name!r} + ": " + str(exc)) from exc

def encode(v):
    out = bytearray()
    pack(v, out)
    return bytes(out)

def decode(buf, offset=0):
    if buf.__class__ is not bytes:
        buf = _as_buffer(buf)
    if offset < 0:
        raise _BadValue({name!r} + ": negative offset")
    off = offset
    blen = len(buf)
    try:
{dec2}
    except _StructError as exc:
        raise _Short({name!r} + ": " + str(exc)) from None
    return {expr}, off

def decode_all(buf, offset=0):
    if buf.__class__ is not bytes:
        buf = _as_buffer(buf)
    value, end = decode(buf, offset)
    if end != len(buf):
        raise _Trailing({name!r} + ": %d bytes left after the value" % (len(buf) - end))
    return value
'''

_sources = 0


def build_functions(codec: "Codec", raw: bool) -> dict:
    """Generate, compile and exec a codec's public functions (pack, encode,
    decode, decode_all) or, raw=True, the unwrapped raw_pack/raw_decode
    that recursive types call (those exist only when something needs them:
    each body is a full inline expansion, and compiling costs)."""
    global _sources
    ctx = Context(codec._model, codec.name)
    pack_lines = gen_pack.generate(ctx, codec.node, codec.name)
    dec_lines, expr = gen_decode.generate(ctx, codec.node, codec.name)
    dec_lines = dec_lines or [(0, "pass")]
    src = (_RAW_TEMPLATE if raw else _TEMPLATE).format(
        name=codec.name, expr=expr,
        pack1=_render(pack_lines, 1), pack2=_render(pack_lines, 2),
        dec1=_render(dec_lines, 1), dec2=_render(dec_lines, 2))
    _sources += 1
    filename = f"<xdr {codec._model.module}.{codec.name} #{_sources}>"
    # let tracebacks show the generated lines
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    namespace = dict(ctx.globals)
    namespace.update(_XdrError=XdrError, _ENCODE_ERRORS=_ENCODE_ERRORS,
                     _StructError=struct.error, _as_buffer=as_buffer,
                     _Trailing=XdrTrailingData)
    exec(compile(src, filename, "exec"), namespace)
    namespace["source"] = src
    return namespace


class Codec:
    """Encoder/decoder of one XDR type.  Calling a struct's codec builds a
    value of its class: `nfs3.nfstime3(seconds, nseconds)`."""

    __slots__ = ("name", "node", "_model", "pack", "encode", "decode",
                 "decode_all", "_raw_pack", "_raw_decode", "_compiled",
                 "source")

    def __init__(self, name: str, node: N.Node, model):
        self.name = name
        self.node = node
        self._model = model
        self._compiled = False
        self.source = None
        self.pack = self._first_pack
        self.encode = self._first_encode
        self.decode = self._first_decode
        self.decode_all = self._first_decode_all
        self._raw_pack = self._first_raw_pack
        self._raw_decode = self._first_raw_decode

    def __repr__(self) -> str:
        return f"<Codec {self._model.module}.{self.name}>"

    # -- what the type is ------------------------------------------------
    @property
    def resolved(self) -> N.Node:
        node = self.node
        while isinstance(node, N.Ref):
            node = self._model.types[node.name]
        return node

    @property
    def is_void(self) -> bool:
        """True for `void` (a procedure without arguments or results)."""
        return isinstance(self.resolved, N.Void)

    @property
    def cls(self):
        """The value class of a struct type, else None."""
        node = self.resolved
        return node.cls if isinstance(node, N.Struct) else None

    @property
    def fields(self) -> tuple:
        cls = self.cls
        return cls._fields if cls is not None else ()

    @property
    def members(self) -> dict:
        """name -> value of an enum type ({} for other types)."""
        node = self.resolved
        if not isinstance(node, N.Enum):
            return {}
        return {name: self._model.consts[name] for name, _ in node.members}

    @property
    def names(self) -> dict:
        """value -> name of an enum type (first name wins), for logging."""
        out = {}
        for name, value in self.members.items():
            out.setdefault(value, name)
        return out

    def __call__(self, *args, **kwargs):
        cls = self.cls
        if cls is None:
            raise TypeError(f"{self.name} is not a struct; its values are "
                            "plain Python values")
        return cls(*args, **kwargs)

    # -- compilation -----------------------------------------------------
    def compile(self) -> "Codec":
        if self._compiled:
            return self
        with _COMPILE_LOCK:
            if not self._compiled:
                fns = build_functions(self, raw=False)
                self.source = fns["source"]
                self.pack = fns["pack"]
                self.encode = fns["encode"]
                self.decode = fns["decode"]
                self.decode_all = fns["decode_all"]
                self._compiled = True
        return self

    def _compile_raw(self) -> "Codec":
        with _COMPILE_LOCK:
            if self._raw_pack == self._first_raw_pack:
                fns = build_functions(self, raw=True)
                self._raw_decode = fns["raw_decode"]
                self._raw_pack = fns["raw_pack"]
        return self

    def _first_pack(self, v, out):
        return self.compile().pack(v, out)

    def _first_encode(self, v):
        return self.compile().encode(v)

    def _first_decode(self, buf, offset=0):
        return self.compile().decode(buf, offset)

    def _first_decode_all(self, buf, offset=0):
        return self.compile().decode_all(buf, offset)

    def _first_raw_pack(self, v, out):
        return self._compile_raw()._raw_pack(v, out)

    def _first_raw_decode(self, buf, off):
        return self._compile_raw()._raw_decode(buf, off)
