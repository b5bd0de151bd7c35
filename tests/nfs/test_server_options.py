"""The nfs/server xlator: option table, validation, ports, exports, statedump, reconfigure."""
import os
import socket
import threading

import pytest

from glusterfsd.graph import Graph
from glusterfsd.volfile import VolfileError, parse_text
from nfs.server import NfsServer
from nfs3_harness import NFS_PROCS, N, OK, NfsTestServer, fh3, volfile
from rpcsvc import wire
from rpcsvc.client import RpcCallError, RpcClient


def test_defaults_are_gnfs_where_gnfs_has_them():
    defaults = NfsServer.option_table().defaults()
    assert defaults["nfs3.read-size"] == defaults["nfs3.write-size"] == 1 << 20
    assert defaults["nfs3.readdir-size"] == 1 << 20
    assert defaults["nfs.port"] == 2049 and defaults["nfs.mount-port"] == 38465
    assert defaults["nfs.mem-factor"] == 15 and defaults["rpc.outstanding-rpc-limit"] == 16
    assert defaults["nfs.rdirplus"] is True and defaults["nfs.enable-ino32"] is False
    assert defaults["nfs.drc"] is True and defaults["nfs.drc-size"] == 0x20000
    assert defaults["rpc.register-with-portmap"] is True
    assert defaults["nfs.event-threads"] == 2
    table = NfsServer.option_table()
    assert table.lookup("nfs3.gv0.volume-id") is not None
    assert table.lookup("rpc-auth.addr.gv0.allow") is not None
    assert table.lookup("nfs.gv0.disable") is not None


@pytest.mark.parametrize("key,value,words", [
    ("nfs.nlm", "on", "not implement"),
    ("nfs.acl", "on", "not implement"),
    ("nfs.dynamic-volumes", "off", "not supported"),
    ("nfs3.read-size", "100", "minimum"),
    ("nfs3.write-size", "2MB", "maximum"),
    ("nfs.port", "70000", "maximum"),
    ("nfs3.nosuchvol.volume-access", "read-only", "not a subvolume"),
    ("nfs3.gv0.volume-access", "sometimes", "read-only"),
])
def test_bad_options_stop_the_graph_with_a_line_number(tmp_path, key, value, words):
    text = volfile(tmp_path, server_options={key: value})
    with pytest.raises(VolfileError) as err:
        Graph.construct(parse_text(text, "nfs.vol"))
    message = str(err.value)
    assert words in message and "nfs.vol:" in message


def test_both_auth_flavours_off_is_refused(tmp_path):
    text = volfile(tmp_path, server_options={"rpc-auth.auth-unix": "off",
                                              "rpc-auth.auth-null": "off"})
    with pytest.raises(VolfileError):
        Graph.construct(parse_text(text, "nfs.vol"))


def test_ephemeral_ports_serve_tcp_and_udp(tmp_path):
    with NfsTestServer(tmp_path) as srv:
        info = srv.xlator.dump_private()
        assert info["nfs_port"] == srv.nfs_port > 0 and info["mount_port"] == srv.mount_port > 0
        root = srv.mount()
        for proto in ("tcp", "udp"):
            with srv.client(proto=proto) as nfs:
                assert nfs.getattr(root)[0] == OK


