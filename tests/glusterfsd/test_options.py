import uuid

import pytest

from glusterfsd.options import Option, OptionError, OptionTable

TABLE = OptionTable([
    Option("port", "int", "2049", min=1, max=65535, description="port"),
    Option("enabled", "bool", "on"),
    Option("read-size", "sizet", "1MB", min=4096, max=1 << 20),
    Option("access", "choice", "read-write", choices=("read-only", "read-write")),
    Option("nfs3.*.volume-id", "uuid"),
    Option("dir", "path"),
    Option("allow", "client-auth-addr", "*"),
    Option("ratio", "percent", "10"),
])


def test_typed_values_and_defaults():
    values = TABLE.validate({"port": "0x801", "enabled": "no", "read-size": "64KB", "access": "READ-ONLY",
                             "nfs3.gv0.volume-id": "5c6c92a8-1111-2222-3333-444455556666",
                             "dir": "/srv", "allow": "127.0.0.1, 10.0.0.0/8,host-a,*", "ratio": "50%"})
    assert values["port"] == 2049 and values["enabled"] is False
    assert values["read-size"] == 65536 and values["access"] == "read-only"
    assert values["nfs3.gv0.volume-id"] == uuid.UUID("5c6c92a8-1111-2222-3333-444455556666")
    assert values["allow"] == ("127.0.0.1", "10.0.0.0/8", "host-a", "*")
    assert values["ratio"] == 50.0
    defaults = TABLE.defaults()
    assert defaults["port"] == 2049 and defaults["read-size"] == 1 << 20 and defaults["enabled"] is True
    assert "nfs3.*.volume-id" not in defaults


@pytest.mark.parametrize("key, value, words", [
    ("port", "0", "below the minimum"),
    ("port", "65536", "above the maximum"),
    ("port", "twenty", "not an integer"),
    ("enabled", "maybe", "not a boolean"),
    ("read-size", "1PB", "not a size"),
    ("read-size", "2MB", "above the maximum"),
    ("access", "write-only", "not one of"),
    ("nfs3.gv0.volume-id", "not-a-uuid", "not a UUID"),
    ("dir", "relative/path", "not an absolute path"),
    ("allow", "10.0.0.0/99", "not a CIDR"),
    ("allow", "a b", "not an address"),
    ("ratio", "120", "percentage"),
    ("unknown-key", "1", "unknown option"),
    ("nfs3.a.b.volume-id", "5c6c92a8-1111-2222-3333-444455556666", "unknown option"),
])
def test_bad_values_are_named(key, value, words):
    with pytest.raises(OptionError) as info:
        TABLE.validate({key: value})
    assert info.value.key == key
    assert words in info.value.message


def test_unknown_option_type_is_a_programming_error():
    with pytest.raises(TypeError):
        Option("x", "colour")
