"""Encoding and decoding of every XDR construct, with the bad input for each
next to the good: short buffers, over-maximum lengths, non-zero padding,
bad bools, undeclared enum values, bad discriminants, out-of-range ints."""
from __future__ import annotations

import struct

import pytest

from rpcsvc import xdr
from rpcsvc.xdr import (XdrBadDiscriminant, XdrBadPadding, XdrBadValue,
                        XdrError, XdrLimitExceeded, XdrShortBuffer,
                        XdrTrailingData)

SOURCE = """
const MAXS = 8;
enum color { RED = 0, GREEN = 1, BLUE = 5, NEG = -2 };
struct point { int x; int y; };
struct prims {
    int i; unsigned int u; hyper h; unsigned hyper uh;
    bool b; float f; double d; color c;
};
typedef opaque fixed3[3];
typedef opaque fixed8[8];
typedef opaque vopaque<MAXS>;
typedef opaque anyopaque<>;
typedef string vstring<MAXS>;
typedef int ints<4>;
typedef int fixed_ints[3];
typedef unsigned hyper big_fixed[100];
typedef point points<3>;
typedef point fixed_points[2];
typedef bool bools<4>;
typedef color colors[2];
typedef point *maybe_point;
union shape switch (color c) {
case RED:
    point p;
case GREEN:
case BLUE:
    void;
};
union numbered switch (unsigned int n) {
case 1:
    int one;
default:
    string other<4>;
};
union flag switch (bool on) {
case TRUE:
    hyper value;
};
struct item { string name<MAXS>; unsigned int n; item *next; };
typedef item *items;
struct holder { items list; bool eof; };
struct tree { int v; tree *left; tree *right; };
struct mixed { fixed3 tag; int after; vopaque data; };
"""


@pytest.fixture(scope="module")
def t():
    return xdr.build(SOURCE, "codec_test")


def be(fmt: str, *values) -> bytes:
    return struct.pack(">" + fmt, *values)


# -- round trips with known bytes ---------------------------------------------

def test_all_primitives(t):
    v = t.prims(-5, 0xFFFFFFFF, -(2 ** 63), 2 ** 64 - 1, True, 1.5, -2.25, t.NEG)
    data = t.prims.encode(v)
    assert data == be("iIqQIfdi", -5, 0xFFFFFFFF, -(2 ** 63), 2 ** 64 - 1, 1, 1.5, -2.25, -2)
    back = t.prims.decode_all(data)
    assert back == v and back.b is True and isinstance(back.f, float)


def test_opaques_and_strings(t):
    assert t.fixed3.encode(b"abc") == b"abc\0"
    assert t.fixed8.encode(bytearray(b"12345678")) == b"12345678"
    assert t.vopaque.encode(b"hello") == b"\0\0\0\5hello\0\0\0"
    assert t.vopaque.encode(memoryview(b"")) == b"\0\0\0\0"
    assert t.vstring.encode(b"abcd") == b"\0\0\0\4abcd"
    for codec, value in [(t.fixed3, b"xyz"), (t.fixed8, b"a" * 8), (t.vopaque, b"12345678"),
                         (t.vstring, b"nul\0ok"), (t.anyopaque, b"z" * 1000)]:
        back = codec.decode_all(codec.encode(value))
        assert back == value and type(back) is bytes


def test_arrays(t):
    assert t.ints.encode([1, -1]) == be("Iii", 2, 1, -1)
    assert t.ints.decode_all(be("I", 0)) == []
    assert t.fixed_ints.encode([7, 8, 9]) == be("iii", 7, 8, 9)
    big = list(range(100))
    assert t.big_fixed.decode_all(t.big_fixed.encode(big)) == big
    pts = [t.point(1, 2), t.point(3, 4)]
    assert t.points.encode(pts) == be("Iiiii", 2, 1, 2, 3, 4)
    for codec, value in [(t.points, pts), (t.fixed_points, pts), (t.bools, [True, False, True]),
                         (t.colors, [t.BLUE, t.NEG]), (t.ints, [1, 2, 3, 4])]:
        assert codec.decode_all(codec.encode(value)) == value


def test_optional(t):
    assert t.maybe_point.encode(None) == be("I", 0)
    assert t.maybe_point.encode(t.point(1, 2)) == be("Iii", 1, 1, 2)
    assert t.maybe_point.decode_all(be("I", 0)) is None
    assert t.maybe_point.decode_all(be("Iii", 1, 1, 2)) == t.point(1, 2)


