"""MOUNT v3 and v1 procedures over TCP and UDP against real posix volumes."""
from __future__ import annotations

import errno

import pytest

from glusterfsd.xlator import ROOT_CALLER, ROOT_GFID
from mount import mount3
from mount.mount3 import MOUNT, errno_to_mountstat
from mount.rmtab import Rmtab
from nfs import fh
from rpcsvc import wire
from rpcsvc.client import RpcCallError, RpcClient

PROG = 100005
V3 = MOUNT.programs["MOUNT_PROGRAM"].versions[3].procs
V1 = MOUNT.programs["MOUNT_PROGRAM"].versions[1].procs
ROOT_CRED = ("sys", 0, 0, (0,), "client")
USER_CRED = ("sys", 1000, 1000, (1000,), "client")


def call(served, proc, arg=None, vers=3, proto="tcp", cred=ROOT_CRED):
    procs = V3 if vers == 3 else V1
    port = served.tcp_port if proto == "tcp" else served.udp_port
    with RpcClient("127.0.0.1", port, proto, timeout=5, cred=cred) as client:
        spec = procs[proc]
        return client.call(PROG, vers, proc, spec.arg, arg, spec.res)


def mnt(served, path, **kw):
    return call(served, mount3.PROC_MNT, path.encode() if isinstance(path, str) else path, **kw)


def test_null_on_both_versions_and_transports(serve_mount):
    served = serve_mount()
    for vers in (3, 1):
        for proto in ("tcp", "udp"):
            assert call(served, mount3.PROC_NULL, vers=vers, proto=proto) is None


def test_mnt_volume_returns_the_root_handle_and_auth_flavors(serve_mount):
    served = serve_mount()
    status, ok = mnt(served, "/gv0")
    assert status == MOUNT.MNT3_OK
    assert ok.auth_flavors == [1, 0]                  # AUTH_UNIX first, as Linux expects
    assert len(ok.fhandle) == fh.FH_SIZE
    exportid, gfid, mountid = fh.parse(ok.fhandle)
    gv0 = served.exports.by_name("gv0")
    assert exportid == gv0.volume_id == served.volumes[0].volume_id   # the storage's own id
    assert gfid == ROOT_GFID and mountid == fh.mountid_for_path("/gv0")
    assert bytes(ok.fhandle) == gv0.root_fh()
    assert served.rmtab.entries() == [("127.0.0.1", "/gv0")]


def test_mnt_over_udp(serve_mount):
    served = serve_mount()
    status, ok = mnt(served, "/gv1", proto="udp")
    assert status == MOUNT.MNT3_OK and fh.parse(ok.fhandle)[1] == ROOT_GFID
    assert mnt(served, "/gv1/none", proto="udp")[0] == MOUNT.MNT3ERR_NOENT


def test_mnt_of_a_name_the_rmtab_cannot_hold_still_mounts(serve_mount, volume_dirs):
    import os
    os.mkdir(os.path.join(volume_dirs["gv0"], "two\nlines"))
    served = serve_mount()
    assert mnt(served, "/gv0/two\nlines")[0] == MOUNT.MNT3_OK
    assert served.rmtab.entries() == []


def test_mnt_subdirectory_and_path_forms(serve_mount):
    served = serve_mount()
    for given in ("/gv0/sub/deeper", "/gv0//sub/deeper/", "gv0/sub/./deeper"):
        status, ok = mnt(served, given)
        assert status == MOUNT.MNT3_OK
        exportid, gfid, mountid = fh.parse(ok.fhandle)
        assert exportid == served.exports.by_name("gv0").volume_id
        gv0 = served.volumes[0]
        sub = gv0.lookup(ROOT_CALLER, ROOT_GFID, b"sub")
        assert gfid == gv0.lookup(ROOT_CALLER, sub.gfid, b"deeper").gfid
        assert mountid == fh.mountid_for_path("/gv0")     # the governing export's
    # one entry: the normalized path, recorded once
    assert served.rmtab.entries() == [("127.0.0.1", "/gv0/sub/deeper")]


@pytest.mark.parametrize("path, status", [
    ("/nothere", "MNT3ERR_NOENT"),
    ("/gv0/missing", "MNT3ERR_NOENT"),
    ("/gv0/afile", "MNT3ERR_NOTDIR"),
    ("/gv0/link", "MNT3ERR_NOTDIR"),
    ("/gv0/" + "n" * 256, "MNT3ERR_NAMETOOLONG"),
    ("/", "MNT3ERR_NOENT"),
])
def test_mnt_errors(serve_mount, path, status):
    served = serve_mount()
    result, arm = mnt(served, path)
    assert result == getattr(MOUNT, status) and arm is None
    assert served.rmtab.entries() == []


