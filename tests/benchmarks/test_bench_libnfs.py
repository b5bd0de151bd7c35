"""The cffi libnfs client's failures are named errors (needs Debian's libnfs13)."""
import socket

import pytest

libnfs_client = pytest.importorskip("benchmarks.libnfs_client")


def _loadable():
    try:
        libnfs_client._library()
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _loadable(), reason="libnfs.so.13 is not installed")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_mount_on_a_closed_port_fails_with_nfs_error():
    port = closed_port()
    with pytest.raises(libnfs_client.NfsError, match="mount"):
        libnfs_client.NfsClient(f"nfs://127.0.0.1/export/?nfsport={port}&mountport={port}")


def test_a_url_that_is_not_nfs_fails_with_nfs_error():
    with pytest.raises(libnfs_client.NfsError, match="bad NFS URL"):
        libnfs_client.NfsClient("http://127.0.0.1/export/")
