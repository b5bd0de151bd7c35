"""The export table: volume and directory exports, path resolution, host rules."""
from __future__ import annotations

import errno
import uuid

import pytest
from exports_fakes import TreeVolume, make_server

from glusterfsd.options import OptionError
from glusterfsd.xlator import ROOT_CALLER, ROOT_GFID, Caller
from nfs import exports as exports_mod
from nfs import fh, hostrules
from nfs.exports import (
    EXPORT_OPTIONS, MNTPATHLEN, ExportTable, normalize_mount_path, parse_export_dirs,
    validate_export_options,
)
from nfs.hostrules import HostRules, check_hostspec

USER = Caller(1000, 1000, ())


def volumes():
    gv0 = TreeVolume("gv0", ["sub/", "a/b/c/", "file", "a/link@", "priv/inner/", "shared/"],
                     private=["priv"])
    gv1 = TreeVolume("gv1", ["docs/"])
    return gv0, gv1


def table(**given):
    return ExportTable.from_options(make_server(volumes(), **given))


# --- the option rows ----------------------------------------------------------
def test_every_option_row_is_described():
    keys = {opt.key for opt in EXPORT_OPTIONS}
    for key in ("nfs3.*.volume-id", "nfs3.*.volume-access", "nfs3.*.trusted-write",
                "nfs3.*.trusted-sync", "nfs3.*.export-dir", "nfs3.export-dirs",
                "nfs3.export-volumes", "nfs.*.disable", "rpc-auth.addr.allow",
                "rpc-auth.addr.reject", "rpc-auth.addr.*.allow", "rpc-auth.addr.*.reject",
                "rpc-auth.addr.namelookup", "nfs.mount-rmtab"):
        assert key in keys
    assert all(opt.description for opt in EXPORT_OPTIONS)


def test_badly_typed_values_are_refused_by_the_table():
    with pytest.raises(OptionError):
        make_server(volumes(), **{"nfs3.gv0.volume-access": "sometimes"})
    with pytest.raises(OptionError):
        make_server(volumes(), **{"nfs3.gv0.volume-id": "not-a-uuid"})
    with pytest.raises(OptionError):
        make_server(volumes(), **{"rpc-auth.addr.allow": "10.0.0.0/40"})
    with pytest.raises(OptionError):
        make_server(volumes(), **{"nfs.mount-rmtab": "relative/rmtab"})


# --- volume exports -------------------------------------------------------------
def test_each_subvolume_is_an_export_with_defaults():
    exports = table()
    assert [e.path for e in exports] == ["/gv0", "/gv1"]
    gv0 = exports.by_path("/gv0")
    assert gv0.name == "gv0" and gv0.is_volume
    assert gv0.root_gfid == ROOT_GFID
    assert not gv0.read_only and not gv0.trusted_write and not gv0.trusted_sync
    assert gv0.mountid == fh.mountid_for_path("/gv0")
    # without any configured id: a stable UUID from the name, the same on every head
    assert gv0.volume_id == uuid.uuid5(exports_mod.VOLUME_ID_NAMESPACE, "gv0").bytes
    assert table().by_path("/gv0").volume_id == gv0.volume_id
    assert gv0.volume_id != exports.by_path("/gv1").volume_id
    exportid, gfid, mountid = fh.parse(gv0.root_fh())
    assert (exportid, gfid, mountid) == (gv0.volume_id, ROOT_GFID, gv0.mountid)
    assert exports.by_volume_id(exportid) is gv0
    assert exports.by_volume_id(bytes(16)) is None


def test_volume_id_sources_in_order():
    configured = uuid.UUID("11111111-2222-3333-4444-555555555555")
    own = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    gv0 = TreeVolume("gv0", volume_id=own.bytes)
    gv1 = TreeVolume("gv1", volume_id=str(own).replace("a", "b"))
    server = make_server([gv0, gv1], **{"nfs3.gv1.volume-id": str(configured)})
    exports = ExportTable.from_options(server)
    assert exports.by_name("gv0").volume_id == own.bytes           # the storage's own id
    assert exports.by_name("gv1").volume_id == configured.bytes    # the option wins


