"""Escape attempts and export boundaries: '..', symlinks, forged handles, host rules, sub-exports."""
import os

from glusterfsd.xlator import ROOT_GFID
from nfs import fh
from nfs3_harness import N, OK, NfsTestServer, fh3, random_gfid


def test_dotdot_at_a_directory_export_root_stays_inside(tmp_path):
    opts = {"nfs3.gv0.export-dir": "/sub"}
    with NfsTestServer(tmp_path, server_options=opts) as srv:
        (srv.brick() / "sub").mkdir()
        (srv.brick() / "outside").write_text("secret")
        sub = srv.mount("/gv0/sub")
        sub_gfid = fh.parse(sub)[1]
        assert sub_gfid != ROOT_GFID
        with srv.client() as nfs:
            up = nfs.handle_of(sub, b"..")
            assert fh.parse(up)[1] == sub_gfid
            assert nfs.lookup(up, b"outside")[0] == N.NFS3ERR_NOENT
            entries = {bytes(e.name): e for e in nfs.readdirplus(sub)[1].reply.entries}
            assert fh.parse(bytes(entries[b".."].name_handle[1].data))[1] == sub_gfid
            plain = {bytes(e.name): e for e in nfs.readdir(sub)[1].reply.entries}
            assert plain[b".."].fileid == plain[b"."].fileid
            inner = nfs.new_dir(sub, b"inner")
            assert fh.parse(nfs.handle_of(inner, b".."))[1] == sub_gfid


def test_symlink_to_etc_is_never_followed(tmp_path):
    with NfsTestServer(tmp_path) as srv:
        os.symlink("/etc", srv.brick() / "etc")
        os.symlink("/etc/passwd", srv.brick() / "passwd")
        root = srv.mount()
        with srv.client() as nfs:
            etc = nfs.handle_of(root, b"etc")
            passwd = nfs.handle_of(root, b"passwd")
            assert bytes(nfs.call("READLINK", symlink=fh3(passwd))[1].data) == b"/etc/passwd"
            assert nfs.lookup(etc, b"passwd")[0] == N.NFS3ERR_NOTDIR
            assert nfs.read(passwd, 0, 100)[0] == N.NFS3ERR_INVAL
            assert nfs.write(passwd, 0, b"x")[0] == N.NFS3ERR_INVAL
            assert nfs.create(etc, b"evil")[0] == N.NFS3ERR_NOTDIR
            assert nfs.mkdir(etc, b"evil")[0] == N.NFS3ERR_NOTDIR
            assert nfs.readdirplus(etc)[0] == N.NFS3ERR_NOTDIR
            # Writing through the name must not follow the link either.
            status, _ = nfs.create(root, b"passwd", how=N.UNCHECKED)
            assert status != OK
            assert nfs.call("COMMIT", file=fh3(passwd), offset=0, count=0)[0] == N.NFS3ERR_INVAL
    assert not os.path.exists("/etc/evil")


def test_handle_of_one_export_with_a_gfid_of_another_is_stale(tmp_path):
    with NfsTestServer(tmp_path, volumes=("gv0", "gv1")) as srv, srv.client() as nfs:
        r0, r1 = srv.mount("/gv0"), srv.mount("/gv1")
        f1 = nfs.new_file(r1, b"only-in-gv1")
        exportid0, _g, mountid0 = fh.parse(r0)
        mixed = fh.build(exportid0, fh.parse(f1)[1], mountid0)
        assert nfs.getattr(mixed)[0] == N.NFS3ERR_STALE
        assert nfs.getattr(f1)[0] == OK


def test_forged_handle_with_valid_header_and_random_gfid_is_stale_everywhere(tmp_path):
    with NfsTestServer(tmp_path) as srv, srv.client() as nfs:
        root = srv.mount()
        exportid, _g, mountid = fh.parse(root)
        for _ in range(20):
            forged = fh.build(exportid, random_gfid(), mountid)
            assert nfs.getattr(forged)[0] == N.NFS3ERR_STALE
            assert nfs.read(forged, 0, 1)[0] == N.NFS3ERR_STALE
            assert nfs.lookup(forged, b"x")[0] == N.NFS3ERR_STALE
            assert nfs.create(forged, b"x")[0] == N.NFS3ERR_STALE


