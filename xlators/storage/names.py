"""Checks on the single path components clients send.

Why here and not left to the kernel: every name is used as ONE component
relative to a directory descriptor, so a '/' would turn it into a path and
'..' at the export root would step above it.  Names are refused before they
reach a syscall; '.' and '..' get the errno POSIX gives for each operation
(Linux says EBUSY for rename, POSIX says EINVAL: we answer EINVAL).
"""
from __future__ import annotations

import errno
import os

NAME_MAX = 255
PATH_MAX = 4096
DOTS = (b".", b"..")

# What each entry-creating or -removing fop answers for '.' or '..'.
_DOT_ERRNO = {
    "create": errno.EISDIR,
    "mkdir": errno.EEXIST,
    "mknod": errno.EEXIST,
    "symlink": errno.EEXIST,
    "link": errno.EEXIST,
    "unlink": errno.EISDIR,
    "rename": errno.EINVAL,
}


def as_bytes(name: bytes | str) -> bytes:
    if isinstance(name, str):
        return os.fsencode(name)
    if isinstance(name, (bytes, bytearray, memoryview)):
        return bytes(name)
    raise OSError(errno.EINVAL, f"a name must be bytes or str, not {type(name).__name__}")


def check_component(name: bytes | str) -> bytes:
    """One path component: non-empty, no '/' or NUL, at most NAME_MAX bytes."""
    raw = name if type(name) is bytes else as_bytes(name)  # bytes (what NFS hands in): no call
    if not raw:
        raise OSError(errno.EINVAL, "empty name")
    if b"/" in raw or b"\0" in raw:
        raise OSError(errno.EINVAL, f"name {raw[:64]!r} contains '/' or NUL")
    if len(raw) > NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, f"name of {len(raw)} bytes exceeds {NAME_MAX}")
    return raw


def check_entry_name(name: bytes | str, fop: str) -> bytes:
    """A name an entry fop creates or removes: also refuses '.' and '..'."""
    raw = check_component(name)
    if raw in DOTS:
        if fop == "rmdir":
            code = errno.EINVAL if raw == b"." else errno.ENOTEMPTY
        else:
            code = _DOT_ERRNO[fop]
        raise OSError(code, f"{fop}: '{raw.decode()}' cannot be the target")
    return raw


def check_symlink_target(target: bytes | str) -> bytes:
    raw = as_bytes(target)
    if not raw:
        raise OSError(errno.ENOENT, "empty symlink target")
    if b"\0" in raw:
        raise OSError(errno.EINVAL, "symlink target contains NUL")
    if len(raw) >= PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, f"symlink target of {len(raw)} bytes")
    return raw


def check_xattr_name(name: bytes | str) -> bytes:
    raw = as_bytes(name)
    if not raw or b"\0" in raw:
        raise OSError(errno.EINVAL, "bad extended attribute name")
    if len(raw) > NAME_MAX:
        raise OSError(errno.ERANGE, f"extended attribute name of {len(raw)} bytes")
    return raw
