"""Parser for the RPC language: XDR (RFC 4506 §6) plus programs (RFC 5531 §12).

It reads the .x files under rpcsvc/xdr/ as written in the RFCs, including the
forms rpcgen accepts and the RFCs use: `unsigned` alone, `long` for int,
`struct NAME` as a type reference, `string` without bounds as a procedure
argument, enum members without a value, `%` pass-through lines and `//`
comments, and anonymous `struct {..}` / `union switch (..) {..}` inside a
declaration (RFC 5531's reply bodies).  Anonymous types are named
`<definition>_<declaration>` so they still get a codec and a value class.

It does not run cpp: a `#` line is a syntax error, not silently dropped.
"""
from __future__ import annotations

import keyword
import re

from . import nodes as N
from .errors import XdrDefinitionError

_TOKEN_RE = re.compile(r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<block>/\*.*?\*/)
  | (?P<comment>//[^\n]*)
  | (?P<number>-?(?:0[xX][0-9A-Fa-f]+|[0-9]+))(?![A-Za-z0-9_])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}()\[\]<>;,=:*])
""", re.VERBOSE | re.DOTALL)

KEYWORDS = frozenset("""
    bool case const default double quadruple enum float hyper int opaque
    string struct switch typedef union unsigned void program version long
""".split())

_PRIM_WORDS = {"int": "int", "long": "int", "hyper": "hyper",
               "float": "float", "double": "double", "bool": "bool"}


def python_attr(name: str) -> str:
    """The attribute name a field gets in Python: `from` becomes `from_`."""
    return name + "_" if keyword.iskeyword(name) else name


def _number(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("-")
    if digits[:2] in ("0x", "0X"):
        return sign * int(digits[2:], 16)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits)


def tokenize(text: str, filename: str) -> list:
    """[(kind, value, line)] with kind in num/id/p/eof."""
    # rpcgen copies `%` lines verbatim into C; they are not XDR.
    text = "\n".join("" if line.lstrip().startswith("%") else line
                     for line in text.split("\n"))
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            what = ("an unterminated comment" if text.startswith("/*", pos)
                    else f"unexpected character {text[pos]!r}")
            raise XdrDefinitionError(what, f"{filename}:{line}")
        kind = m.lastgroup
        value = m.group()
        if kind == "number":
            tokens.append(("num", _number(value), line))
        elif kind == "ident":
            tokens.append(("id", value, line))
        elif kind == "punct":
            tokens.append(("p", value, line))
        line += value.count("\n")
        pos = m.end()
    tokens.append(("eof", None, line))
    return tokens


class Parser:
    """Recursive descent over the token list; one instance per file."""

    def __init__(self, text: str, filename: str = "<source>"):
        self.filename = filename
        self.toks = tokenize(text, filename)
        self.i = 0
        self.defs = N.Definitions(filename=filename)
        self.owner = ""          # the top-level definition being parsed
        self.in_typedef = False
        self.depth = 0           # nesting of struct/union bodies

    # -- token helpers -------------------------------------------------
    def where(self, line: int | None = None) -> str:
        return f"{self.filename}:{self.toks[self.i][2] if line is None else line}"

    def fail(self, message: str, line: int | None = None):
        raise XdrDefinitionError(message, self.where(line))

    def peek(self, ahead: int = 0):
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def at(self, value: str, ahead: int = 0) -> bool:
        kind, val, _ = self.peek(ahead)
        return kind in ("id", "p") and val == value

    def take(self):
        tok = self.toks[self.i]
        if tok[0] != "eof":
            self.i += 1
        return tok

    def expect(self, value: str):
        kind, val, line = self.take()
        if kind not in ("id", "p") or val != value:
            self.fail(f"expected {value!r}, found {self._show(kind, val)}", line)

    @staticmethod
    def _show(kind, val) -> str:
        return "end of file" if kind == "eof" else repr(val)

    def ident(self) -> str:
        kind, val, line = self.take()
        if kind != "id" or val in KEYWORDS:
            self.fail(f"expected a name, found {self._show(kind, val)}", line)
        return val

    def value(self) -> N.Value:
        kind, val, line = self.take()
        if kind == "num":
            return val
        if kind == "id" and val not in KEYWORDS:
            return val
        self.fail(f"expected a number or constant name, found {self._show(kind, val)}", line)

    # -- definitions ---------------------------------------------------
    def parse(self) -> N.Definitions:
        while self.peek()[0] != "eof":
            self.definition()
        return self.defs

    def define_type(self, name: str, node: N.Node, line: int):
        if name in self.defs.types or name in self.defs.consts:
            self.fail(f"{name!r} is defined twice", line)
        self.defs.types[name] = node

    def define_const(self, name: str, value: N.Value, line: int):
        if name in self.defs.types:
            self.fail(f"{name!r} is defined twice", line)
        old = self.defs.consts.get(name)
        if old is not None and old[0] != value:
            # a procedure repeated in two versions with the same number is fine
            self.fail(f"{name!r} is defined twice with different values", line)
        self.defs.consts[name] = (value, line)

    def definition(self):
        kind, word, line = self.peek()
        if kind != "id":
            self.fail(f"expected a definition, found {self._show(kind, word)}")
        if word == "const":
            self.take()
            name = self.ident()
            self.expect("=")
            self.define_const(name, self.value(), line)
        elif word == "typedef":
            self.take()
            self.owner = self._typedef_name()
            self.in_typedef = True
            try:
                decl = self.declaration_named()
            finally:
                self.in_typedef = False
            if isinstance(decl.type, N.Void):
                self.fail("typedef of void", line)
            self.define_type(decl.name, decl.type, line)
        elif word in ("enum", "struct", "union"):
            self.take()
            name = self.ident()
            self.owner = name
            body = {"enum": self.enum_body, "struct": self.struct_body,
                    "union": self.union_body}[word]
            node = body(name, line)
            self.define_type(name, node, line)
        elif word == "program":
            self.take()
            self.program(line)
        else:
            self.fail(f"expected a definition, found {word!r}")
        self.expect(";")

    def enum_body(self, name: str, line: int) -> N.Enum:
        self.expect("{")
        members, previous = [], None
        while True:
            mline = self.peek()[2]
            member = self.ident()
            if self.at("="):
                self.take()
                val = self.value()
            elif previous is None:
                val = 0
            else:                        # rpcgen: one more than the previous
                val = (previous, 1)
            members.append((member, val))
            self.define_const(member, val, mline)
            previous = member
            if self.at(","):
                self.take()
                if self.at("}"):
                    break
                continue
            break
        self.expect("}")
        return N.Enum(line=line, name=name, members=members)

    def struct_body(self, name: str, line: int) -> N.Struct:
        self.expect("{")
        self.depth += 1
        fields = []
        while not self.at("}"):
            decl = self.declaration_named()
            if isinstance(decl.type, N.Void):
                self.fail("void is not a struct member", decl.line)
            if any(f.name == decl.name for f in fields):
                self.fail(f"struct {name} has two members named {decl.name!r}", decl.line)
            fields.append(decl)
            self.expect(";")
        self.expect("}")
        self.depth -= 1
        if not fields:
            self.fail(f"struct {name} has no members", line)
        return N.Struct(line=line, name=name, fields=fields)

    def union_body(self, name: str, line: int) -> N.Union:
        self.expect("switch")
        self.expect("(")
        disc = self.declaration_named()
        self.expect(")")
        self.expect("{")
        self.depth += 1
        arms, default = [], None
        while not self.at("}"):
            if self.at("case"):
                values = []
                while self.at("case"):
                    self.take()
                    values.append(self.value())
                    self.expect(":")
                arms.append((values, self.declaration()))
                self.expect(";")
            elif self.at("default"):
                dline = self.take()[2]
                self.expect(":")
                if default is not None:
                    self.fail(f"union {name} has two default arms", dline)
                default = self.declaration()
                self.expect(";")
            else:
                kind, val, _ = self.peek()
                self.fail(f"expected 'case' or 'default', found {self._show(kind, val)}")
        self.expect("}")
        self.depth -= 1
        if not arms and default is None:
            self.fail(f"union {name} has no arms", line)
        return N.Union(line=line, name=name, disc=disc, arms=arms, default=default)

    # -- declarations --------------------------------------------------
    def declaration_named(self) -> N.Decl:
        decl = self.declaration()
        if decl.name is None and not isinstance(decl.type, N.Void):
            self.fail("declaration without a name", decl.line)
        return decl

    def declaration(self) -> N.Decl:
        line = self.peek()[2]
        if self.at("void"):
            self.take()
            return N.Decl(None, N.Void(line=line), line)
        if self.at("opaque") or self.at("string"):
            word = self.take()[1]
            name = self.ident()
            if self.at("["):
                if word == "string":
                    self.fail("a string has a variable length: use string NAME<MAX>")
                self.take()
                size = self.value()
                self.expect("]")
                node = N.Opaque(line=line, fixed=True, size=size)
            else:
                node = (N.Opaque(line=line, fixed=False) if word == "opaque"
                        else N.String(line=line))
                node.size = self.bounds(f"{word} {name}")
            return self._decl(name, node, line)
        spec = self.type_specifier(anonymous_ok=True)
        if self.at("*"):
            self.take()
            name = self.ident()
            return self._decl(name, N.Optional(line=line, elem=spec), line)
        name = self.ident()
        self._name_anonymous(spec, name)
        if self.at("["):
            self.take()
            size = self.value()
            self.expect("]")
            return self._decl(name, N.Array(line=line, elem=spec, fixed=True, size=size), line)
        if self.at("<"):
            return self._decl(name, N.Array(line=line, elem=spec, fixed=False,
                                            size=self.bounds(name)), line)
        return self._decl(name, spec, line)

    def _typedef_name(self) -> str:
        """The name a typedef declares: its last top-level identifier."""
        j, depth, last = self.i, 0, "typedef"
        while self.toks[j][0] != "eof":
            kind, val, _ = self.toks[j]
            if kind == "p" and val in "{(":
                depth += 1
            elif kind == "p" and val in "})":
                depth -= 1
            elif depth == 0 and kind == "p" and val in ";[<":
                break
            elif depth == 0 and kind == "id" and val not in KEYWORDS:
                last = val
            j += 1
        return last

    def _decl(self, name: str, node: N.Node, line: int) -> N.Decl:
        return N.Decl(name, node, line, python_attr(name))

    def bounds(self, what: str):
        self.expect("<")
        if self.at(">"):
            self.take()
            return None
        size = self.value()
        self.expect(">")
        return size

    def _name_anonymous(self, node: N.Node, decl_name: str):
        if isinstance(node, (N.Struct, N.Union, N.Enum)) and not node.name:
            if self.in_typedef and self.depth == 0:
                node.name = decl_name      # `typedef struct {..} T;` is T itself
                return
            node.name = f"{self.owner}_{decl_name}"
            self.define_type(node.name, node, node.line)

    def type_specifier(self, anonymous_ok: bool = False) -> N.Node:
        kind, word, line = self.peek()
        if kind != "id":
            self.fail(f"expected a type, found {self._show(kind, word)}")
        self.take()
        if word == "unsigned":
            nxt = self.peek()[1]
            if nxt in ("int", "long"):
                self.take()
                return N.Prim(line=line, kind="uint")
            if nxt == "hyper":
                self.take()
                return N.Prim(line=line, kind="uhyper")
            return N.Prim(line=line, kind="uint")
        if word in _PRIM_WORDS:
            return N.Prim(line=line, kind=_PRIM_WORDS[word])
        if word == "quadruple":
            self.fail("quadruple is not supported", line)
        if word in ("enum", "struct", "union"):
            if word == "enum" and self.at("{") or word == "struct" and self.at("{") \
                    or word == "union" and self.at("switch"):
                if not anonymous_ok:
                    self.fail(f"anonymous {word} not allowed here", line)
                body = {"enum": self.enum_body, "struct": self.struct_body,
                        "union": self.union_body}[word]
                return body("", line)     # named by _name_anonymous
            return N.Ref(line=line, name=self.ident())
        if word in KEYWORDS:
            self.fail(f"{word!r} cannot be used as a type here", line)
        return N.Ref(line=line, name=word)

    # -- programs ------------------------------------------------------
    def program(self, line: int):
        name = self.ident()
        prog = N.ProgramDef(name=name, number=0, line=line)
        self.expect("{")
        while not self.at("}"):
            prog.versions.append(self.version())
        self.expect("}")
        self.expect("=")
        prog.number = self.value()
        if not prog.versions:
            self.fail(f"program {name} has no versions", line)
        self.define_const(name, prog.number, line)
        self.defs.programs.append(prog)

    def version(self) -> N.VersionDef:
        line = self.peek()[2]
        self.expect("version")
        name = self.ident()
        ver = N.VersionDef(name=name, number=0, line=line)
        self.expect("{")
        while not self.at("}"):
            ver.procs.append(self.procedure())
        self.expect("}")
        self.expect("=")
        ver.number = self.value()
        self.expect(";")
        self.define_const(name, ver.number, line)
        return ver

    def procedure(self) -> N.ProcDef:
        line = self.peek()[2]
        res = self.proc_type()
        name = self.ident()
        self.expect("(")
        arg = self.proc_type()
        if self.at(","):
            self.fail(f"procedure {name}: more than one argument is not supported")
        self.expect(")")
        self.expect("=")
        number = self.value()
        self.expect(";")
        self.define_const(name, number, line)
        return N.ProcDef(name=name, number=number, arg=arg, res=res, line=line)

    def proc_type(self) -> N.Node:
        line = self.peek()[2]
        if self.at("void"):
            self.take()
            return N.Void(line=line)
        if self.at("string"):                # RFC 1833: `string RPCBPROC_GETADDR(rpcb)`
            self.take()
            return N.String(line=line, size=None)
        if self.at("opaque"):
            self.fail("opaque needs a declaration with a size")
        spec = self.type_specifier()
        if self.at("*"):
            self.take()
            return N.Optional(line=line, elem=spec)
        return spec


def parse(text: str, filename: str = "<source>") -> N.Definitions:
    return Parser(text, filename).parse()