def test_port_in_use_fails_init_with_advice(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    before = threading.active_count()
    try:
        srv = NfsTestServer(tmp_path, server_options={"nfs.port": str(port)})
        with pytest.raises(OSError) as err:
            srv.start()
        assert f"port {port} is in use" in str(err.value) and "nfs.port" in str(err.value)
    finally:
        taken.close()
    assert threading.active_count() == before


def test_dump_private_reports_exports_tables_and_calls(tmp_path):
    with NfsTestServer(tmp_path, volumes=("gv0", "gv1")) as srv:
        root = srv.mount("/gv1")
        with srv.client() as nfs:
            nfs.getattr(root)
        info = srv.xlator.dump_private()
        assert info["exports"] == ["/gv0 (rw)", "/gv1 (rw)"]
        assert info["inodes.limit_per_volume"] == 15 * 6000 and info["fds.limit"] == 15 * 32
        assert info["rpc"]["calls"]["NFS3"][3]["NFSPROC3_GETATTR"] == 1
        assert "drc" in info["rpc"] and len(info["write_verifier"]) == 16


def test_disabled_volume_is_not_exported(tmp_path):
    with NfsTestServer(tmp_path, volumes=("gv0", "gv1")) as srv:
        gv1 = srv.mount("/gv1")
    with NfsTestServer(tmp_path, volumes=("gv0", "gv1"),
                       server_options={"nfs.gv1.disable": "on"}) as srv:
        assert [e.path for e in srv.xlator.exports] == ["/gv0"]
        with srv.client() as nfs:
            assert nfs.getattr(gv1)[0] == N.NFS3ERR_STALE


def test_configured_volume_id_is_the_handle_exportid(tmp_path):
    vid = "8a5d6f3e-1b2c-4d5e-8f90-a1b2c3d4e5f6"
    with NfsTestServer(tmp_path, server_options={"nfs3.gv0.volume-id": vid}) as srv:
        root = srv.mount()
        assert root[4:20].hex() == vid.replace("-", "")


def test_handles_stay_valid_across_a_restart(tmp_path):
    srv = NfsTestServer(tmp_path).start()
    try:
        root = srv.mount()
        with srv.client() as nfs:
            d = nfs.new_dir(root, b"dir")
            handle = nfs.new_file(d, b"file", b"survives")
        srv.restart()
        with srv.client() as nfs:      # no MOUNT, no LOOKUP: the old handles only
            status, res = nfs.read(handle, 0, 100)
            assert status == OK and bytes(res.data) == b"survives"
            assert nfs.getattr(d)[0] == OK
            assert nfs.lookup(d, b"file")[0] == OK
    finally:
        srv.stop()


def test_small_sizes_round_up_and_bound_io(tmp_path):
    opts = {"nfs3.read-size": "5000", "nfs3.write-size": "4096", "nfs3.readdir-size": "4096"}
    with NfsTestServer(tmp_path, server_options=opts) as srv, srv.client() as nfs:
        root = srv.mount()
        info = nfs.call("FSINFO", fsroot=fh3(root))[1]
        assert (info.rtmax, info.wtmax, info.dtpref) == (8192, 4096, 4096)
        handle = nfs.new_file(root, b"f")
        status, res = nfs.write(handle, 0, b"w" * 6000)
        assert status == OK and res.count == 4096
        assert nfs.read(handle, 0, 100_000)[1].count == 4096


def test_enable_ino32_gives_32_bit_fileids(tmp_path):
    with NfsTestServer(tmp_path, server_options={"nfs.enable-ino32": "on"}) as srv:
        root = srv.mount()
        with srv.client() as nfs:
            handle = nfs.new_file(root, b"f")
            fileid = nfs.getattr(handle)[1].obj_attributes.fileid
            assert fileid < 1 << 32
            entries = {bytes(e.name): e.fileid for e in nfs.readdir(root)[1].reply.entries}
            assert entries[b"f"] == fileid and nfs.getattr(root)[1].obj_attributes.fileid == 1


def test_auth_null_off_refuses_anonymous_calls(tmp_path):
    with NfsTestServer(tmp_path, server_options={"rpc-auth.auth-null": "off"}) as srv:
        root = srv.mount()
        with srv.client(flavor="none") as anon:
            assert anon.call("NULL") is None
            with pytest.raises(RpcCallError) as err:
                anon.getattr(root)
            assert err.value.auth_stat == wire.AUTH_REJECTEDCRED
        with srv.client() as nfs:
            assert nfs.getattr(root)[0] == OK


def test_reconfigure_applies_volume_access_at_once(tmp_path):
    srv = NfsTestServer(tmp_path).start()
    try:
        root = srv.mount()
        changed = volfile(tmp_path, server_options={"nfs3.gv0.volume-access": "read-only"})
        new = Graph.construct(parse_text(changed, "nfs.vol"))
        srv.graph.reconfigure_from(new)
        with srv.client() as nfs:
            assert nfs.create(root, b"f")[0] == N.NFS3ERR_ROFS
            assert nfs.getattr(root)[0] == OK
    finally:
        srv.stop()


def test_drain_then_fini_leaves_no_threads(tmp_path):
    before = {t.ident for t in threading.enumerate()}
    srv = NfsTestServer(tmp_path).start()
    root = srv.mount()
    with srv.client() as nfs:
        assert nfs.getattr(root)[0] == OK
    assert srv.xlator.drain(5.0) is True
    srv.stop()
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []


def test_nfs_calls_are_answered_before_mount(tmp_path):
    """A client that kept its handle does not need MOUNT again (restart, other head)."""
    with NfsTestServer(tmp_path) as srv:
        export = srv.xlator.exports.by_name("gv0")
        with srv.client() as nfs:
            assert nfs.getattr(export.root_fh())[0] == OK


def test_insecure_ports_off_refuses_unprivileged_clients(tmp_path):
    with NfsTestServer(tmp_path, server_options={"rpc-auth.ports.insecure": "off"}) as srv:
        root = srv.xlator.exports.by_name("gv0").root_fh()
        with srv.client() as nfs:
            with pytest.raises(RpcCallError) as err:
                nfs.getattr(root)
            assert err.value.auth_stat == wire.AUTH_TOOWEAK
        if os.geteuid() == 0:
            client = RpcClient("127.0.0.1", srv.nfs_port, cred=("sys", 0, 0, [], "t"),
                               privileged=True)
            with client:
                proc = NFS_PROCS["GETATTR"]
                status, _res = client.call(N.NFS_PROGRAM, 3, proc.number, proc.arg,
                                           N.GETATTR3args(object=fh3(root)), proc.res)
                assert status == OK


def test_sockets_bound_before_init_are_served(tmp_path):
    """What a prefork master does: bind first, hand the sockets to the xlator."""
    from nfs.server import bind_pair
    srv = NfsTestServer(tmp_path)
    graph = Graph.from_file(str(srv.path))
    nfs_pair = bind_pair("127.0.0.1", 0, "nfs.port")
    mount_pair = bind_pair("127.0.0.1", 0, "nfs.mount-port")
    graph.top.presets = {"nfs.port": nfs_pair, "nfs.mount-port": mount_pair}
    graph.init()
    srv.graph = graph
    try:
        assert srv.nfs_port == nfs_pair[0].getsockname()[1] == nfs_pair[1].getsockname()[1]
        assert srv.mount_port == mount_pair[0].getsockname()[1]
        root = srv.mount()
        with srv.client(proto="udp") as nfs:
            assert nfs.getattr(root)[0] == OK
    finally:
        srv.stop()


def _retransmit_create(srv, root):
    """Send one GUARDED CREATE twice with the same xid; return both decoded results."""
    from rpcsvc.auth import encode_authsys
    proc = NFS_PROCS["CREATE"]
    args = N.CREATE3args(where=N.diropargs3(dir=fh3(root), name=b"once"),
                         how=(N.GUARDED, N.sattr3(mode=(True, 0o644), uid=(False, None),
                                                  gid=(False, None), size=(False, None),
                                                  atime=(N.DONT_CHANGE, None),
                                                  mtime=(N.DONT_CHANGE, None))))
    message = wire.build_call(0x5eed, N.NFS_PROGRAM, 3, proc.number, wire.AUTH_SYS,
                              encode_authsys(0, b"t", 0, 0, ())) + proc.arg.encode(args)
    results = []
    with RpcClient("127.0.0.1", srv.nfs_port) as client:
        for _ in range(2):
            reply = client.call_raw(message)
            header = wire.parse_reply(reply)
            results.append(proc.res.decode(reply, header.body_offset)[0][0])
    return results


def test_drc_answers_a_retransmitted_create_with_the_first_reply(tmp_path):
    with NfsTestServer(tmp_path) as srv:
        assert _retransmit_create(srv, srv.mount()) == [OK, OK]


def test_without_drc_the_retransmission_runs_again(tmp_path):
    with NfsTestServer(tmp_path, server_options={"nfs.drc": "off"}) as srv:
        assert _retransmit_create(srv, srv.mount()) == [OK, N.NFS3ERR_EXIST]


@pytest.mark.parametrize("mount_udp", ["on", "off"])
def test_mount_udp_decides_whether_mount_answers_over_udp(tmp_path, mount_udp):
    from rpcsvc.client import RpcClientError
    with NfsTestServer(tmp_path, server_options={"nfs.mount-udp": mount_udp}) as srv:
        protos = {(prog, proto) for prog, _vers, proto, _port in srv.xlator.portmap_mappings()}
        assert (100003, "udp") in protos and (100005, "tcp") in protos
        assert ((100005, "udp") in protos) == (mount_udp == "on")
        void = N.programs["NFS_PROGRAM"].versions[3].procs[0].arg
        with RpcClient("127.0.0.1", srv.mount_port, "tcp", timeout=2) as tcp:
            assert tcp.call(100005, 3, 0, void, None, void) is None
        with RpcClient("127.0.0.1", srv.mount_port, "udp", timeout=0.5) as udp:
            if mount_udp == "on":
                assert udp.call(100005, 3, 0, void, None, void) is None
            else:
                with pytest.raises(RpcClientError):  # refused (ICMP) or no answer
                    udp.call(100005, 3, 0, void, None, void)


def test_reconfigured_write_size_bounds_new_connections(tmp_path):
    with NfsTestServer(tmp_path, server_options={"nfs3.write-size": "64KB"}) as srv:
        assert srv.xlator.svc.max_record == 64 * 1024 + 64 * 1024
        srv.xlator.reconfigure({"nfs3.write-size": 1 << 20})
        assert srv.xlator.svc.max_record == (1 << 20) + 64 * 1024
        assert srv.xlator.svc.stats()["idle_timeout"] == 360