def test_per_volume_flags():
    exports = table(**{"nfs3.gv0.volume-access": "read-only", "nfs3.gv0.trusted-sync": "on",
                       "nfs3.gv1.trusted-write": "yes"})
    gv0, gv1 = exports.by_name("gv0"), exports.by_name("gv1")
    assert gv0.read_only and gv0.trusted_sync and gv0.trusted_write   # sync implies write
    assert not gv1.read_only and gv1.trusted_write and not gv1.trusted_sync


def test_disabled_volume_is_not_exported():
    exports = table(**{"nfs.gv1.disable": "on"})
    assert [e.path for e in exports] == ["/gv0"]
    assert exports.by_path("/gv1") is None
    with pytest.raises(OSError) as err:
        exports.resolve_mount_path("/gv1", ROOT_CALLER)
    assert err.value.errno == errno.ENOENT


# --- directory exports ------------------------------------------------------------
def test_export_dir_entries_become_exports_sharing_the_volume_id():
    exports = table(**{"nfs3.gv0.export-dir": "/sub(127.0.0.1|10.0.0.0/8),/a/b/"})
    assert [e.path for e in exports] == ["/gv0", "/gv0/sub", "/gv0/a/b", "/gv1"]
    sub = exports.by_path("/gv0/sub")
    assert sub.subdir == "/sub" and sub.hostspec == ("127.0.0.1", "10.0.0.0/8")
    assert sub.volume_id == exports.by_name("gv0").volume_id
    assert sub.root_gfid == sub.xlator.gfid_of("sub")
    assert sub.mountid == fh.mountid_for_path("/gv0/sub") != exports.by_name("gv0").mountid
    # a handle under the directory export resolves to the volume export
    assert exports.by_volume_id(fh.parse(sub.root_fh())[0]) is exports.by_name("gv0")
    assert exports.by_path("/gv0/a/b").groups() == []


def test_export_volumes_off_leaves_only_directories():
    exports = table(**{"nfs3.export-volumes": "off", "nfs3.gv0.export-dir": "/sub"})
    assert [e.path for e in exports] == ["/gv0/sub"]
    with pytest.raises(OSError) as err:
        exports.resolve_mount_path("/gv0", ROOT_CALLER)
    assert err.value.errno == errno.ENOENT
    with pytest.raises(OSError) as err:                    # not below a listed export
        exports.resolve_mount_path("/gv0/a/b", ROOT_CALLER)
    assert err.value.errno == errno.ENOENT
    # handles still find their volume (it is just not mountable by itself)
    assert exports.by_volume_id(exports.by_path("/gv0/sub").volume_id).name == "gv0"


def test_export_dirs_off_ignores_export_dir_and_deep_paths():
    exports = table(**{"nfs3.export-dirs": "off", "nfs3.gv0.export-dir": "/sub"})
    assert [e.path for e in exports] == ["/gv0", "/gv1"]
    with pytest.raises(OSError) as err:
        exports.resolve_mount_path("/gv0/sub", ROOT_CALLER)
    assert err.value.errno == errno.ENOENT


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("/a", [("/a", ())]),
    (" /a/b/ , /c(1.2.3.4) ", [("/a/b", ()), ("/c", ("1.2.3.4",))]),
    ("/d(10.0.0.0/8|host.example.com|fe80::/10)",
     [("/d", ("10.0.0.0/8", "host.example.com", "fe80::/10"))]),
    ("/x//y/./z", [("/x/y/z", ())]),
])
def test_parse_export_dirs_good(text, expected):
    assert parse_export_dirs(text) == expected


