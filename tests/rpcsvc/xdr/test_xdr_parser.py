"""The .x parser and spec building: accepted syntax, and named errors for
definitions that are wrong (with the file:line to fix)."""
from __future__ import annotations

import pytest

from rpcsvc import xdr
from rpcsvc.xdr import XdrDefinitionError


def build(text: str) -> xdr.Spec:
    return xdr.build(text, "t")


# -- accepted syntax --------------------------------------------------------

def test_comments_percent_lines_and_number_forms():
    spec = build("""
        /* block
           comment */
        // line comment
        %#include <rpc/rpc.h>
          % indented pass-through line
        const HEX = 0x1F;            /* hex */
        const OCT = 0170000;         // octal, as in nfs_prot.x
        const NEG = -1;
        const DEC = 42;
    """)
    assert (spec.HEX, spec.OCT, spec.NEG, spec.DEC) == (31, 0o170000, -1, 42)


def test_constants_refer_to_constants_enums_and_procedures_declared_later():
    spec = build("""
        const A = B;
        const B = 7;
        const HIGH = P_TWO;            /* a procedure, declared below */
        const E = RED;
        enum colour { RED = B, GREEN, BLUE = 0x10 };
        program P { version V { void P_ZERO(void) = 0; void P_TWO(void) = 2; } = 1; } = 99;
    """)
    assert spec.A == 7 and spec.HIGH == 2 and spec.E == 7
    assert (spec.RED, spec.GREEN, spec.BLUE) == (7, 8, 16)   # implicit: previous + 1
    assert (spec.P, spec.V, spec.P_ZERO) == (99, 1, 0)
    assert spec.colour.members == {"RED": 7, "GREEN": 8, "BLUE": 16}
    assert spec.colour.names[8] == "GREEN"


def test_types_used_before_their_declaration():
    spec = build("""
        struct outer { inner i; later *maybe; };
        struct inner { int x; };
        typedef unsigned hyper later;
    """)
    v = spec.outer(spec.inner(5), 9)
    assert spec.outer.decode_all(spec.outer.encode(v)) == v


def test_typedef_forms_and_rpcgen_spellings():
    spec = build("""
        const MAX = 8;
        typedef opaque handle<MAX>;
        typedef opaque verf[MAX];
        typedef string name<>;
        typedef unsigned long u32;      /* long is int */
        typedef long s32;
        typedef unsigned bare;          /* unsigned alone is unsigned int */
        typedef int list<MAX>;
        typedef int four[4];
        struct node { int v; struct node *next; };   /* 'struct NAME' as a type */
        typedef struct node *nodes;
    """)
    assert spec.handle.encode(b"ab") == b"\0\0\0\2ab\0\0"
    assert spec.verf.encode(b"12345678") == b"12345678"
    assert spec.name.encode(b"") == b"\0\0\0\0"
    assert spec.u32.encode(0xFFFFFFFF) == b"\xff" * 4
    assert spec.s32.encode(-1) == b"\xff" * 4
    assert spec.bare.encode(3) == b"\0\0\0\3"
    assert spec.four.encode([1, 2, 3, 4]) == bytes.fromhex("00000001000000020000000300000004")
    assert spec.nodes.encode([spec.node(1)]) == bytes.fromhex("00000001 00000001 00000000")


def test_union_case_lists_default_and_void():
    spec = build("""
        enum kind { K_A = 1, K_B = 2, K_C = 3, K_D = 4 };
        union u switch (kind k) {
        case K_A:
        case K_B:
            int both;
        case K_C:
            void;
        default:
            hyper other;
        };
    """)
    for value in [(1, 10), (2, 20), (3, None), (4, 2 ** 40)]:
        assert spec.u.decode_all(spec.u.encode(value)) == value


def test_anonymous_struct_and_union_inside_declarations_get_names():
    spec = build("""
        struct reply {
            int verf;
            union switch (int stat) {
            case 0:
                struct { unsigned int low; unsigned int high; } range;
            default:
                void;
            } data;
        };
        typedef struct { int a; } wrapped;
    """)
    assert "reply_range" in spec.types and "reply_data" in spec.types
    value = spec.reply(1, (0, spec.reply_range(2, 3)))
    assert spec.reply.decode_all(spec.reply.encode(value)) == value
    assert spec.wrapped(5).a == 5


def test_program_blocks_procedures_and_bare_string():
    spec = build("""
        struct args { int a; };
        program PROG {
            version V1 {
                void   PROC_NULL(void) = 0;
                string PROC_NAME(args) = 1;
                args * PROC_MAYBE(string) = 2;
            } = 1;
            version V2 { bool PROC_CHECK(unsigned int) = 0; } = 2;
        } = 0x20000001;
    """)
    prog = spec.programs["PROG"]
    assert prog.number == 0x20000001 and sorted(prog.versions) == [1, 2]
    v1 = prog.versions[1]
    assert v1.name == "V1" and v1.procs[1].name == "PROC_NAME"
    assert v1.procs[1].arg is spec.args
    assert v1.procs[1].res.encode(b"x") == b"\0\0\0\1x\0\0\0"
    assert v1.procs[0].arg.encode(None) == b"" and v1.procs[0].res.decode(b"") == (None, 0)
    assert v1.procs[0].arg.is_void and not v1.procs[1].arg.is_void
    assert v1.procs[2].res.encode(None) == b"\0\0\0\0"
    assert prog.versions[2].procs[0].res.encode(True) == b"\0\0\0\1"


