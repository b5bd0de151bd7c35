"""Collapsed-stack parsing and the top-function summary of a py-spy profile."""
import pytest

from benchmarks.profiling import parse_collapsed, render_top, top_functions


SAMPLE = """process 1:"python";run (a.py:1);read (b.py:5);pread (c.py:9) 30
process 1:"python";run (a.py:1);read (b.py:5) 10
process 1:"python";run (a.py:1);reply (d.py:2) 60

"""


def test_parse_and_rank():
    stacks = parse_collapsed(SAMPLE)
    assert sum(stacks.values()) == 100
    own, inclusive, total = top_functions(stacks)
    assert total == 100
    assert own[0] == ("reply (d.py:2)", 60)
    assert dict(own)["pread (c.py:9)"] == 30
    assert dict(inclusive)["run (a.py:1)"] == 100
    assert dict(inclusive)["read (b.py:5)"] == 40
    assert not any(frame.startswith("process ") for frame, _ in inclusive)


def test_recursive_frame_counted_once_per_stack():
    own, inclusive, total = top_functions(parse_collapsed("f (x:1);f (x:1);g (x:2) 7\n"))
    assert dict(inclusive)["f (x:1)"] == 7 and total == 7


def test_render_top_percentages():
    own, inclusive, total = top_functions(parse_collapsed(SAMPLE))
    text = render_top(own, inclusive, total, "title")
    assert text.startswith("title\n100 samples")
    assert "  60.0 %  reply (d.py:2)" in text


@pytest.mark.parametrize("line", ["no count here", "a;b c12", "a;b -3"])
def test_malformed_lines_are_named(line):
    with pytest.raises(ValueError, match="line 1"):
        parse_collapsed(line + "\n")
