"""Generates the body of a pack(v, out) function for one type.

The body appends v's encoding to the bytearray `out`.  Consecutive
fixed-size items (numbers, enums, bools, 4-aligned fixed opaques, the length
word of a string, a union's discriminant, an optional's or list's flag) are
collected into a "run" and written by ONE precompiled struct.pack call, so
fattr3, or `cookie + TRUE + fattr3` inside a READDIRPLUS entry, is a single
C call.  A run pending before a union or optional is copied into each branch
so the discriminant and the arm's first fields join it.

Nested types are expanded inline: no per-field or per-struct function calls.
Linked lists are loops.  The one exception is a type that refers back to
itself other than through a list's last member (a tree, a list node holding
a list of its own kind): that inner reference calls a codec, since inlining
it would never end.
"""
from __future__ import annotations

from . import nodes as N
from .gen_common import INLINE_FIXED_ARRAY_MAX, PLAIN_PRIMS, Context


class PackGen:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.lines: list[tuple[int, str]] = []

    def line(self, ind: int, text: str):
        self.lines.append((ind, text))

    def flush(self, run: list, ind: int):
        if run:
            fmt = "".join(f for f, _ in run)
            args = ", ".join(a for _, a in run)
            self.line(ind, f"out += {self.ctx.packer(fmt)}({args})")
            run.clear()

    def bind(self, expr: str, ind: int, prefix: str = "t") -> str:
        """A local name holding expr (expr itself if it already is one)."""
        if expr.isidentifier():
            return expr
        name = self.ctx.tmp(prefix)
        self.line(ind, f"{name} = {expr}")
        return name

    def fail(self, ind: int, exc: str, message: str, *values: str):
        args = f" % ({', '.join(values)},)" if values else ""
        self.line(ind, f"raise {exc}({message!r}{args})")

    # -- dispatch ----------------------------------------------------------
    def emit(self, node: N.Node, expr: str, run: list, ind: int, path: str):
        target = self.ctx.recursive_target(node)
        if target is not None:
            self.flush(run, ind)
            self.line(ind, f"{self.ctx.codec_of(target)}._raw_pack({expr}, out)")
            return
        node = self.ctx.resolve(node)
        kind = type(node)
        if kind is N.Prim:
            self.prim(node, expr, run, ind, path)
        elif kind is N.Enum:
            e = self.bind(expr, ind)
            self.line(ind, f"if {e} not in {self.ctx.value_set(node.values)}:")
            self.fail(ind + 1, "_BadValue", f"{path}: %r is not a value of enum {node.name}", e)
            run.append(("i", e))
        elif kind is N.Void:
            self.line(ind, f"if {expr} is not None:")
            self.fail(ind + 1, "_BadValue", f"{path}: void arm takes None, not %r", expr)
        elif kind is N.Opaque and node.fixed:
            self.fixed_opaque(node, expr, run, ind, path)
        elif kind is N.Opaque or kind is N.String:
            self.counted_bytes(node, expr, run, ind, path)
        elif kind is N.Array:
            self.array(node, expr, run, ind, path)
        elif kind is N.Optional:
            self.optional(node, expr, run, ind, path)
        elif kind is N.Struct:
            self.struct(node, expr, run, ind, path)
        elif kind is N.Union:
            self.union(node, expr, run, ind, path)
        else:                                            # pragma: no cover
            raise AssertionError(f"unknown node {node!r}")

    # -- leaves --------------------------------------------------------------
    def prim(self, node, expr, run, ind, path):
        fmt = N.Prim.FORMATS[node.kind][0]
        if node.kind == "bool":
            b = self.bind(expr, ind)
            self.line(ind, f"if {b} not in _BOOLS:")
            self.fail(ind + 1, "_BadValue", f"{path}: bool must be True/False (0/1), not %r", b)
            run.append((fmt, b))
        else:
            run.append((fmt, expr))

    def fixed_opaque(self, node, expr, run, ind, path):
        size = node.size
        o = self.bind(expr, ind, "o")
        if size % 4 == 0:
            # joins the run through struct's 's' format, which wants bytes
            self.line(ind, f"if {o}.__class__ is not bytes: {o} = _tobytes({o})")
        self.line(ind, f"if len({o}) != {size}:")
        self.fail(ind + 1, "_BadValue", f"{path}: fixed opaque needs {size} bytes, got %d",
                  f"len({o})")
        if size % 4 == 0:
            run.append((f"{size}s", o))
        else:
            self.flush(run, ind)
            pad = bytes(-size % 4)
            self.line(ind, f"out += {o}")
            self.line(ind, f"out += {pad!r}")

    def counted_bytes(self, node, expr, run, ind, path):
        o = self.bind(expr, ind, "o")
        n = self.ctx.tmp("n")
        # len() of a memoryview counts items, not bytes: flatten odd formats
        self.line(ind, f"if {o}.__class__ is memoryview and {o}.itemsize != 1: {o} = {o}.cast('B')")
        self.line(ind, f"{n} = len({o})")
        if node.size is not None:
            self.line(ind, f"if {n} > {node.size}:")
            what = "string" if isinstance(node, N.String) else "opaque"
            self.fail(ind + 1, "_Limit", f"{path}: {what} of %d bytes exceeds its maximum {node.size}", n)
        run.append(("I", n))
        self.flush(run, ind)
        self.line(ind, f"out += {o}")
        self.line(ind, f"if {n} & 3: out += _ZPAD[{n} & 3]")

    # -- containers ----------------------------------------------------------
    def array(self, node, expr, run, ind, path):
        elem = self.ctx.resolve(node.elem)
        plain = isinstance(elem, N.Prim) and elem.kind in PLAIN_PRIMS
        code = N.Prim.FORMATS[elem.kind][0] if plain else ""
        a = self.bind(expr, ind, "a")
        if node.fixed:
            self.line(ind, f"if len({a}) != {node.size}:")
            self.fail(ind + 1, "_BadValue", f"{path}: fixed array needs {node.size} items, got %d",
                      f"len({a})")
            if plain and node.size <= INLINE_FIXED_ARRAY_MAX:
                if node.size:
                    run.append((f"{node.size}{code}", f"*{a}"))
                return
            if plain:
                self.flush(run, ind)
                self.line(ind, f"out += {self.ctx.packer(f'{node.size}{code}')}(*{a})")
                return
        else:
            n = self.ctx.tmp("n")
            self.line(ind, f"{n} = len({a})")
            if node.size is not None:
                self.line(ind, f"if {n} > {node.size}:")
                self.fail(ind + 1, "_Limit", f"{path}: array of %d items exceeds its maximum {node.size}", n)
            if plain:
                self.flush(run, ind)
                self.line(ind, f"out += _ARRP({code!r}, {n})({n}, *{a})")
                return
            run.append(("I", n))
        self.flush(run, ind)
        e = self.ctx.tmp("e")
        self.line(ind, f"for {e} in {a}:")
        body: list = []
        self.emit(node.elem, e, body, ind + 1, path + "[]")
        self.flush(body, ind + 1)

    def optional(self, node, expr, run, ind, path):
        elem = self.ctx.list_node(node)
        if elem is not None:
            self.linked_list(elem, expr, run, ind, path, by_value=False)
            return
        o = self.bind(expr, ind, "o")
        self.line(ind, f"if {o} is None:")
        absent = run + [("I", "0")]
        self.flush(absent, ind + 1)
        self.line(ind, "else:")
        present = run + [("I", "1")]
        self.emit(node.elem, o, present, ind + 1, path)
        self.flush(present, ind + 1)
        run.clear()

    def struct(self, node, expr, run, ind, path):
        if node.is_list:
            self.linked_list(node, expr, run, ind, path, by_value=True)
            return
        s = self.bind(expr, ind, "s")
        self.ctx.stack.append(node)
        for f in node.fields:
            self.emit(f.type, f"{s}.{f.attr}", run, ind, f"{path}.{f.name}")
        self.ctx.stack.pop()

    def linked_list(self, elem, expr, run, ind, path, by_value: bool):
        """TRUE e1 TRUE e2 ... FALSE, from a Python list, in a loop.

        by_value: the node struct itself (not a pointer to it), so the list
        must have at least one node and the first gets no TRUE before it."""
        self.flush(run, ind)
        if not by_value and elem in self.ctx.stack:
            self.line(ind, f"{self.ctx.list_codec(elem)}._raw_pack({expr}, out)")
            return
        lst = self.bind(expr, ind, "l")
        e = self.ctx.tmp("e")
        if by_value:
            self.line(ind, f"if not len({lst}):")
            self.fail(ind + 1, "_BadValue", f"{path}: a {elem.name} value is a non-empty list")
            i = self.ctx.tmp("i")
            self.line(ind, f"for {i}, {e} in enumerate({lst}):")
            self.line(ind + 1, f"if {i}: out += _TRUE4")
            body: list = []
        else:
            self.line(ind, f"for {e} in {lst}:")
            body = [("I", "1")]
        self.ctx.stack.append(elem)
        for f in elem.fields[:-1]:
            self.emit(f.type, f"{e}.{f.attr}", body, ind + 1, f"{path}[].{f.name}")
        self.ctx.stack.pop()
        self.flush(body, ind + 1)
        run.append(("I", "0"))

    def union(self, node, expr, run, ind, path):
        ctx = self.ctx
        disc_node = ctx.resolve(node.disc.type)
        fmt = "i" if isinstance(disc_node, N.Enum) or disc_node.kind == "int" else "I"
        d, a = ctx.tmp("d"), ctx.tmp("a")
        self.line(ind, f"{d}, {a} = {expr}")
        for i, (values, decl) in enumerate(node.arms):
            cond = (f"{d} == {values[0]}" if len(values) == 1
                    else f"{d} in {ctx.value_set(values)}")
            self.line(ind, f"{'if' if i == 0 else 'elif'} {cond}:")
            branch = run + [(fmt, d)]
            self.emit(decl.type, a, branch, ind + 1, f"{path}.{decl.name or 'void'}")
            self.flush(branch, ind + 1)
        inner = ind
        if node.arms:
            self.line(ind, "else:")
            inner = ind + 1
        self.disc_check(disc_node, d, inner, path)
        if node.default is not None:
            branch = run + [(fmt, d)]
            self.emit(node.default.type, a, branch, inner, f"{path}.{node.default.name or 'default'}")
            self.flush(branch, inner)
        else:
            self.fail(inner, "_BadDisc", f"{path}: no arm for discriminant %r", d)
        run.clear()

    def disc_check(self, disc_node, d, ind, path):
        if isinstance(disc_node, N.Enum):
            self.line(ind, f"if {d} not in {self.ctx.value_set(disc_node.values)}:")
            self.fail(ind + 1, "_BadValue", f"{path}: %r is not a value of enum {disc_node.name}", d)
        elif disc_node.kind == "bool":
            self.line(ind, f"if {d} not in _BOOLS:")
            self.fail(ind + 1, "_BadValue", f"{path}: bool discriminant must be 0/1, not %r", d)


def generate(ctx: Context, node: N.Node, path: str) -> list[tuple[int, str]]:
    gen = PackGen(ctx)
    run: list = []
    gen.emit(node, "v", run, 0, path)
    gen.flush(run, 0)
    if not gen.lines:
        gen.line(0, "pass")
    return gen.lines