def test_unions(t):
    assert t.shape.encode((t.RED, t.point(1, 2))) == be("iii", 0, 1, 2)
    assert t.shape.encode((t.BLUE, None)) == be("i", 5)
    assert t.numbered.encode((1, -1)) == be("Ii", 1, -1)
    assert t.numbered.encode((9, b"ab")) == be("II", 9, 2) + b"ab\0\0"
    assert t.flag.encode((True, 5)) == be("Iq", 1, 5)
    for codec, value in [(t.shape, (t.GREEN, None)), (t.numbered, (0, b"")),
                         (t.flag, (True, -3)), (t.shape, (t.RED, t.point(0, 0)))]:
        assert codec.decode_all(codec.encode(value)) == value
    disc, _ = t.flag.decode_all(be("Iq", 1, 5))
    assert disc is True


def test_struct_with_padded_fixed_opaque_then_more_fields(t):
    v = t.mixed(b"abc", 7, b"x")
    data = t.mixed.encode(v)
    assert data == b"abc\0" + be("iI", 7, 1) + b"x\0\0\0"
    assert t.mixed.decode_all(data) == v


def test_linked_list_and_by_value_node(t):
    nodes = [t.item(b"a", 1), t.item(b"bb", 2)]
    expected = be("I", 1) + be("I", 1) + b"a\0\0\0" + be("I", 1) + \
        be("I", 1) + be("I", 2) + b"bb\0\0" + be("I", 2) + be("I", 0)
    assert t.items.encode(nodes) == expected
    assert t.items.decode_all(expected) == nodes
    assert t.items.encode([]) == be("I", 0) and t.items.decode_all(be("I", 0)) == []
    # the node type by value is a non-empty list (the first node has no flag)
    assert t.item.encode(nodes) == expected[4:]
    assert t.item.decode_all(expected[4:]) == nodes
    with pytest.raises(XdrBadValue, match="non-empty"):
        t.item.encode([])
    assert t.item.fields == ("name", "n")          # no attribute for the pointer
    h = t.holder(nodes, True)
    assert t.holder.decode_all(t.holder.encode(h)) == h


def test_long_linked_list_is_coded_without_recursion(t):
    nodes = [t.item(b"n%d" % (i % 1000), i) for i in range(50_000)]
    data = t.holder.encode(t.holder(nodes, False))
    back = t.holder.decode_all(data)
    assert len(back.list) == 50_000 and back.list[49_999] == nodes[49_999]
    assert back.list == nodes and back.eof is False


def test_recursive_type_goes_through_its_codec(t):
    tree = t.tree(1, t.tree(2, None, t.tree(3, None, None)), None)
    assert t.tree.decode_all(t.tree.encode(tree)) == tree
    with pytest.raises(XdrShortBuffer):
        t.tree.decode(t.tree.encode(tree)[:-4])


# -- buffers ---------------------------------------------------------------------

def test_memoryview_gives_zero_copy_opaque_but_bytes_strings(t):
    data = t.mixed.encode(t.mixed(b"abc", 1, b"payload"))
    v, end = t.mixed.decode(memoryview(data))
    assert end == len(data)
    assert isinstance(v.data, memoryview) and v.data == b"payload"
    assert v.data.obj is data                           # a view, not a copy
    assert type(v.tag) is bytes                         # fixed opaque: bytes
    s, _ = t.vstring.decode(memoryview(t.vstring.encode(b"name")))
    assert type(s) is bytes and s == b"name"


def test_bytearray_decodes_to_bytes_and_offsets_work(t):
    data = bytearray(b"\xff" * 3 + t.vopaque.encode(b"abc"))
    v, end = t.vopaque.decode(data, 3)
    assert type(v) is bytes and v == b"abc" and end == len(data)
    assert t.vopaque.decode_all(data, 3) == b"abc"


def test_memoryviews_of_other_formats_are_taken_as_bytes(t):
    import array
    words = array.array("I", [1, 2])                  # 8 bytes, 2 items
    assert t.vopaque.encode(memoryview(words)) == b"\0\0\0\x08" + words.tobytes()
    v, _ = t.point.decode(memoryview(array.array("i", [0, 0])))
    assert v == t.point(0, 0)
    with pytest.raises(XdrBadValue):
        t.point.decode(memoryview(bytes(16))[::2])


