"""The on-disk layout of the gfid index, and the resolved-object handle.

Kept apart from `gfid_index` (which maintains the index) because the fops
need these names too: where an entry lives, how a directory entry's text
reads, what an `Obj` is, and which link counts clients see.  The layout is
GlusterFS's own (see `gfid_index` for why).
"""
from __future__ import annotations

import errno
import os
import stat as statmod
import uuid
from dataclasses import dataclass

HIDDEN_DIR = b".glusterfs"
GFID_XATTR = "trusted.gfid"
GFID_XATTR_FALLBACK = "user.glusterfs.gfid"


def stale(gfid: bytes, why: str = "") -> OSError:
    return OSError(errno.ESTALE, f"gfid {gfid_str(gfid)} is not known{': ' + why if why else ''}")


def gfid_str(gfid: bytes) -> str:
    """The canonical text of a gfid (what uuid.UUID prints), without building
    a UUID object: listings and entry ops ask for it per entry."""
    if len(gfid) != 16:
        raise ValueError(f"a gfid is 16 bytes, not {len(gfid)}")
    h = bytes(gfid).hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def proc_path(fd: int) -> bytes:
    """The /proc path of a descriptor: follows to the object itself, even a symlink."""
    return b"/proc/self/fd/%d" % fd


def entry_path(gfid: bytes) -> bytes:
    """Where a gfid's entry lives, relative to the index directory: `xx/yy/<uuid>`
    (its first BUCKET_LEN bytes name the xx/yy index directory)."""
    text = gfid_str(gfid)
    return f"{text[0:2]}/{text[2:4]}/{text}".encode()


BUCKET_LEN = 5  # len(b"xx/yy"): entry_path(gfid)[:BUCKET_LEN] is the entry's index directory


def new_gfid() -> bytes:
    """A fresh random gfid: the bytes of a version-4 UUID, as uuid.uuid4()
    makes them (GlusterFS gfids are such UUIDs; the version bits also keep
    a new gfid from ever equalling the root's), without building a UUID
    object: a quarter of the cost, and entry ops make one each."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return bytes(raw)


def dir_link_text(parent: bytes, name: bytes) -> bytes:
    return b"../../" + entry_path(parent) + b"/" + name


def parse_dir_link(text: bytes) -> tuple[bytes, bytes] | None:
    """(parent gfid, name) from a directory symlink's text; None for the root's."""
    if text == b"../../..":
        return None
    parts = text.split(b"/")
    if len(parts) != 6 or parts[:2] != [b"..", b".."] or parts[5] in (b"", b".", b".."):
        raise OSError(errno.EIO, f"corrupt index link {text[:120]!r}")
    try:
        parent = uuid.UUID(parts[4].decode()).bytes
    except ValueError:
        raise OSError(errno.EIO, f"corrupt index link {text[:120]!r}") from None
    return parent, parts[5]


@dataclass
class Obj:
    """A resolved object: an O_PATH descriptor the holder closes, and its stat."""

    gfid: bytes
    fd: int
    st: os.stat_result

    @property
    def proc(self) -> bytes:
        return proc_path(self.fd)

    @property
    def is_dir(self) -> bool:
        return statmod.S_ISDIR(self.st.st_mode)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Obj":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def user_nlink(st: os.stat_result) -> int:
    """The link count a client should see: without our index hard link."""
    if statmod.S_ISDIR(st.st_mode):
        return st.st_nlink
    return max(st.st_nlink - 1, 0)