def test_mnt_of_a_file_export_dir_is_notdir(serve_mount):
    served = serve_mount(**{"nfs3.gv0.export-dir": "/afile,/sub"})
    assert mnt(served, "/gv0/afile")[0] == MOUNT.MNT3ERR_NOTDIR
    assert mnt(served, "/gv0/sub")[0] == MOUNT.MNT3_OK


def test_mnt_path_over_the_xdr_limit_is_garbage_args(serve_mount):
    served = serve_mount()
    too_long = b"/gv0/" + b"x" * 1100
    args = len(too_long).to_bytes(4, "big") + too_long + b"\0" * (-len(too_long) % 4)
    message = wire.build_call(77, PROG, 3, mount3.PROC_MNT, wire.AUTH_NONE, b"") + args
    with RpcClient("127.0.0.1", served.tcp_port, "tcp", timeout=5) as client:
        header = wire.parse_reply(client.call_raw(message))
    assert header.accepted and header.stat == wire.GARBAGE_ARGS


def test_mnt_path_of_exactly_the_limit_is_a_mount_error(serve_mount):
    served = serve_mount()
    path = "/gv0" + ("/" + "a" * 200) * 5
    path += "/" + "b" * (1024 - len(path) - 1)
    assert len(path) == 1024
    assert mnt(served, path)[0] == MOUNT.MNT3ERR_NOENT


def test_host_not_allowed_gets_acces(serve_mount):
    served = serve_mount(**{"rpc-auth.addr.gv0.allow": "10.0.0.0/8"})
    assert mnt(served, "/gv0")[0] == MOUNT.MNT3ERR_ACCES
    assert mnt(served, "/gv0/sub")[0] == MOUNT.MNT3ERR_ACCES
    assert mnt(served, "/gv1")[0] == MOUNT.MNT3_OK
    rejected = serve_mount(**{"rpc-auth.addr.reject": "127.0.0.1"})
    assert mnt(rejected, "/gv1")[0] == MOUNT.MNT3ERR_ACCES
    assert rejected.rmtab.entries() == []


def test_hostspec_of_an_export_dir(serve_mount):
    served = serve_mount(**{"nfs3.gv0.export-dir": "/sub(10.1.1.1),/shared(127.0.0.0/8)"})
    assert mnt(served, "/gv0/sub")[0] == MOUNT.MNT3ERR_ACCES
    assert mnt(served, "/gv0/sub/deeper")[0] == MOUNT.MNT3ERR_ACCES   # governed by /gv0/sub
    assert mnt(served, "/gv0/shared")[0] == MOUNT.MNT3_OK
    assert mnt(served, "/gv0")[0] == MOUNT.MNT3_OK
    # a directory below a directory export carries that export's mount id
    status, ok = mnt(served, "/gv0/shared/inner")
    assert status == MOUNT.MNT3_OK
    assert fh.parse(ok.fhandle)[2] == fh.mountid_for_path("/gv0/shared")


def test_storage_permission_error_is_acces(serve_mount, volume_dirs):
    import os
    os.chmod(os.path.join(volume_dirs["gv0"], "a"), 0o700)
    served = serve_mount()
    assert mnt(served, "/gv0/a/b", cred=USER_CRED)[0] == MOUNT.MNT3ERR_ACCES
    assert mnt(served, "/gv0/a/b", cred=ROOT_CRED)[0] == MOUNT.MNT3_OK


def test_disabled_volume_and_export_volumes_off(serve_mount):
    served = serve_mount(**{"nfs.gv1.disable": "on", "nfs3.export-volumes": "off",
                            "nfs3.gv0.export-dir": "/sub"})
    assert mnt(served, "/gv1")[0] == MOUNT.MNT3ERR_NOENT
    assert mnt(served, "/gv0")[0] == MOUNT.MNT3ERR_NOENT
    assert mnt(served, "/gv0/sub")[0] == MOUNT.MNT3_OK
    assert mnt(served, "/gv0/sub/deeper")[0] == MOUNT.MNT3_OK


def test_dump_umnt_umntall(serve_mount):
    served = serve_mount()
    assert call(served, mount3.PROC_DUMP) == []
    for path in ("/gv0", "/gv1", "/gv0/sub"):
        assert mnt(served, path)[0] == MOUNT.MNT3_OK
    served.rmtab.add("192.0.2.9", "/gv1")            # another client's mount
    listed = [(bytes(b.ml_hostname), bytes(b.ml_directory)) for b in call(served, mount3.PROC_DUMP)]
    assert listed == [(b"127.0.0.1", b"/gv0"), (b"127.0.0.1", b"/gv1"),
                      (b"127.0.0.1", b"/gv0/sub"), (b"192.0.2.9", b"/gv1")]
    assert call(served, mount3.PROC_UMNT, b"/gv0/sub/") is None      # normalized too
    assert call(served, mount3.PROC_UMNT, b"/never-mounted") is None
    assert ("127.0.0.1", "/gv0/sub") not in served.rmtab.entries()
    assert call(served, mount3.PROC_UMNTALL) is None
    assert served.rmtab.entries() == [("192.0.2.9", "/gv1")]          # only the caller's
    v1 = [(bytes(b.ml_hostname), bytes(b.ml_directory)) for b in call(served, 2, vers=1)]
    assert v1 == [(b"192.0.2.9", b"/gv1")]


