"""READDIR and READDIRPLUS: resumable listings, cookie verifiers, sizes, TOOSMALL, eof."""
import pytest

from glusterfsd.xlator import ROOT_GFID
from nfs import fh
from nfs.nfs3_dir import cookie_verifier
from nfs3_harness import N, OK, NfsTestServer, fh3

MANY = 10_000


def test_listing_of_an_empty_export_has_dots_and_eof(nfs, root):
    status, res = nfs.readdir(root)
    assert status == OK and res.reply.eof
    assert sorted(bytes(e.name) for e in res.reply.entries) == [b".", b".."]
    assert res.dir_attributes[0]


def test_hidden_index_directory_is_not_listed(nfs, root, server):
    on_disk = {p.name for p in server.brick().iterdir()}
    names = set(nfs.list_names(root)) | set(nfs.list_names(root, plus=True))
    assert names == {b".", b".."}
    assert on_disk  # the storage keeps its index there; clients never see it


def make_dir(server, root, count: int) -> bytes:
    """A directory of `count` files made on the brick directly (fast), listed over NFS."""
    with server.client() as nfs:
        d = nfs.new_dir(root, b"big")
    for i in range(count):
        (server.brick() / "big" / f"file-{i:05d}").touch()
    return d


@pytest.fixture
def big_dir(server, root):
    return make_dir(server, root, 400)


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    with NfsTestServer(tmp_path_factory.mktemp("huge")) as srv:
        yield srv, make_dir(srv, srv.mount(), MANY)


@pytest.mark.parametrize("plus", [False, True])
def test_resumed_listing_of_10000_entries_is_complete_and_unique(huge, plus):
    srv, directory = huge
    with srv.client() as nfs:
        names = nfs.list_names(directory, plus=plus, count=8192)
    expected = {f"file-{i:05d}".encode() for i in range(MANY)} | {b".", b".."}
    assert len(names) == len(set(names)) == len(expected)
    assert set(names) == expected


def test_readdirplus_entries_carry_handles_and_attributes(nfs, root):
    handle = nfs.new_file(root, b"f", b"12345")
    status, res = nfs.readdirplus(root)
    assert status == OK and res.reply.eof
    entries = {bytes(e.name): e for e in res.reply.entries}
    f = entries[b"f"]
    assert f.name_handle[0] and bytes(f.name_handle[1].data) == handle
    assert f.name_attributes[0] and f.name_attributes[1].size == 5
    assert f.fileid == f.name_attributes[1].fileid
    dotdot = entries[b".."]
    assert fh.parse(bytes(dotdot.name_handle[1].data))[1] == ROOT_GFID


def test_readdir_fileids_match_getattr(nfs, root):
    handle = nfs.new_file(root, b"f")
    entries = {bytes(e.name): e for e in nfs.readdir(root)[1].reply.entries}
    assert entries[b"f"].fileid == nfs.getattr(handle)[1].obj_attributes.fileid


def test_cookie_verifier_is_checked_on_resume(nfs, big_dir):
    status, res = nfs.readdir(big_dir, count=1024)
    assert status == OK and not res.reply.eof
    verf = bytes(res.cookieverf)
    assert verf == cookie_verifier(fh.parse(big_dir)[1])
    cookie = res.reply.entries[-1].cookie
    assert nfs.readdir(big_dir, cookie, verf, 1024)[0] == OK
    assert nfs.readdir(big_dir, cookie, bytes(8), 1024)[0] == OK     # a zeroed verifier
    status, res = nfs.readdir(big_dir, cookie, b"wrong!!!", 1024)
    assert status == N.NFS3ERR_BAD_COOKIE and res.dir_attributes[0]
    assert nfs.readdirplus(big_dir, cookie, b"wrong!!!")[0] == N.NFS3ERR_BAD_COOKIE


def test_cookie_verifier_survives_a_restart(server, big_dir):
    with server.client() as nfs:
        res = nfs.readdir(big_dir, count=1024)[1]
        cookie, verf = res.reply.entries[-1].cookie, bytes(res.cookieverf)
        first = {bytes(e.name) for e in res.reply.entries}
    server.restart()
    with server.client() as nfs:
        status, res = nfs.readdir(big_dir, cookie, verf, 1024)
        assert status == OK
        assert not first & {bytes(e.name) for e in res.reply.entries}


def test_readdir_count_bounds_the_reply(nfs, big_dir):
    for count in (512, 1024, 4096):
        status, res = nfs.readdir(big_dir, count=count)
        assert status == OK
        size = len(N.READDIR3res.encode((status, res)))
        assert size <= count
        assert size > count - 40       # filled as far as the next entry allows


def test_readdirplus_maxcount_and_dircount_bound_the_reply(nfs, big_dir):
    status, res = nfs.readdirplus(big_dir, dircount=100_000, maxcount=4096)
    assert status == OK
    assert len(N.READDIRPLUS3res.encode((status, res))) <= 4096
    by_max = len(res.reply.entries)
    status, res = nfs.readdirplus(big_dir, dircount=200, maxcount=65536)
    assert status == OK
    entries = res.reply.entries
    dir_info = sum(8 + 4 + ((len(e.name) + 3) & ~3) + 8 for e in entries)
    assert dir_info <= 200 and len(entries) < by_max


def test_toosmall_when_not_even_one_entry_fits(nfs, big_dir):
    status, res = nfs.readdir(big_dir, count=100)
    assert status == N.NFS3ERR_TOOSMALL and res.dir_attributes[0]
    assert nfs.readdirplus(big_dir, dircount=1000, maxcount=150)[0] == N.NFS3ERR_TOOSMALL


def test_readdirplus_with_tiny_dircount_still_progresses(nfs, big_dir):
    status, res = nfs.readdirplus(big_dir, dircount=1, maxcount=4096)
    assert status == OK and len(res.reply.entries) == 1


def test_listing_a_file_is_notdir(nfs, root):
    handle = nfs.new_file(root, b"f")
    status, res = nfs.readdir(handle)
    assert status == N.NFS3ERR_NOTDIR and res.dir_attributes[0]
    assert nfs.readdirplus(handle)[0] == N.NFS3ERR_NOTDIR


def test_listing_a_removed_directory_is_stale(nfs, root):
    d = nfs.new_dir(root, b"d")
    assert nfs.call("RMDIR", object=N.diropargs3(dir=fh3(root), name=b"d"))[0] == OK
    assert nfs.readdir(d)[0] == N.NFS3ERR_STALE


def test_rdirplus_off_answers_notsupp(tmp_path):
    with NfsTestServer(tmp_path, server_options={"nfs.rdirplus": "off"}) as srv:
        root = srv.mount()
        with srv.client() as nfs:
            assert nfs.readdirplus(root)[0] == N.NFS3ERR_NOTSUPP
            assert nfs.readdir(root)[0] == OK


def test_listing_over_udp_fits_a_datagram(server, big_dir):
    with server.client(proto="udp") as udp:
        status, res = udp.readdirplus(big_dir, dircount=1 << 20, maxcount=1 << 20)
        assert status == OK and not res.reply.eof
        assert len(N.READDIRPLUS3res.encode((status, res))) <= 32768
