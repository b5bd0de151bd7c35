"""Generates the body of a decode(buf, off) function for one type.

Mirror of gen_pack: fixed-size items are gathered into a run and read by one
precompiled struct.unpack_from; a run is read ("flushed") as soon as a value
in it decides what comes next (a length, a discriminant, a flag).  Checks on
values read in a run (bool is 0/1, enum value declared) follow the read.

Each emit() returns a Python EXPRESSION for the decoded value; struct values
are built by one constructor call over the variables of their fields, so the
expression is only evaluated after the runs holding those variables have
been read.  Every statement that uses an expression comes after a flush.

The generated code reads `buf`, `off` (advanced as it goes) and `blen`
(len(buf)).  struct.error from a short buffer propagates to the wrapper,
which turns it into XdrShortBuffer; lengths read from the wire are checked
against the declared maximum BEFORE anything is sliced or allocated.
"""
from __future__ import annotations

from . import nodes as N
from .gen_common import INLINE_FIXED_ARRAY_MAX, PLAIN_PRIMS, Context, struct_for


class Run:
    __slots__ = ("items", "checks")

    def __init__(self):
        self.items: list[tuple[str, str]] = []      # (format, target names)
        self.checks: list[tuple[int, str]] = []     # lines to run after reading


class DecodeGen:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.lines: list[tuple[int, str]] = []

    def line(self, ind: int, text: str):
        self.lines.append((ind, text))

    def raise_line(self, exc: str, message: str, *values: str) -> str:
        args = f" % ({', '.join(values)},)" if values else ""
        return f"raise {exc}({message!r}{args})"

    def fail(self, ind: int, exc: str, message: str, *values: str):
        self.line(ind, self.raise_line(exc, message, *values))

    def flush(self, run: Run, ind: int):
        if run.items:
            fmt = "".join(f for f, _ in run.items)
            targets = ", ".join(t for _, t in run.items)
            self.line(ind, f"{targets}, = {self.ctx.unpacker(fmt)}(buf, off)")
            self.line(ind, f"off += {struct_for(fmt).size}")
            for rel, text in run.checks:
                self.line(ind + rel, text)
            run.items.clear()
            run.checks.clear()

    def read(self, run: Run, fmt: str, prefix: str = "x") -> str:
        var = self.ctx.tmp(prefix)
        run.items.append((fmt, var))
        return var

    def check(self, run: Run, cond: str, exc: str, message: str, *values: str):
        run.checks.append((0, f"if {cond}:"))
        run.checks.append((1, self.raise_line(exc, message, *values)))

    # -- dispatch ----------------------------------------------------------
    def emit(self, node: N.Node, run: Run, ind: int, path: str) -> str:
        target = self.ctx.recursive_target(node)
        if target is not None:
            self.flush(run, ind)
            v = self.ctx.tmp("r")
            self.line(ind, f"{v}, off = {self.ctx.codec_of(target)}._raw_decode(buf, off)")
            return v
        node = self.ctx.resolve(node)
        kind = type(node)
        if kind is N.Prim:
            v = self.read(run, N.Prim.FORMATS[node.kind][0])
            if node.kind != "bool":
                return v
            self.check(run, f"{v} > 1", "_BadValue", f"{path}: bool must be 0 or 1, got %d", v)
            return f"({v} == 1)"
        if kind is N.Enum:
            v = self.read(run, "i")
            self.check(run, f"{v} not in {self.ctx.value_set(node.values)}", "_BadValue",
                       f"{path}: %d is not a value of enum {node.name}", v)
            return v
        if kind is N.Void:
            return "None"
        if kind is N.Opaque and node.fixed:
            return self.fixed_opaque(node, run, ind, path)
        if kind is N.Opaque or kind is N.String:
            return self.counted_bytes(node, run, ind, path)
        if kind is N.Array:
            return self.array(node, run, ind, path)
        if kind is N.Optional:
            return self.optional(node, run, ind, path)
        if kind is N.Struct:
            return self.struct(node, run, ind, path)
        if kind is N.Union:
            return self.union(node, run, ind, path)
        raise AssertionError(f"unknown node {node!r}")       # pragma: no cover

    # -- leaves --------------------------------------------------------------
    def fixed_opaque(self, node, run, ind, path) -> str:
        size = node.size
        if size % 4 == 0:
            return self.read(run, f"{size}s", "o")
        self.flush(run, ind)
        o, e, p = self.ctx.tmp("o"), self.ctx.tmp("e"), self.ctx.tmp("p")
        pad = bytes(-size % 4)
        self.line(ind, f"{e} = off + {size}")
        self.line(ind, f"{p} = {e} + {len(pad)}")
        self.line(ind, f"if {p} > blen:")
        self.fail(ind + 1, "_Short", f"{path}: buffer ends inside a {size}-byte opaque")
        self.line(ind, f"{o} = bytes(buf[off:{e}])")
        self.line(ind, f"if buf[{e}:{p}] != {pad!r}:")
        self.fail(ind + 1, "_BadPad", f"{path}: non-zero padding")
        self.line(ind, f"off = {p}")
        return o

    def counted_bytes(self, node, run, ind, path) -> str:
        n = self.read(run, "I", "n")
        self.flush(run, ind)
        what = "string" if isinstance(node, N.String) else "opaque"
        an = "a string" if what == "string" else "an opaque"
        if node.size is not None:
            self.line(ind, f"if {n} > {node.size}:")
            self.fail(ind + 1, "_Limit", f"{path}: {what} of %d bytes exceeds its maximum {node.size}", n)
        o, e = self.ctx.tmp("o"), self.ctx.tmp("e")
        self.line(ind, f"{e} = off + {n}")
        # opaque: a slice of buf (zero copy from a memoryview); string: bytes
        grab = f"buf[off:{e}]"
        self.line(ind, f"{o} = {'bytes(' + grab + ')' if what == 'string' else grab}")
        self.line(ind, f"off = {e} + _PADLEN[{n} & 3]")
        self.line(ind, "if off > blen:")
        self.fail(ind + 1, "_Short", f"{path}: buffer ends inside {an} of %d bytes", n)
        self.line(ind, f"if {n} & 3 and buf[{e}:off] != _ZPAD[{n} & 3]:")
        self.fail(ind + 1, "_BadPad", f"{path}: non-zero padding after {an}")
        return o

    # -- containers ----------------------------------------------------------
    def array(self, node, run, ind, path) -> str:
        ctx = self.ctx
        elem = ctx.resolve(node.elem)
        plain = isinstance(elem, N.Prim) and elem.kind in PLAIN_PRIMS
        code, width = N.Prim.FORMATS[elem.kind] if plain else ("", 0)
        lst = ctx.tmp("l")
        if node.fixed:
            if plain and node.size <= INLINE_FIXED_ARRAY_MAX:
                if not node.size:
                    return "[]"
                names = [ctx.tmp("x") for _ in range(node.size)]
                run.items.append((f"{node.size}{code}", ", ".join(names)))
                return f"[{', '.join(names)}]"
            self.flush(run, ind)
            if plain:
                fmt = f"{node.size}{code}"
                self.line(ind, f"{lst} = list({ctx.unpacker(fmt)}(buf, off))")
                self.line(ind, f"off += {struct_for(fmt).size}")
                return lst
            count = str(node.size)
        else:
            n = self.read(run, "I", "n")
            self.flush(run, ind)
            if node.size is not None:
                self.line(ind, f"if {n} > {node.size}:")
                self.fail(ind + 1, "_Limit", f"{path}: array of %d items exceeds its maximum {node.size}", n)
            if plain:
                self.line(ind, f"if off + {n} * {width} > blen:")
                self.fail(ind + 1, "_Short", f"{path}: buffer ends inside an array of %d items", n)
                self.line(ind, f"{lst} = list(_ARRU({code!r}, {n})(buf, off))")
                self.line(ind, f"off += {n} * {width}")
                return lst
            least = ctx.min_size(node.elem)
            if least:
                # refuse a huge count before looping over it
                self.line(ind, f"if {n} * {least} > blen - off:")
                self.fail(ind + 1, "_Short", f"{path}: buffer too short for %d items", n)
            count = n
        self.line(ind, f"{lst} = []")
        self.line(ind, f"for _ in range({count}):")
        body = Run()
        x = self.emit(node.elem, body, ind + 1, path + "[]")
        self.flush(body, ind + 1)
        self.line(ind + 1, f"{lst}.append({x})")
        return lst

    def optional(self, node, run, ind, path) -> str:
        elem = self.ctx.list_node(node)
        if elem is not None:
            return self.linked_list(elem, run, ind, path, by_value=False)
        f = self.read(run, "I", "f")
        self.check(run, f"{f} > 1", "_BadValue", f"{path}: optional flag must be 0 or 1, got %d", f)
        self.flush(run, ind)
        o = self.ctx.tmp("o")
        self.line(ind, f"if {f}:")
        body = Run()
        x = self.emit(node.elem, body, ind + 1, path)
        self.flush(body, ind + 1)
        self.line(ind + 1, f"{o} = {x}")
        self.line(ind, "else:")
        self.line(ind + 1, f"{o} = None")
        return o

    def struct(self, node, run, ind, path) -> str:
        if node.is_list:
            return self.linked_list(node, run, ind, path, by_value=True)
        self.ctx.stack.append(node)
        exprs = [self.emit(f.type, run, ind, f"{path}.{f.name}") for f in node.fields]
        self.ctx.stack.pop()
        return f"{self.ctx.struct_class(node)}({', '.join(exprs)})"

    def linked_list(self, elem, run, ind, path, by_value: bool) -> str:
        """A loop reading node after node while the next-flag is TRUE."""
        ctx = self.ctx
        if not by_value and elem in ctx.stack:
            self.flush(run, ind)
            v = ctx.tmp("r")
            self.line(ind, f"{v}, off = {ctx.list_codec(elem)}._raw_decode(buf, off)")
            return v
        if by_value:
            self.flush(run, ind)
            f = ctx.tmp("f")
            self.line(ind, f"{f} = 1")
        else:
            f = self.read(run, "I", "f")
            self.check(run, f"{f} > 1", "_BadValue", f"{path}: list flag must be 0 or 1, got %d", f)
            self.flush(run, ind)
        lst = ctx.tmp("l")
        self.line(ind, f"{lst} = []")
        self.line(ind, f"while {f}:")
        ctx.stack.append(elem)
        body = Run()
        exprs = [self.emit(fd.type, body, ind + 1, f"{path}[].{fd.name}") for fd in elem.fields[:-1]]
        ctx.stack.pop()
        body.items.append(("I", f))
        self.check(body, f"{f} > 1", "_BadValue", f"{path}: list flag must be 0 or 1, got %d", f)
        self.flush(body, ind + 1)
        self.line(ind + 1, f"{lst}.append({ctx.struct_class(elem)}({', '.join(exprs)}))")
        return lst

    def union(self, node, run, ind, path) -> str:
        ctx = self.ctx
        disc_node = ctx.resolve(node.disc.type)
        is_bool = isinstance(disc_node, N.Prim) and disc_node.kind == "bool"
        fmt = "i" if isinstance(disc_node, N.Enum) or disc_node.kind == "int" else "I"
        d = self.read(run, fmt, "d")
        self.flush(run, ind)
        u = ctx.tmp("u")
        for i, (values, decl) in enumerate(node.arms):
            cond = (f"{d} == {values[0]}" if len(values) == 1
                    else f"{d} in {ctx.value_set(values)}")
            self.line(ind, f"{'if' if i == 0 else 'elif'} {cond}:")
            if is_bool and len(values) == 1:
                shown = "True" if values[0] else "False"
            else:
                shown = f"({d} == 1)" if is_bool else d
            self.arm(decl, shown, u, ind + 1, path)
        inner = ind
        if node.arms:
            self.line(ind, "else:")
            inner = ind + 1
        if isinstance(disc_node, N.Enum):
            self.line(inner, f"if {d} not in {ctx.value_set(disc_node.values)}:")
            self.fail(inner + 1, "_BadValue", f"{path}: %d is not a value of enum {disc_node.name}", d)
        elif is_bool:
            self.line(inner, f"if {d} > 1:")
            self.fail(inner + 1, "_BadValue", f"{path}: bool discriminant must be 0 or 1, got %d", d)
        if node.default is not None:
            self.arm(node.default, f"({d} == 1)" if is_bool else d, u, inner, path)
        else:
            self.fail(inner, "_BadDisc", f"{path}: no arm for discriminant %d", d)
        return u

    def arm(self, decl, shown: str, u: str, ind: int, path: str):
        body = Run()
        x = self.emit(decl.type, body, ind, f"{path}.{decl.name or 'void'}")
        self.flush(body, ind)
        self.line(ind, f"{u} = ({shown}, {x})")


def generate(ctx: Context, node: N.Node, path: str) -> tuple[list, str]:
    gen = DecodeGen(ctx)
    run = Run()
    expr = gen.emit(node, run, 0, path)
    gen.flush(run, 0)
    return gen.lines, expr