def test_export_lists_paths_and_groups(serve_mount):
    served = serve_mount(**{"nfs3.gv0.export-dir": "/sub(10.0.0.0/8|127.0.0.1)",
                            "rpc-auth.addr.gv1.allow": "192.168.0.0/16,127.0.0.1"})
    for vers in (3, 1):
        nodes = call(served, mount3.PROC_EXPORT, vers=vers)
        listed = {bytes(n.ex_dir): [bytes(g.gr_name) for g in n.ex_groups] for n in nodes}
        assert listed == {b"/gv0": [], b"/gv0/sub": [b"10.0.0.0/8", b"127.0.0.1"],
                          b"/gv1": [b"192.168.0.0/16", b"127.0.0.1"]}


def test_mount_v1_mnt_is_proc_unavail(serve_mount):
    served = serve_mount()
    with pytest.raises(RpcCallError) as err:
        call(served, 1, b"/gv0", vers=1)
    assert err.value.stat == wire.PROC_UNAVAIL
    with pytest.raises(RpcCallError) as err:
        with RpcClient("127.0.0.1", served.tcp_port, "tcp", timeout=5) as client:
            client.call(PROG, 2, 0)
    assert err.value.stat == wire.PROG_MISMATCH and (err.value.low, err.value.high) == (1, 3)


def test_mount_list_survives_a_restart(serve_mount, tmp_path):
    path = str(tmp_path / "state" / "rmtab")
    first = serve_mount(rmtab_path=path)
    assert mnt(first, "/gv0")[0] == MOUNT.MNT3_OK
    first.svc.close()
    second = serve_mount(rmtab_path=path)
    listed = [(bytes(b.ml_hostname), bytes(b.ml_directory)) for b in call(second, mount3.PROC_DUMP)]
    assert listed == [(b"127.0.0.1", b"/gv0")]


def test_errno_mapping():
    assert errno_to_mountstat(errno.ENOENT) == MOUNT.MNT3ERR_NOENT
    assert errno_to_mountstat(errno.EACCES) == MOUNT.MNT3ERR_ACCES
    assert errno_to_mountstat(errno.ENOTDIR) == MOUNT.MNT3ERR_NOTDIR
    assert errno_to_mountstat(errno.ENAMETOOLONG) == MOUNT.MNT3ERR_NAMETOOLONG
    assert errno_to_mountstat(errno.EPERM) == MOUNT.MNT3ERR_PERM
    assert errno_to_mountstat(errno.EIO) == MOUNT.MNT3ERR_IO
    assert errno_to_mountstat(errno.EINVAL) == MOUNT.MNT3ERR_INVAL
    assert errno_to_mountstat(errno.ENOSYS) == MOUNT.MNT3ERR_NOTSUPP
    assert errno_to_mountstat(errno.ESTALE) == MOUNT.MNT3ERR_SERVERFAULT
    assert errno_to_mountstat(None) == MOUNT.MNT3ERR_SERVERFAULT


def test_storage_failure_is_serverfault(serve_mount, monkeypatch):
    served = serve_mount()
    gv0 = served.volumes[0]

    def broken(caller, parent, name):
        raise RuntimeError("storage bug")

    monkeypatch.setattr(gv0, "lookup", broken)
    assert mnt(served, "/gv0/sub")[0] == MOUNT.MNT3ERR_SERVERFAULT
    assert served.rmtab.entries() == []


def test_exports_can_be_swapped_without_new_programs(serve_mount):
    served = serve_mount()
    table = served.exports
    served.service.set_exports(type(table)([], {}, True))
    assert mnt(served, "/gv0")[0] == MOUNT.MNT3ERR_NOENT
    assert call(served, mount3.PROC_EXPORT) == []
    served.service.set_exports(table)
    assert mnt(served, "/gv0")[0] == MOUNT.MNT3_OK


def test_mount_programs_builds_v3_and_v1():
    from nfs.exports import ExportTable
    programs = mount3.mount_programs(ExportTable([], {}, True), Rmtab(None))
    assert [(p.number, p.version) for p in programs] == [(100005, 3), (100005, 1)]
    assert 1 not in programs[1].actors and 1 in programs[0].actors
