"""Fixtures of the NFS tests: a server over storage/posix, its root handle, a client."""
import pytest

from nfs3_harness import NfsTestServer


@pytest.fixture
def server(tmp_path):
    with NfsTestServer(tmp_path) as srv:
        yield srv


@pytest.fixture
def root(server):
    return server.mount("/gv0")


@pytest.fixture
def nfs(server):
    with server.client() as client:
        yield client
