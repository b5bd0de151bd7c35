"""Real clients against the server: libnfs's nfs-cp, nfs-ls, nfs-cat; showmount.

libnfs is told the ports (`?nfsport=&mountport=`), so no portmapper is needed
for it; showmount always asks the portmapper on port 111, so that test
starts the server with portmap registration on (a built-in portmapper if none
answers) and is skipped when port 111 is held by something that is not one.
"""
import hashlib
import os
import shutil
import subprocess

import pytest

from nfs3_harness import NfsTestServer
from rpcsvc import pmap

TOOLS = ("nfs-cp", "nfs-ls", "nfs-cat")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason="libnfs utilities (nfs-cp, nfs-ls, nfs-cat) not installed")
MIB = 1 << 20


def run(*argv, timeout=120):
    return subprocess.run(["timeout", str(timeout), *argv], capture_output=True, timeout=timeout + 10)


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with NfsTestServer(tmp_path_factory.mktemp("libnfs")) as srv:
        yield srv


def url(srv, path: str) -> str:
    return f"nfs://127.0.0.1{path}?nfsport={srv.nfs_port}&mountport={srv.mount_port}"


def random_file(path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = min(left, 8 * MIB)
            f.write(os.urandom(chunk))
            left -= chunk


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, MIB - 1, MIB, MIB + 1, 200 * MIB])
def test_nfs_cp_in_and_out_keeps_every_byte(server, tmp_path, size):
    local = tmp_path / "in"
    random_file(local, size)
    name = f"copy-{size}"
    done = run("nfs-cp", str(local), url(server, f"/gv0/{name}"))
    assert done.returncode == 0, done.stderr
    assert sha256(server.brick() / name) == sha256(local)
    back = tmp_path / "out"
    done = run("nfs-cp", url(server, f"/gv0/{name}"), str(back))
    assert done.returncode == 0, done.stderr
    assert sha256(back) == sha256(local)
    os.unlink(server.brick() / name)


def test_nfs_cp_refuses_to_overwrite(server, tmp_path):
    local = tmp_path / "x"
    local.write_bytes(b"first")
    assert run("nfs-cp", str(local), url(server, "/gv0/once")).returncode == 0
    local.write_bytes(b"second")
    assert run("nfs-cp", str(local), url(server, "/gv0/once")).returncode != 0
    assert (server.brick() / "once").read_bytes() == b"first"


def test_nfs_ls_recursive_shows_files_dirs_symlinks_and_a_fifo(server):
    tree = server.brick() / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "file").write_bytes(b"12345")
    (tree / "sub" / "deeper" / "leaf").write_bytes(b"")
    os.symlink("/etc", tree / "sub" / "etc-link")
    os.mkfifo(tree / "sub" / "pipe")
    done = run("nfs-ls", "-R", url(server, "/gv0/tree"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    by_name = {line.split()[-1]: line for line in lines if line.strip()}
    assert set(by_name) == {"file", "sub", "sub/deeper", "sub/deeper/leaf", "sub/etc-link",
                            "sub/pipe"}
    assert by_name["sub"].startswith("d") and by_name["sub/deeper"].startswith("d")
    assert by_name["file"].startswith("-") and " 5 " in by_name["file"]
    assert by_name["sub/etc-link"].startswith("l")


def test_nfs_cat_prints_a_file(server):
    (server.brick() / "cat-me").write_bytes(b"hello from gnfs\n")
    done = run("nfs-cat", url(server, "/gv0/cat-me"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello from gnfs\n"


def test_a_symlink_to_etc_cannot_be_used_to_read_etc(server):
    os.symlink("/etc", server.brick() / "etc")
    done = run("nfs-cat", url(server, "/gv0/etc/hostname"))
    assert done.returncode != 0 and done.stdout == b""


def test_a_missing_export_is_refused(server):
    done = run("nfs-ls", url(server, "/nosuchvolume"))
    assert done.returncode != 0


@pytest.mark.skipif(shutil.which("showmount") is None, reason="showmount not installed")
def test_showmount_lists_exports_and_mounts(tmp_path):
    opts = {"rpc.register-with-portmap": "on"}
    with NfsTestServer(tmp_path, server_options=opts) as srv:
        if not srv.xlator.registered:
            pytest.skip("no portmapper could be reached or started on port 111")
        try:
            registered = {(p, v, proto): port for p, v, proto, port in pmap.dump()}
            assert registered[(100003, 3, "tcp")] == srv.nfs_port
            assert registered[(100005, 3, "tcp")] == srv.mount_port
            done = run("showmount", "-e", "127.0.0.1", timeout=30)
            assert done.returncode == 0, done.stderr
            assert "/gv0" in done.stdout.decode()
            srv.mount("/gv0")
            done = run("showmount", "-a", "127.0.0.1", timeout=30)
            assert done.returncode == 0, done.stderr
            assert "127.0.0.1:/gv0" in done.stdout.decode()
            # libnfs with no ports in the URL finds NFS and MOUNT through the portmapper
            source = tmp_path / "through-portmap.bin"
            random_file(source, 70000)
            done = run("nfs-cp", str(source), "nfs://127.0.0.1/gv0/through-portmap.bin")
            assert done.returncode == 0, done.stderr
            done = run("nfs-cat", "nfs://127.0.0.1/gv0/through-portmap.bin")
            assert done.returncode == 0 and done.stdout == source.read_bytes()
        finally:
            mappings = list(srv.xlator.registered)
    remaining = {(p, v) for p, v, _proto, _port in (pmap.dump() if pmap.portmapper_answers()
                                                      else [])}
    assert not {(m[0], m[1]) for m in mappings} & remaining
