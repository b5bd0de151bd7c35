"""Small parts of storage/posix: name checks, dirent parsing, index layout."""
from __future__ import annotations

import errno
import os
import struct

import pytest

from glusterfsd.xlator import IA_DIR, IA_REG
from xlators.storage import dirstream, names
from xlators.storage.gfid_layout import dir_link_text, entry_path, parse_dir_link, user_nlink


def code(call, *args) -> int:
    with pytest.raises(OSError) as info:
        call(*args)
    return info.value.errno


def test_component_checks():
    assert names.check_component(b"ok") == b"ok"
    assert names.check_component("é") == "é".encode()
    assert code(names.check_component, b"") == errno.EINVAL
    assert code(names.check_component, b"a/b") == errno.EINVAL
    assert code(names.check_component, b"a\0") == errno.EINVAL
    assert code(names.check_component, b"x" * 256) == errno.ENAMETOOLONG
    assert code(names.check_component, 5) == errno.EINVAL
    assert names.check_component(b"x" * 255)


def test_dot_names_get_the_posix_answer():
    expected = {"create": errno.EISDIR, "mkdir": errno.EEXIST, "mknod": errno.EEXIST,
                "symlink": errno.EEXIST, "link": errno.EEXIST, "unlink": errno.EISDIR,
                "rename": errno.EINVAL}
    for fop, err in expected.items():
        assert code(names.check_entry_name, b".", fop) == err
        assert code(names.check_entry_name, b"..", fop) == err
    assert code(names.check_entry_name, b".", "rmdir") == errno.EINVAL
    assert code(names.check_entry_name, b"..", "rmdir") == errno.ENOTEMPTY
    assert names.check_entry_name(b"...", "mkdir") == b"..."


def test_symlink_target_and_xattr_name_checks():
    assert code(names.check_symlink_target, b"") == errno.ENOENT
    assert code(names.check_symlink_target, b"a\0") == errno.EINVAL
    assert code(names.check_symlink_target, b"a" * 4096) == errno.ENAMETOOLONG
    assert names.check_symlink_target("/etc") == b"/etc"
    assert code(names.check_xattr_name, b"") == errno.EINVAL
    assert code(names.check_xattr_name, b"user." + b"x" * 300) == errno.ERANGE


def record(ino, off, d_type, name: bytes) -> bytes:
    body = name + b"\0"
    reclen = (19 + len(body) + 7) // 8 * 8
    return struct.pack("<QqHB", ino, off, reclen, d_type) + body.ljust(reclen - 19, b"\0")


def test_dirent_parsing():
    raw = record(11, 100, 4, b".") + record(12, 200, 8, b"a-file")
    entries = list(dirstream.parse(raw))
    assert [(e.name, e.cookie, e.ino, e.d_type) for e in entries] == \
        [(b".", 100, 11, 4), (b"a-file", 200, 12, 8)]
    assert dirstream.DT_TO_IA[4] == IA_DIR and dirstream.DT_TO_IA[8] == IA_REG
    corrupt = struct.pack("<QqHB", 1, 1, 0, 8) + b"x\0"
    assert code(list, dirstream.parse(corrupt)) == errno.EIO


def test_dir_stream_reads_from_any_cookie(tmp_path):
    for i in range(30):
        (tmp_path / f"n{i}").write_bytes(b"")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    stream = dirstream.DirStream(fd)
    everything = list(stream.entries_from(0))
    assert {e.name for e in everything} == {b".", b".."} | {b"n%d" % i for i in range(30)}
    rest = list(stream.entries_from(everything[9].cookie))
    assert [e.name for e in rest] == [e.name for e in everything[10:]]
    assert code(list, stream.entries_from(-1)) == errno.EINVAL
    stream.close()
    stream.close()


def test_index_layout_helpers():
    gfid = bytes.fromhex("0123456789abcdef0123456789abcdef")
    assert entry_path(gfid) == b"01/23/01234567-89ab-cdef-0123-456789abcdef"
    text = dir_link_text(gfid, b"child")
    assert text == b"../../01/23/01234567-89ab-cdef-0123-456789abcdef/child"
    assert parse_dir_link(text) == (gfid, b"child")
    assert parse_dir_link(b"../../..") is None
    assert code(parse_dir_link, b"../../01/23/not-a-uuid/x") == errno.EIO
    assert code(parse_dir_link, b"/etc/passwd") == errno.EIO
    parent_entry = b"../../01/23/01234567-89ab-cdef-0123-456789abcdef/"
    for bad_name in (b"..", b".", b""):  # would step up or stay: never in a real entry
        assert code(parse_dir_link, parent_entry + bad_name) == errno.EIO


def test_user_nlink_hides_the_index_link(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"")
    os.link(path, tmp_path / "index-link")
    assert user_nlink(os.stat(path)) == 1
    assert user_nlink(os.stat(tmp_path)) == os.stat(tmp_path).st_nlink
