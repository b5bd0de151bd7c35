import pytest

from glusterfsd.graph import Graph, XlatorOverride
from glusterfsd.volfile import VolfileError, parse_text
from glusterfsd.xlator import ROOT_CALLER

from xlators_for_tests import EVENTS  # noqa: F401  (registers test types)

BASE = """volume leaf
    type test/leaf
    option size 20
end-volume
volume mid
    type test/middle
    subvolumes leaf
end-volume
volume top
    type test/top
    option vol.mid.flag on
    subvolumes mid
end-volume
"""


@pytest.fixture(autouse=True)
def clear_events():
    EVENTS.clear()


def build(text=BASE, overrides=()):
    return Graph.construct(parse_text(text, "g.vol"), list(overrides))


def test_construct_init_activate_fini_order():
    graph = build()
    assert graph.top.name == "top"
    assert graph.xlators["leaf"].opts == {"size": 20, "name": "leaf"}
    assert graph.top.option("vol.*.flag", "mid") is True
    assert graph.top.option("vol.*.flag", "other") is False
    graph.init()
    graph.activate()
    graph.fini()
    assert EVENTS == [("init", "leaf"), ("init", "mid"), ("init", "top"),
                      ("child-up", "top", "mid"),
                      ("fini", "top"), ("fini", "mid"), ("fini", "leaf")]


def test_default_fops_pass_to_first_child():
    graph = build()
    assert graph.top.stat(ROOT_CALLER, b"g" * 16) == ("stat", "leaf", b"g" * 16)


def test_init_failure_finis_what_started():
    graph = build(BASE.replace("option size 20", "option name fail"))
    with pytest.raises(RuntimeError, match="refused"):
        graph.init()
    assert EVENTS == []


@pytest.mark.parametrize("change, line, words", [
    (("option size 20", "option size 200"), 3, "option 'size' of volume 'leaf': 200 is above the maximum"),
    (("option size 20", "option colour blue"), 3, "unknown option 'colour'"),
    (("type test/middle", "type test/nothing"), 6, "unknown xlator type 'test/nothing'"),
    (("type test/middle", "type cluster/replicate"), 6, "not implemented"),
    (("type test/middle", "type protocol/client"), 6, "libgfapi xlator, which is not available yet"),
    (("option vol.mid.flag on", "option vol.ghost.flag on"), 11, "names no subvolume"),
    (("subvolumes leaf", "option x 1"), 5, "takes at least 1 subvolume"),
])
def test_graph_errors_name_the_line(change, line, words):
    with pytest.raises(VolfileError) as info:
        build(BASE.replace(*change))
    assert info.value.line == line, str(info.value)
    assert words in str(info.value)
    assert str(info.value).startswith(f"g.vol:{line}:")


def test_xlator_option_overrides():
    graph = build(overrides=[XlatorOverride.parse("leaf.size=7")])
    assert graph.xlators["leaf"].opts["size"] == 7
    with pytest.raises(VolfileError, match="--xlator-option leaf.size"):
        build(overrides=[XlatorOverride.parse("leaf.size=0")])
    with pytest.raises(VolfileError, match="not a volume"):
        build(overrides=[XlatorOverride.parse("ghost.size=1")])
    with pytest.raises(ValueError):
        XlatorOverride.parse("no-dot=1")
    with pytest.raises(ValueError):
        XlatorOverride.parse("leaf.size")


def test_reconfigure_with_same_topology_changes_only_options():
    running = build()
    running.init()
    new = build(BASE.replace("option size 20", "option size 30").replace("option vol.mid.flag on", ""))
    assert running.same_topology(new)
    changes = running.reconfigure_from(new)
    assert changes == {"leaf": {"size": 30}, "top": {"vol.mid.flag": False}}
    assert running.xlators["leaf"].opts["size"] == 30
    assert running.top.option("vol.*.flag", "mid") is False
    assert ("reconfigure", "top", ("vol.mid.flag",)) in EVENTS
    assert running.checksum == new.checksum
    running.fini()


def test_topology_change_is_detected():
    running = build()
    other = build(BASE.replace("subvolumes mid", "subvolumes mid leaf"))
    assert not running.same_topology(other)


def test_dump_has_options_and_private_sections():
    sections = build().dump()
    assert sections["leaf"]["type"] == "test/leaf"
    assert sections["leaf"]["option.size"] == 20
