"""The duplicate request cache in the service: a retransmitted non-idempotent call runs once."""
from __future__ import annotations

import socket
import time

from rpc_testkit import (FSSTAT, NFS3, REMOVE, RawPeer, call_msg, frame, remove_args,
                         udp_call)
from rpcsvc import wire


def fsstat_args() -> bytes:
    return NFS3.FSSTAT3args.encode(NFS3.FSSTAT3args(NFS3.nfs_fh3(b"fh")))


def test_same_call_twice_executes_once(serve):
    served = serve()
    peer = RawPeer(served.tcp_port)
    try:
        msg = call_msg(0xABC, proc=REMOVE, args=remove_args())
        peer.send(frame(msg))
        first = peer.read_reply()
        peer.send(frame(msg))
        second = peer.read_reply()
        assert first == second and wire.parse_reply(first).success
        assert served.actors.removes == 1
    finally:
        peer.close()
    # the client reconnects (new source port): still the cached reply
    again = RawPeer(served.tcp_port)
    try:
        again.send(frame(msg))
        assert again.read_reply() == first
    finally:
        again.close()
    assert served.actors.removes == 1
    drc = served.svc.stats()["drc"]
    assert drc["duplicate_request_count"] == 2 and drc["current_cache_size"] == 1


def test_other_xid_or_other_arguments_execute_again(serve):
    served = serve()
    peer = RawPeer(served.tcp_port)
    try:
        assert peer.call(call_msg(1, proc=REMOVE, args=remove_args(b"a"))).success
        assert peer.call(call_msg(2, proc=REMOVE, args=remove_args(b"a"))).success
        assert peer.call(call_msg(2, proc=REMOVE, args=remove_args(b"b"))).success
        assert served.actors.removes == 3
    finally:
        peer.close()


def test_duplicate_of_a_call_still_running_is_dropped(serve):
    served = serve(program_kw={"non_idempotent": {REMOVE, FSSTAT}})
    peer = RawPeer(served.tcp_port)
    try:
        msg = frame(call_msg(77, proc=FSSTAT, args=fsstat_args()))
        peer.send(msg)
        assert served.actors.wait_for_gate(1)
        peer.send(msg)                                    # retransmission while in transit
        peer.send(frame(call_msg(78)))
        assert wire.parse_reply(peer.read_reply()).xid == 78
        served.actors.gate.set()
        assert wire.parse_reply(peer.read_reply()).xid == 77
        peer.send(frame(call_msg(79)))                    # only one reply for 77 was sent
        assert wire.parse_reply(peer.read_reply()).xid == 79
        assert served.actors.max_in_gate == 1
        assert served.svc.stats()["drc"]["in_transit_duplicate_requests"] == 1
    finally:
        peer.close()


def test_idempotent_procedures_are_not_cached(serve):
    served = serve(program_kw={"non_idempotent": set()})
    peer = RawPeer(served.tcp_port)
    try:
        msg = call_msg(5, proc=REMOVE, args=remove_args())
        peer.call(msg)
        peer.call(msg)
        assert served.actors.removes == 2
        assert served.svc.stats()["drc"]["current_cache_size"] == 0
    finally:
        peer.close()


def test_drc_off_runs_every_retransmission(serve):
    served = serve(drc=False)
    peer = RawPeer(served.tcp_port)
    try:
        msg = call_msg(6, proc=REMOVE, args=remove_args())
        peer.call(msg)
        peer.call(msg)
        assert served.actors.removes == 2
        assert served.svc.stats()["drc"] == {"type": "none"}
    finally:
        peer.close()


def test_udp_retransmission_gets_the_cached_reply(serve):
    served = serve()
    msg = call_msg(8, proc=REMOVE, args=remove_args())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(msg, ("127.0.0.1", served.udp_port))
        first = sock.recv(65536)
        sock.sendto(msg, ("127.0.0.1", served.udp_port))
        assert sock.recv(65536) == first
    assert served.actors.removes == 1
    assert udp_call(served.udp_port, call_msg(9)).success


def test_drc_is_bounded(serve):
    served = serve(drc_size=5)
    peer = RawPeer(served.tcp_port)
    try:
        for xid in range(20):
            peer.call(call_msg(xid, proc=REMOVE, args=remove_args()))
        deadline = time.monotonic() + 2
        while served.svc.stats()["drc"]["current_cache_size"] > 5 and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        drc = served.svc.stats()["drc"]
        assert drc["current_cache_size"] == 5 and drc["evictions"] == 15
        peer.call(call_msg(0, proc=REMOVE, args=remove_args()))    # evicted: runs again
        assert served.actors.removes == 21
    finally:
        peer.close()