@pytest.mark.parametrize("text, complaint", [
    ("sub", "absolute"),
    ("/a(1.2.3.4", "never closed"),
    ("/a)1.2.3.4(", "without"),
    ("/a((1.2.3.4))", "nested"),
    ("/a()", "empty host rule"),
    ("/a(1.2.3.4|)", "empty host rule"),
    ("/a(10.0.0.0/99)", "CIDR"),
    ("/a(bad host!)", "not an IP"),
    ("/a/../b", ".."),
    ("/", "volume itself"),
    ("/a,/a/", "twice"),
    ("/a(1.2.3.4)junk", "is not <dir>"),
    ("/" + "n" * 256, "longer than 255"),
])
def test_parse_export_dirs_bad(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_export_dirs(text)


def test_malformed_export_dir_is_an_option_error_naming_the_key():
    server = make_server(volumes(), **{"nfs3.gv1.export-dir": "/docs(1.2.3.4"})
    with pytest.raises(OptionError) as err:
        validate_export_options(server)
    assert err.value.key == "nfs3.gv1.export-dir"
    with pytest.raises(OptionError):
        ExportTable.from_options(server)


def test_per_volume_option_for_an_unknown_volume_is_an_error():
    server = make_server(volumes(), **{"rpc-auth.addr.gv9.reject": "10.0.0.1"})
    with pytest.raises(OptionError) as err:
        validate_export_options(server)
    assert err.value.key == "rpc-auth.addr.gv9.reject" and "gv9" in err.value.message
    validate_export_options(make_server(volumes(), **{"rpc-auth.addr.gv1.reject": "10.0.0.1"}))


def test_two_volumes_with_one_volume_id_are_an_error():
    same = "11111111-2222-3333-4444-555555555555"
    server = make_server(volumes(), **{"nfs3.gv0.volume-id": same, "nfs3.gv1.volume-id": same})
    with pytest.raises(OptionError, match="same volume id"):
        validate_export_options(server)


def test_overlong_export_dir_is_an_error():
    deep = "/" + "/".join(["d" * 200] * 6)
    server = make_server(volumes(), **{"nfs3.gv0.export-dir": deep})
    with pytest.raises(OptionError, match="longer than"):
        validate_export_options(server)


# --- mount paths --------------------------------------------------------------
@pytest.mark.parametrize("given, normalized", [
    ("/gv0", "/gv0"), ("/gv0/", "/gv0"), ("//gv0//sub//", "/gv0/sub"), ("gv0", "/gv0"),
    ("/gv0/./sub", "/gv0/sub"), ("/gv0/a/../sub", "/gv0/sub"), (b"/gv0/sub", "/gv0/sub"),
    ("/../gv0", "/gv0"), ("/", "/"),
])
def test_normalize_mount_path(given, normalized):
    assert normalize_mount_path(given) == normalized


@pytest.mark.parametrize("given, code", [
    ("/" + "x" * MNTPATHLEN, errno.ENAMETOOLONG),
    ("/gv0/" + "n" * 256, errno.ENAMETOOLONG),
    ("", errno.EINVAL),
    ("/gv0/a\0b", errno.EINVAL),
])
def test_normalize_mount_path_refuses(given, code):
    with pytest.raises(OSError) as err:
        normalize_mount_path(given)
    assert err.value.errno == code


def test_by_path_normalizes():
    exports = table(**{"nfs3.gv0.export-dir": "/sub"})
    assert exports.by_path("/gv0/").path == "/gv0"
    assert exports.by_path("//gv0//sub/").path == "/gv0/sub"
    assert exports.by_path("/gv0/sub/deeper/still").path == "/gv0/sub"   # governing export
    assert exports.by_path("/gv0/a/b").path == "/gv0"
    assert exports.by_path("/nope") is None
    assert exports.by_path("/") is None


def test_resolve_any_existing_subdirectory():
    exports = table()
    gv0 = exports.by_name("gv0")
    export, gfid = exports.resolve_mount_path("/gv0/a/b/c/", ROOT_CALLER)
    assert export is gv0 and gfid == gv0.xlator.gfid_of("a/b/c")
    export, gfid = exports.resolve_mount_path("/gv0", ROOT_CALLER)
    assert gfid == ROOT_GFID


@pytest.mark.parametrize("path, code", [
    ("/gv0/missing", errno.ENOENT),
    ("/gv0/a/missing/c", errno.ENOENT),
    ("/gv0/file", errno.ENOTDIR),
    ("/gv0/file/below", errno.ENOTDIR),
    ("/gv0/a/link", errno.ENOTDIR),       # symlinks are never followed
    ("/gv9", errno.ENOENT),
    ("/gv0/" + "x" * MNTPATHLEN, errno.ENAMETOOLONG),
])
def test_resolve_failures(path, code):
    with pytest.raises(OSError) as err:
        table().resolve_mount_path(path, ROOT_CALLER)
    assert err.value.errno == code


def test_listed_export_dir_that_is_a_file_or_missing():
    exports = table(**{"nfs3.gv0.export-dir": "/file,/gone"})
    with pytest.raises(OSError) as err:
        exports.resolve_mount_path("/gv0/file", ROOT_CALLER)
    assert err.value.errno == errno.ENOTDIR
    with pytest.raises(OSError) as err:
        exports.resolve_mount_path("/gv0/gone", ROOT_CALLER)
    assert err.value.errno == errno.ENOENT


def test_root_of_a_missing_export_dir_is_none_until_it_exists():
    exports = table(**{"nfs3.gv0.export-dir": "/later"})
    later = exports.by_path("/gv0/later")
    assert later.root_gfid is None
    with pytest.raises(OSError) as err:
        later.root_fh()
    assert err.value.errno == errno.ENOENT
    gfid = later.xlator.add("later/")                      # the directory is created
    assert later.root_gfid == gfid
    assert fh.parse(later.root_fh())[1] == gfid


def test_storage_permission_errors_pass_through():
    exports = table()
    with pytest.raises(OSError) as err:
        exports.resolve_mount_path("/gv0/priv/inner", USER)
    assert err.value.errno == errno.EACCES
    exports.resolve_mount_path("/gv0/priv/inner", ROOT_CALLER)


# --- who may mount --------------------------------------------------------------
def test_everyone_by_default():
    gv0 = table().by_name("gv0")
    for address in ("127.0.0.1", "10.1.2.3", "::1", "2001:db8::5"):
        assert gv0.host_allowed(address)
    assert gv0.groups() == []


def test_global_allow_and_volume_reject():
    exports = table(**{"rpc-auth.addr.allow": "10.0.0.0/8,127.0.0.1",
                       "rpc-auth.addr.gv0.reject": "10.9.9.9"})
    gv0, gv1 = exports.by_name("gv0"), exports.by_name("gv1")
    assert gv0.host_allowed("10.1.1.1") and gv0.host_allowed("127.0.0.1")
    assert not gv0.host_allowed("192.168.0.1")
    assert not gv0.host_allowed("10.9.9.9")          # reject wins over the allowing network
    assert gv1.host_allowed("10.9.9.9")              # that reject is gv0's only
    assert gv0.groups() == ["10.0.0.0/8", "127.0.0.1"]


def test_volume_allow_restricts_further_and_global_reject_wins():
    exports = table(**{"rpc-auth.addr.gv1.allow": "192.168.1.*",
                       "rpc-auth.addr.reject": "192.168.1.66"})
    gv1 = exports.by_name("gv1")
    assert gv1.host_allowed("192.168.1.5")
    assert not gv1.host_allowed("192.168.2.5")
    assert not gv1.host_allowed("192.168.1.66")
    assert not exports.by_name("gv0").host_allowed("192.168.1.66")
    assert gv1.groups() == ["192.168.1.*"]


def test_allow_none_refuses_everyone():
    gv0 = table(**{"rpc-auth.addr.gv0.allow": "none"}).by_name("gv0")
    assert not gv0.host_allowed("127.0.0.1")


def test_hostspec_of_a_directory_export_and_of_paths_below_it():
    exports = table(**{"nfs3.gv0.export-dir": "/sub(127.0.0.1|10.0.0.0/8),/shared"})
    sub = exports.by_path("/gv0/sub")
    assert sub.host_allowed("127.0.0.1") and sub.host_allowed("10.200.0.1")
    assert not sub.host_allowed("127.0.0.2")
    assert sub.groups() == ["127.0.0.1", "10.0.0.0/8"]
    before = sub.xlator.lookups
    with pytest.raises(OSError) as err:
        exports.resolve_mount_path("/gv0/sub/anything", ROOT_CALLER, address="127.0.0.2")
    assert err.value.errno == errno.EACCES
    assert sub.xlator.lookups == before      # refused before touching storage
    export, gfid = exports.resolve_mount_path("/gv0/shared", ROOT_CALLER, address="127.0.0.2")
    assert export.path == "/gv0/shared" and gfid == sub.xlator.gfid_of("shared")


def test_ipv6_and_mapped_addresses():
    rules = HostRules(["10.0.0.0/8", "2001:db8::/32", "::1"])
    assert rules.matches("::ffff:10.1.2.3")
    assert rules.matches("2001:db8::7")
    assert rules.matches("::1")
    assert not rules.matches("2001:db9::1")
    assert not rules.matches("fe80::1%eth0")


def test_host_names_match_only_with_namelookup(monkeypatch):
    names = {"10.0.0.5": ("build1.example.com",), "10.0.0.6": ("evil.example.org",)}
    monkeypatch.setattr(hostrules.REVERSE_DNS, "names", lambda addr: names.get(addr, ()))
    off = table(**{"rpc-auth.addr.gv0.allow": "build1.example.com,*.example.net"})
    assert not off.by_name("gv0").host_allowed("10.0.0.5")
    on = table(**{"rpc-auth.addr.gv0.allow": "build1.example.com,*.example.org",
                  "rpc-auth.addr.namelookup": "on"})
    assert on.by_name("gv0").host_allowed("10.0.0.5")      # literal name
    assert on.by_name("gv0").host_allowed("10.0.0.6")      # glob on the name
    assert not on.by_name("gv0").host_allowed("10.0.0.7")  # no PTR record


def test_reverse_cache_remembers_results(monkeypatch):
    calls = []

    def fake(addr):
        calls.append(addr)
        return ("host.example.com", ["alias.example.com"], [addr])

    monkeypatch.setattr(hostrules.socket, "gethostbyaddr", fake)
    monkeypatch.setattr(hostrules, "_resolves_back", lambda name, addr: True)
    cache = hostrules._ReverseCache(ttl=60)
    assert cache.names("10.0.0.1") == ("host.example.com", "alias.example.com")
    assert cache.names("10.0.0.1") == ("host.example.com", "alias.example.com")
    assert calls == ["10.0.0.1"]

    def failing(addr):
        raise OSError("unknown host")

    monkeypatch.setattr(hostrules.socket, "gethostbyaddr", failing)
    assert cache.names("10.0.0.2") == ()


def test_reverse_names_must_resolve_back_to_the_address(monkeypatch):
    """A PTR record alone proves nothing: the name must map back to the client."""
    monkeypatch.setattr(hostrules.socket, "gethostbyaddr",
                        lambda addr: ("trusted.example.com", ["mine.example.org"], [addr]))
    forward = {"trusted.example.com": "10.9.9.9", "mine.example.org": "10.0.0.8"}

    def getaddrinfo(name, port):
        if name not in forward:
            raise OSError("no such name")
        return [(2, 1, 6, "", (forward[name], 0))]

    monkeypatch.setattr(hostrules.socket, "getaddrinfo", getaddrinfo)
    cache = hostrules._ReverseCache(ttl=60)
    assert cache.names("10.0.0.8") == ("mine.example.org",)  # the forged "trusted" name is dropped


@pytest.mark.parametrize("good", ["*", "all", "none", "10.0.0.1", "10.0.0.0/8", "fe80::/10",
                                  "::1", "host-1.example.com", "192.168.*", "node?.lab"])
def test_check_hostspec_good(good):
    assert check_hostspec(good) == good


@pytest.mark.parametrize("bad", ["", "10.0.0.0/33", "a b", "host!", "-leading.dash", "x/y"])
def test_check_hostspec_bad(bad):
    with pytest.raises(ValueError):
        check_hostspec(bad)
