"""The master <-> worker channel: whole JSON messages, garbage ignored, EOF seen."""
from glusterfsd import channel as channel_module
from glusterfsd.channel import Channel


def test_messages_go_both_ways_whole():
    master, worker = Channel.pair()
    try:
        assert master.receive() == []
        assert worker.send("ready", pid=12) and worker.send("beat")
        assert master.receive() == [{"t": "ready", "pid": 12}, {"t": "beat"}]
        assert master.send("dump", id=1)
        assert worker.receive() == [{"t": "dump", "id": 1}]
    finally:
        master.close()
        worker.close()


def test_a_message_split_across_reads_waits_for_its_end():
    master, worker = Channel.pair()
    try:
        worker.sock.sendall(b'{"t": "be')
        assert master.receive() == []
        worker.sock.sendall(b'at"}\nnot json\n[1, 2]\n{"t": "x"}\n')
        assert master.receive() == [{"t": "beat"}, {"t": "x"}]     # garbage lines dropped
    finally:
        master.close()
        worker.close()


def test_the_last_words_then_the_end():
    master, worker = Channel.pair()
    worker.send("fail", reason="no brick")
    worker.close()
    assert master.receive() == [{"t": "fail", "reason": "no brick"}]
    assert master.receive() is None and master.closed
    assert master.send("dump", id=2) is False


def test_an_endless_line_ends_the_channel(monkeypatch):
    monkeypatch.setattr(channel_module, "MAX_PENDING", 16)
    master, worker = Channel.pair()
    try:
        worker.sock.sendall(b"x" * 64)
        assert master.receive() is None and master.closed
    finally:
        worker.close()


def test_values_json_cannot_carry_are_sent_as_text():
    master, worker = Channel.pair()
    try:
        worker.send("dump", sections=[("t", {"b": b"\x01", 3: "three"})])
        (message,) = master.receive()
        assert message["sections"] == [["t", {"b": "b'\\x01'", "3": "three"}]]
    finally:
        master.close()
        worker.close()
