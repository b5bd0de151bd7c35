"""Wireshark decodes every NFS and MOUNT frame of a libnfs session: no malformed reply.

tshark is an XDR decoder we did not write, with its own idea of RFC 1813:
a reply our codec got wrong (a missing wcc field, a bad list terminator, a
short opaque) shows up as a malformed frame.  Most replies packed by hand
(GETATTR, LOOKUP and its NOENT, CREATE, MKDIR, REMOVE, RMDIR, READ, WRITE,
READDIRPLUS) are in the session; libnfs's own library (through cffi) does what
the nfs-* tools cannot: stat a path and a missing one, remove, mkdir, rmdir.
"""
import errno
import shutil
import subprocess

import pytest

from benchmarks.libnfs_client import NfsClient, NfsError
from nfs3_harness import NfsTestServer
from tshark_capture import Capture

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("tshark", "nfs-cp", "nfs-ls", "nfs-cat")),
    reason="tshark and libnfs utilities are needed")


def test_a_libnfs_session_decodes_cleanly(tmp_path):
    with NfsTestServer(tmp_path / "srv") as srv:
        base = f"nfs://127.0.0.1/gv0/{{}}?nfsport={srv.nfs_port}&mountport={srv.mount_port}"

        def client(*argv):
            return subprocess.run(["timeout", "60", *argv], capture_output=True, timeout=70)

        def probe():
            client("nfs-ls", base.format(""))

        capture = Capture(tmp_path / "nfs.pcap", [srv.nfs_port, srv.mount_port], probe)
        try:
            source = tmp_path / "data.bin"
            source.write_bytes(bytes(range(256)) * 1000)
            assert client("nfs-cp", str(source), base.format("data.bin")).returncode == 0
            brick = srv.brick()
            (brick / "dir").mkdir()
            (brick / "dir" / "inner").write_text("x")
            (brick / "link").symlink_to("/etc")
            assert client("nfs-ls", "-R", base.format("")).returncode == 0
            assert client("nfs-cat", base.format("data.bin")).stdout == source.read_bytes()
            with NfsClient(base.format("")) as libnfs:      # what nfs-* cannot do
                assert libnfs.stat("/dir/inner")[1] == 1
                with pytest.raises(NfsError) as missing:
                    libnfs.stat("/dir/missing")
                assert missing.value.errno == errno.ENOENT
                libnfs.unlink("/data.bin")
                libnfs.mkdir("/made")
                libnfs.rmdir("/made")
            assert not (brick / "data.bin").exists() and not (brick / "made").exists()
        finally:
            capture.stop()
        ports = (srv.nfs_port, srv.mount_port)
        malformed = capture.read("_ws.malformed || _ws.expert.severity >= error", tcp_ports=ports)
        assert malformed == []
        procedures = "\n".join(capture.read("nfs", tcp_ports=ports))
        for name in ("GETATTR", "FSINFO", "LOOKUP", "CREATE", "WRITE", "COMMIT", "READDIRPLUS",
                     "READ", "REMOVE", "MKDIR", "RMDIR"):
            assert f"V3 {name} Reply" in procedures, name
        assert capture.read("mount", tcp_ports=ports)