def test_disallowed_host_gets_acces_even_with_a_valid_handle(tmp_path):
    with NfsTestServer(tmp_path) as srv:
        root = srv.mount()
    opts = {"rpc-auth.addr.gv0.allow": "10.9.9.9"}
    with NfsTestServer(tmp_path, server_options=opts) as srv, srv.client() as nfs:
        assert nfs.getattr(root)[0] == N.NFS3ERR_ACCES
        assert nfs.readdir(root)[0] == N.NFS3ERR_ACCES


def test_rejected_host_gets_acces(tmp_path):
    opts = {"rpc-auth.addr.reject": "127.0.0.0/8"}
    with NfsTestServer(tmp_path, server_options=opts) as srv, srv.client() as nfs:
        export = srv.xlator.exports.by_name("gv0")
        assert nfs.getattr(export.root_fh())[0] == N.NFS3ERR_ACCES


def test_directory_export_host_rules_apply_to_its_handles(tmp_path):
    opts = {"nfs3.gv0.export-dir": "/open(127.0.0.1),/closed(10.1.1.1)",
            "nfs3.export-volumes": "off"}
    with NfsTestServer(tmp_path, server_options=opts) as srv:
        (srv.brick() / "open").mkdir()
        (srv.brick() / "closed").mkdir()
        opened = srv.mount("/gv0/open")
        exports = {e.path: e for e in srv.xlator.exports}
        closed = exports["/gv0/closed"]
        with srv.client() as nfs:
            assert nfs.getattr(opened)[0] == OK
            assert nfs.getattr(closed.root_fh())[0] == N.NFS3ERR_ACCES
            volume = srv.xlator.exports.by_name("gv0")
            whole = fh.build(volume.volume_id, ROOT_GFID, volume.mountid)
            assert nfs.getattr(whole)[0] != OK


def test_forged_handles_cannot_leave_a_directory_export(tmp_path):
    """With only /a exported to us, handles naming the volume root or a directory of /b
    (even one whose gfid we learnt earlier) are STALE; /a's own subdirectories work, also
    after a restart when the server must walk '..' to check them."""
    with NfsTestServer(tmp_path) as srv, srv.client() as nfs:
        root = srv.mount()
        a = nfs.new_dir(root, b"a")
        a_deep = nfs.new_dir(nfs.new_dir(a, b"x"), b"y")
        b = nfs.new_dir(root, b"b")
        b_deep = nfs.new_dir(b, b"z")
    opts = {"nfs3.gv0.export-dir": "/a(127.0.0.1),/b(10.2.2.2)", "nfs3.export-volumes": "off"}
    with NfsTestServer(tmp_path, server_options=opts) as srv, srv.client() as nfs:
        a_root = srv.mount("/gv0/a")
        exportid, _g, a_mountid = fh.parse(a_root)
        assert fh.parse(a_root)[1] == fh.parse(a)[1]

        def as_a(handle):
            return fh.build(exportid, fh.parse(handle)[1], a_mountid)

        assert nfs.getattr(fh.build(exportid, ROOT_GFID, a_mountid))[0] == N.NFS3ERR_STALE
        assert nfs.getattr(as_a(b))[0] == N.NFS3ERR_STALE
        assert nfs.getattr(as_a(b_deep))[0] == N.NFS3ERR_STALE
        assert nfs.readdir(as_a(b_deep))[0] == N.NFS3ERR_STALE
        assert nfs.getattr(as_a(a_deep))[0] == OK
        up = nfs.handle_of(as_a(a_deep), b"..")
        assert fh.parse(nfs.handle_of(up, b".."))[1] == fh.parse(a)[1]
        # a directory mounted below /a (its own mount id) is checked the same way
        deeper = srv.mount("/gv0/a/x")
        assert nfs.getattr(deeper)[0] == OK
        other_id = fh.parse(deeper)[2]
        assert nfs.getattr(fh.build(exportid, fh.parse(b)[1], other_id))[0] == N.NFS3ERR_STALE
