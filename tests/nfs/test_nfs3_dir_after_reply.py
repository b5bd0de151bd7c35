"""A READDIRPLUS reply's entries go into the inode table after the reply is
out when the call runs on a serving thread, at once anywhere else."""
from __future__ import annotations

import threading

from glusterfsd import after_reply
from glusterfsd.xlator import IA_REG
from nfs.inode import InodeTable
from nfs.nfs3_dir import _link_after_reply

PARENT = b"p" * 16
SEEN = [(bytes([i]) * 16, IA_REG, b"f%d" % i) for i in range(3)]


def test_on_a_serving_thread_the_entries_are_linked_after_the_reply():
    def serve():
        pending = after_reply.pending_here()
        table = InodeTable(100)
        _link_after_reply(table, PARENT, SEEN)
        before = table.child(PARENT, b"f1")
        after_reply.run(pending)            # the reply is out
        return before, [table.child(PARENT, name) for _, _, name in SEEN]
    out = []
    thread = threading.Thread(target=lambda: out.append(serve()))
    thread.start()
    thread.join()
    before, after = out[0]
    assert before is None
    assert after == [gfid for gfid, _, _ in SEEN]


def test_elsewhere_they_are_linked_at_once():
    out = []

    def elsewhere():
        table = InodeTable(100)
        _link_after_reply(table, PARENT, SEEN)
        out.append(table.type_of(SEEN[2][0]))
    thread = threading.Thread(target=elsewhere)     # never took pending_here
    thread.start()
    thread.join()
    assert out == [IA_REG]
