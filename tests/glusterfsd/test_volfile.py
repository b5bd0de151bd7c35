import pytest

from glusterfsd.volfile import VolfileError, parse_file, parse_text

GOOD = """
# a comment line
volume posix-0
    type storage/posix
    option directory /srv/export   # trailing comment
    option "quoted key" "a value with \\"quotes\\" and spaces"
end-volume

volume top
    type nfs/server
    subvolumes posix-0
    option nfs.port 2049
end-volume
"""


def test_parses_volumes_options_and_lines():
    vf = parse_text(GOOD, "x.vol")
    assert [v.name for v in vf.volumes] == ["posix-0", "top"]
    posix = vf.volume("posix-0")
    assert posix.type == "storage/posix" and posix.type_line == 4
    assert posix.options == {"directory": "/srv/export", "quoted key": 'a value with "quotes" and spaces'}
    assert posix.option_lines["directory"] == 5
    assert vf.top.name == "top"
    assert vf.top.subvolumes == ["posix-0"]
    assert vf.top.options == {"nfs.port": "2049"}  # options may follow subvolumes


def test_whitespace_and_newlines_are_insignificant_in_subvolume_lists():
    text = "volume a\n type t/a\nend-volume\nvolume b\n type t/b\nend-volume\n" \
           "volume c\n type t/c\n subvolumes a\n   b\nend-volume\n"
    assert parse_text(text).top.subvolumes == ["a", "b"]


def test_glusterd_client_volfile_parses():
    text = """volume gv0-client-0
    type protocol/client
    option remote-host h1
    option remote-subvolume /bricks/b1/gv0
    option transport-type tcp
end-volume
volume gv0-client-1
    type protocol/client
    option remote-host h2
end-volume
volume gv0-replicate-0
    type cluster/replicate
    option iam-nfs-daemon yes
    subvolumes gv0-client-0 gv0-client-1
end-volume
volume gv0-dht
    type cluster/distribute
    subvolumes gv0-replicate-0
end-volume
volume gv0
    type debug/io-stats
    subvolumes gv0-dht
end-volume
volume nfs-server
    type nfs/server
    option nfs.dynamic-volumes on
    option rpc-auth.addr.gv0.allow *
    option nfs3.gv0.volume-id 5c6c92a8-1111-2222-3333-444455556666
    subvolumes gv0
end-volume
"""
    vf = parse_text(text, "nfs-server.vol")
    assert vf.top.name == "nfs-server"
    assert vf.volume("gv0-replicate-0").subvolumes == ["gv0-client-0", "gv0-client-1"]


@pytest.mark.parametrize("text, line, words", [
    ("volume a\n type t/a\n option k 1\n option k 2\nend-volume\n", 4, "given twice"),
    ("volume a\n type t/a\n subvolumes b\nend-volume\n", 3, "not defined prior"),
    ("volume a\n type t/a\n subvolumes a\nend-volume\n", 3, "itself"),
    ("volume a\n option k v\nend-volume\n", 3, "no 'type'"),
    ("volume a\n type\n option k v\nend-volume\n", 2, "no value"),
    ("volume a\n type t/a\n option k\nend-volume\n", 3, "no value"),
    ("volume a\n type t/a\n", 2, "no 'end-volume'"),
    ("volume a\n type t/a\n bogus x\nend-volume\n", 3, "unexpected 'bogus'"),
    ("option k v\n", 1, "expected 'volume'"),
    ("volume a\n type t/a\nend-volume\nvolume a\n type t/a\nend-volume\n", 4, "declared twice"),
    ("volume a\n type t/a\n option k `rm -rf /`\nend-volume\n", 3, "backtick"),
    ('volume a\n type t/a\n option k "open\nend-volume\n', 3, "unterminated"),
    ("# only a comment\n", 0, "no volume"),
    ("volume a\n type t/a\n subvolumes\nend-volume\n", 3, "lists nothing"),
])
def test_errors_name_file_and_line(text, line, words):
    with pytest.raises(VolfileError) as info:
        parse_text(text, "bad.vol")
    err = info.value
    assert err.line == line
    assert words in err.message
    assert str(err).startswith(f"bad.vol:{line}: " if line else "bad.vol: ")


def test_unreadable_file_is_a_volfile_error(tmp_path):
    with pytest.raises(VolfileError, match="cannot read"):
        parse_file(str(tmp_path / "missing.vol"))
    binary = tmp_path / "bin.vol"
    binary.write_bytes(b"\xff\xfe\x00volume")
    with pytest.raises(VolfileError, match="not UTF-8"):
        parse_file(str(binary))