def test_decode_all_refuses_trailing_bytes(t):
    with pytest.raises(XdrTrailingData):
        t.point.decode_all(be("iii", 1, 2, 3))


def test_decode_refuses_negative_offset_and_non_buffers(t):
    with pytest.raises(XdrBadValue):
        t.point.decode(be("ii", 1, 2), -8)
    with pytest.raises(XdrBadValue):
        t.point.decode(12345)


def test_errors_are_value_errors():
    for cls in (XdrShortBuffer, XdrLimitExceeded, XdrBadDiscriminant, XdrBadPadding,
                XdrBadValue, XdrTrailingData):
        assert issubclass(cls, XdrError) and issubclass(cls, ValueError)


# -- short buffers at every field kind --------------------------------------------

def _values(t):
    return [
        (t.prims, t.prims(1, 2, 3, 4, False, 0.5, 0.25, t.GREEN)),
        (t.fixed3, b"abc"), (t.vopaque, b"abcde"), (t.vstring, b"abcdefg"),
        (t.ints, [1, 2, 3]), (t.fixed_ints, [1, 2, 3]), (t.big_fixed, list(range(100))),
        (t.points, [t.point(1, 2)]), (t.bools, [True]), (t.maybe_point, t.point(1, 2)),
        (t.shape, (t.RED, t.point(1, 2))), (t.numbered, (3, b"ab")), (t.flag, (True, 1)),
        (t.items, [t.item(b"abc", 1), t.item(b"", 2)]), (t.mixed, t.mixed(b"abc", 1, b"xy")),
        (t.holder, t.holder([t.item(b"q", 3)], True)),
        (t.tree, t.tree(1, t.tree(2, None, None), None)),
    ]


def test_every_truncation_is_a_short_buffer(t):
    for codec, value in _values(t):
        data = codec.encode(value)
        assert codec.decode_all(data) == value
        for cut in range(len(data)):
            with pytest.raises(XdrShortBuffer):
                codec.decode(data[:cut])
            with pytest.raises(XdrShortBuffer):
                codec.decode(memoryview(data)[:cut])


# -- maxima ------------------------------------------------------------------------

def test_over_maximum_is_refused_on_encode(t):
    with pytest.raises(XdrLimitExceeded):
        t.vopaque.encode(b"123456789")
    with pytest.raises(XdrLimitExceeded):
        t.vstring.encode(b"123456789")
    with pytest.raises(XdrLimitExceeded):
        t.ints.encode([1, 2, 3, 4, 5])
    with pytest.raises(XdrLimitExceeded):
        t.points.encode([t.point(0, 0)] * 4)
    with pytest.raises(XdrLimitExceeded):
        t.numbered.encode((2, b"toolong"))


def test_over_maximum_is_refused_on_decode_before_reading_on(t):
    with pytest.raises(XdrLimitExceeded):
        t.vopaque.decode(be("I", 9) + b"x" * 12)
    with pytest.raises(XdrLimitExceeded):
        t.vstring.decode(be("I", 9) + b"x" * 12)
    with pytest.raises(XdrLimitExceeded):
        t.ints.decode(be("I5i", 5, 1, 2, 3, 4, 5))
    with pytest.raises(XdrLimitExceeded):
        t.points.decode(be("I", 4) + be("ii", 0, 0) * 4)
    # an absurd count in an unbounded array is refused without allocating
    with pytest.raises(XdrShortBuffer):
        t.anyopaque.decode(be("I", 0xFFFFFFFF))


# -- padding, bools, enums, discriminants ------------------------------------------

def test_non_zero_padding_is_refused(t):
    with pytest.raises(XdrBadPadding):
        t.vopaque.decode(be("I", 1) + b"a\0\1\0")
    with pytest.raises(XdrBadPadding):
        t.vstring.decode(be("I", 3) + b"abc\x01")
    with pytest.raises(XdrBadPadding):
        t.fixed3.decode(b"abc\x80")
    assert t.vopaque.decode_all(be("I", 1) + b"a\0\0\0") == b"a"