def test_keyword_field_names_get_an_underscore():
    spec = build("struct r { int from; int to; };")
    assert spec.r.fields == ("from_", "to")
    assert spec.r.decode_all(spec.r.encode(spec.r(from_=1, to=2))).from_ == 1


def test_struct_values_need_every_field():
    spec = build("struct p { int a; int b; };")
    assert spec.p(1, b=2) == spec.p(a=1, b=2)
    with pytest.raises(TypeError):
        spec.p(1)
    with pytest.raises(TypeError):
        spec.p(1, 2, 3)
    with pytest.raises(TypeError):          # an enum codec does not build values
        build("enum e { X = 1 };").e(1)


# -- errors -----------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("struct s { int a; }", "expected ';', found end of file"),
    ("struct s { int a };", "expected ';', found '}'"),
    ("struct s { int; };", "expected a name, found ';'"),
    ("typedef missing t;", "'missing' is not a defined type"),
    ("const A = B;", "'B' is not defined"),
    ("const A = B; const B = A;", "defined in terms of itself"),
    ("const A = 1; const A = 2;", "defined twice"),
    ("struct s { int a; }; typedef int s;", "defined twice"),
    ("struct s { int a; int a; };", "two members named 'a'"),
    ("struct s { };", "has no members"),
    ("#define X 1", "unexpected character '#'"),
    ("/* never closed", "unterminated comment"),
    ("typedef quadruple q;", "quadruple is not supported"),
    ("enum e { A = 1 }; union u switch (e d) { case 2: int x; };", "not a value of the discriminant"),
    ("union u switch (int d) { case 1: int x; case 1: int y; };", "appears twice"),
    ("union u switch (bool d) { case 2: int x; };", "not a value of the discriminant"),
    ("union u switch (unsigned d) { case -1: int x; };", "not a value of the discriminant"),
    ("enum e { };", "expected a name, found '}'"),
    ("union u switch (string d<>) { case 1: int x; };", "discriminant must be"),
    ("union u switch (hyper d) { case 1: int x; };", "discriminant must be"),
    ("typedef a b; typedef b a;", "circle"),
    ("typedef string s[4];", "variable length"),
    ("const C = 1; typedef C t;", "a constant, not a type"),
    ("typedef opaque o<-1>;", "out of range"),
    ("program P { version V { int F(int, int) = 1; } = 1; } = 1;", "more than one argument"),
    ("program P { version V { void A(void) = 1; void B(void) = 1; } = 1; } = 1;", "used twice"),
    ("struct programs { int a; };", "reserved"),
])
def test_bad_definitions_are_named_errors_with_a_line(text, message):
    with pytest.raises(XdrDefinitionError) as info:
        xdr.build("\n" + text, "t", "bad.x")
    assert message in str(info.value)
    assert info.value.where.startswith("bad.x")


def test_error_points_at_the_right_line():
    with pytest.raises(XdrDefinitionError) as info:
        xdr.build("const A = 1;\n\nstruct s {\n  int a\n};\n", "t", "f.x")
    assert info.value.where == "f.x:5"          # the '}' where ';' was expected


def test_load_rejects_unknown_and_odd_names():
    with pytest.raises(XdrDefinitionError, match="no XDR definition file"):
        xdr.load("no_such_protocol")
    with pytest.raises(XdrDefinitionError, match="bad spec name"):
        xdr.load("../etc/passwd")


def test_load_caches_per_process():
    first = xdr.load("nfs3")
    assert xdr.load("nfs3") is first
    assert first.GETATTR3res is xdr.load("nfs3").GETATTR3res


def test_self_pointer_in_an_earlier_member_makes_a_recursive_type_not_a_list():
    # only a struct whose LAST member (and no other) points back is a list node
    spec = build("struct n { int v; n *left; n *right; };")
    assert not spec.n.resolved.is_list and spec.n.fields == ("v", "left", "right")
    tree = spec.n(1, spec.n(2, None, None), spec.n(3, None, spec.n(4, None, None)))
    assert spec.n.decode_all(spec.n.encode(tree)) == tree


def test_list_node_holding_a_list_of_its_own_kind():
    # a directory listing whose entries carry their own child listings
    spec = build("""
        struct dirent { string name<>; children kids; dirent *next; };
        struct children { dirent *first; };
    """)
    leaf = spec.dirent(b"leaf", spec.children([]))
    tree = [spec.dirent(b"a", spec.children([leaf, leaf])), spec.dirent(b"b", spec.children([]))]
    data = spec.children.encode(spec.children(tree))
    assert spec.children.decode_all(data).first == tree
