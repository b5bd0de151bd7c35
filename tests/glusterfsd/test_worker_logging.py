"""The master and its workers log to one file: no line may be cut by another's."""
from __future__ import annotations

import os
import re

from glusterfsd import log as gflog

LINE = re.compile(r"^\[[^\]]+\] I \[test_worker_logging\.py:\d+:\w+\] 0-proc(\d): (\d+) (x+)$")


def test_lines_from_several_processes_never_interleave(tmp_path):
    path = tmp_path / "nfs.log"
    gflog.setup("INFO", str(path))
    pids = []
    for number in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                logger = gflog.get_logger(f"proc{number}")
                for count in range(200):
                    logger.info("%d %s", count, "x" * (500 + 37 * number + count * 13))
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    seen = {number: [] for number in range(4)}
    for line in path.read_text().splitlines():
        match = LINE.match(line)
        assert match, line[:120]
        number, count, filler = int(match[1]), int(match[2]), match[3]
        assert len(filler) == 500 + 37 * number + count * 13
        seen[number].append(count)
    assert all(counts == list(range(200)) for counts in seen.values())


def test_fileno_follows_the_handler(tmp_path):
    gflog.setup("INFO", "-")
    assert gflog.fileno() == 2
    gflog.setup("INFO", str(tmp_path / "a.log"))
    first = gflog.fileno()
    os.write(first, b"direct\n")
    os.rename(tmp_path / "a.log", tmp_path / "a.log.1")
    gflog.reopen()                       # a new file, opened before the old one is closed
    assert gflog.fileno() != first
    os.write(gflog.fileno(), b"after\n")
    assert (tmp_path / "a.log.1").read_text() == "direct\n"
    assert (tmp_path / "a.log").read_text() == "after\n"