def test_bad_bool_is_refused(t):
    good = bytearray(t.prims.encode(t.prims(0, 0, 0, 0, True, 0.0, 0.0, t.RED)))
    struct.pack_into(">I", good, 24, 2)            # the bool member
    with pytest.raises(XdrBadValue, match="bool"):
        t.prims.decode(bytes(good))
    with pytest.raises(XdrBadValue):
        t.bools.decode(be("II", 1, 7))
    with pytest.raises(XdrBadValue):
        t.maybe_point.decode(be("Iii", 2, 0, 0))   # optional flag
    with pytest.raises(XdrBadValue):
        t.items.decode(be("I", 3))                  # list flag
    with pytest.raises(XdrBadValue):
        t.bools.encode([2])
    with pytest.raises(XdrBadValue):
        t.prims.encode(t.prims(0, 0, 0, 0, None, 0.0, 0.0, t.RED))


def test_undeclared_enum_value_is_refused(t):
    with pytest.raises(XdrBadValue, match="enum color"):
        t.colors.decode(be("ii", 0, 3))
    with pytest.raises(XdrBadValue, match="enum color"):
        t.colors.encode([0, 3])
    assert t.colors.decode_all(be("ii", 5, -2)) == [5, -2]


def test_bad_union_discriminant(t):
    # NEG is a color but has no arm and there is no default
    with pytest.raises(XdrBadDiscriminant):
        t.shape.decode(be("i", -2))
    with pytest.raises(XdrBadDiscriminant):
        t.shape.encode((t.NEG, None))
    # 3 is not a color at all
    with pytest.raises(XdrBadValue):
        t.shape.decode(be("i", 3))
    with pytest.raises(XdrBadValue):
        t.shape.encode((3, None))
    # bool discriminant: FALSE has no arm; 2 is not a bool
    with pytest.raises(XdrBadDiscriminant):
        t.flag.decode(be("I", 0))
    with pytest.raises(XdrBadDiscriminant):
        t.flag.encode((False, None))
    with pytest.raises(XdrBadValue):
        t.flag.decode(be("I", 2))


# -- values that do not fit on encode ----------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("i", 2 ** 31), ("i", -(2 ** 31) - 1), ("u", -1), ("u", 2 ** 32),
    ("h", 2 ** 63), ("uh", -1), ("uh", 2 ** 64), ("f", 1e40), ("i", 1.5), ("u", "1"),
    ("c", 99),
])
def test_out_of_range_or_wrong_type_is_bad_value(t, field, value):
    args = dict(i=0, u=0, h=0, uh=0, b=False, f=0.0, d=0.0, c=t.RED)
    args[field] = value
    with pytest.raises(XdrBadValue):
        t.prims.encode(t.prims(**args))


def test_wrong_shapes_are_bad_values(t):
    with pytest.raises(XdrBadValue):
        t.vstring.encode("text")                 # str, not bytes
    with pytest.raises(XdrBadValue):
        t.vopaque.encode(5)
    with pytest.raises(XdrBadValue):
        t.fixed8.encode(b"short")
    with pytest.raises(XdrBadValue):
        t.fixed8.encode("12345678")
    with pytest.raises(XdrBadValue):
        t.fixed3.encode(b"toolong")
    with pytest.raises(XdrBadValue):
        t.fixed_ints.encode([1, 2])
    with pytest.raises(XdrBadValue):
        t.shape.encode(t.RED)                    # not a (disc, arm) pair
    with pytest.raises(XdrBadValue):
        t.shape.encode((t.GREEN, 5))             # void arm takes None
    with pytest.raises(XdrBadValue):
        t.point.encode(object())                 # no attributes
    with pytest.raises(XdrBadValue):
        t.items.encode([t.point(1, 2)])          # wrong node type


def test_any_object_with_the_attributes_encodes(t):
    class P:
        x, y = 3, 4
    assert t.point.encode(P()) == t.point.encode(t.point(3, 4))


def test_pack_appends_and_rolls_back_on_error(t):
    out = bytearray(b"head")
    t.point.pack(t.point(1, 2), out)
    assert bytes(out) == b"head" + be("ii", 1, 2)
    with pytest.raises(XdrLimitExceeded):
        t.holder.pack(t.holder([t.item(b"ok", 1), t.item(b"waytoolong", 2)], True), out)
    assert bytes(out) == b"head" + be("ii", 1, 2)


def test_void_codec(t):
    void = xdr.build("program P { version V { void N(void) = 0; } = 1; } = 1;", "v") \
        .programs["P"].versions[1].procs[0].arg
    assert void.encode(None) == b"" and void.decode(b"abc", 1) == (None, 1)
    with pytest.raises(XdrBadValue):
        void.encode(0)
    with pytest.raises(XdrTrailingData):
        void.decode_all(b"x")
