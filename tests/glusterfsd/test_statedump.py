import os
import re

from glusterfsd import statedump


def test_dump_file_name_sections_and_times(tmp_path):
    path = statedump.write(str(tmp_path / "dumps"),
                           [("process", statedump.process_figures()), ("xlator.x", {"a": 1, "rpc": {"calls": {"NULL": 2}}})])
    name = os.path.basename(path)
    assert re.fullmatch(rf"glusterdump\.{os.getpid()}\.dump\.\d+", name)
    text = open(path).read()
    assert text.startswith("DUMP-START-TIME: ") and text.rstrip().splitlines()[-1].startswith("DUMP-END-TIME: ")
    assert "[process]" in text and f"pid={os.getpid()}" in text
    rss = int(re.search(r"rss_bytes=(\d+)", text).group(1))
    assert rss > 1 << 20
    assert "threads=" in text and "fds=" in text and "cpu_user_s=" in text
    assert "[xlator.x]\na=1\nrpc.calls.NULL=2\n" in text
    assert not [f for f in os.listdir(tmp_path / "dumps") if f.endswith(".tmp")]
