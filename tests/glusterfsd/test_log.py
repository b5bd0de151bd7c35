import logging
import re

from glusterfsd import log as gflog

LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} \+0000\] ([TDIWEC]) "
                  r"\[test_log\.py:\d+:(\w+)\] (\d+)-([\w.-]+): (.*)$")


def test_gluster_line_format_and_levels(tmp_path):
    path = tmp_path / "logs" / "nfs.log"
    gflog.setup("DEBUG", str(path))
    logger = gflog.get_logger("nfs-server", graph_id=3)
    logger.info("hello %s", "world")
    logger.debug("details")
    logger.trace("not shown at DEBUG")
    logger.error("bad thing")
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    match = LINE.match(lines[0])
    assert match, lines[0]
    assert match.groups() == ("I", "test_gluster_line_format_and_levels", "3", "nfs-server", "hello world")
    assert LINE.match(lines[1]).group(1) == "D"
    assert LINE.match(lines[2]).group(1) == "E"


def test_reopen_after_rotation_writes_a_new_file(tmp_path):
    path = tmp_path / "nfs.log"
    gflog.setup("INFO", str(path))
    logger = gflog.get_logger("glusterfsd")
    logger.info("before")
    path.rename(tmp_path / "nfs.log.1")
    logger.info("still old")
    gflog.reopen()
    logger.info("after")
    assert "before" in (tmp_path / "nfs.log.1").read_text()
    assert "still old" in (tmp_path / "nfs.log.1").read_text()
    assert "after" in path.read_text() and "before" not in path.read_text()


def test_none_level_silences_everything(tmp_path):
    path = tmp_path / "nfs.log"
    gflog.setup("NONE", str(path))
    gflog.get_logger("x").critical("nothing")
    assert path.read_text() == ""
    assert logging.getLogger(gflog.ROOT).level > logging.CRITICAL


def test_exceptions_carry_the_traceback(tmp_path):
    path = tmp_path / "nfs.log"
    gflog.setup("INFO", str(path))
    try:
        raise ValueError("boom")
    except ValueError:
        gflog.get_logger("rpcsvc").exception("actor failed")
    text = path.read_text()
    assert "actor failed" in text and "ValueError: boom" in text
