"""NFSv3 file handles in gnfs's 52-byte layout.

A handle is what a client holds instead of a path, so it must name the object
for as long as the object exists, across renames and server restarts, and on
any NFS head serving the same volume.  gnfs gets that by putting only stable
identities in it (GFS: xlators/nfs/server/src/nfs3-fh.h):

    ident    4 bytes  b":OGL"
    exportid 16 bytes the volume UUID (nfs3.<vol>.volume-id), naming the export
    gfid     16 bytes the object's GlusterFS id (root = 00..01)
    mountid  16 bytes a 32-bit hash of the mounted path, the rest zero

The wire handle is exactly these 52 bytes (gnfs pads its C struct to 64 only
so that XDR decoding cannot overflow it).  A handle of any other length, or
without the ident, is malformed (NFS3ERR_BADHANDLE); a well-formed handle
whose export or gfid is unknown is stale (NFS3ERR_STALE) -- that second check
needs the export table and the storage, so it lives in the resolver, not here.
"""
from __future__ import annotations

import struct

FH_SIZE = 52
IDENT = b":OGL"
_ZERO16 = bytes(16)
# The layout as one struct: `LAYOUT.unpack(data)` is (ident, exportid, gfid, mountid) of a
# FH_SIZE-byte handle, in one C call and without copying the handle first (the
# resolver splits one handle per call this way).
LAYOUT = struct.Struct("4s16s16s16s")


class BadHandle(ValueError):
    """The bytes are not a handle this server could have issued (NFS3ERR_BADHANDLE)."""


def build(exportid: bytes, gfid: bytes, mountid: bytes = _ZERO16) -> bytes:
    """The 52-byte handle for `gfid` in the export `exportid`."""
    if len(exportid) != 16 or len(gfid) != 16 or len(mountid) != 16:
        raise ValueError("exportid, gfid and mountid must each be 16 bytes")
    return b"".join((IDENT, bytes(exportid), bytes(gfid), bytes(mountid)))


def parse(data) -> tuple[bytes, bytes, bytes]:
    """(exportid, gfid, mountid) of a handle; BadHandle if it is malformed."""
    if len(data) != FH_SIZE:
        raise BadHandle(f"handle of {len(data)} bytes (expected {FH_SIZE})")
    ident, exportid, gfid, mountid = LAYOUT.unpack(data)
    if ident != IDENT:
        raise BadHandle(f"handle ident {ident!r} (expected {IDENT!r})")
    return exportid, gfid, mountid


def with_gfid(parent_handle: bytes, gfid: bytes) -> bytes:
    """A child's handle: the parent's exportid and mountid with another gfid (as gnfs does)."""
    return b"".join((parent_handle[:20], bytes(gfid), parent_handle[36:52]))


def super_fast_hash(data: bytes) -> int:
    """Paul Hsieh's SuperFastHash, the 32-bit hash gnfs uses for mount ids.

    Implemented from the published algorithm: 16-bit little-endian words,
    and the final odd byte treated as a signed char, as on x86 where gnfs runs.
    GlusterFS's copy returns 1 for inputs shorter than 2 bytes; so does this.
    """
    mask = 0xFFFFFFFF
    length = len(data)
    if length <= 1:
        return 1
    value = length
    rem = length & 3
    end = length - rem
    for at in range(0, end, 4):
        low, high = struct.unpack_from("<HH", data, at)
        value = (value + low) & mask
        tmp = ((high << 11) ^ value) & mask
        value = ((value << 16) ^ tmp) & mask
        value = (value + (value >> 11)) & mask

    def signed(byte: int) -> int:
        return byte - 256 if byte > 127 else byte

    if rem == 3:
        value = (value + struct.unpack_from("<H", data, end)[0]) & mask
        value ^= (value << 16) & mask
        value ^= (signed(data[end + 2]) << 18) & mask
        value = (value + (value >> 11)) & mask
    elif rem == 2:
        value = (value + struct.unpack_from("<H", data, end)[0]) & mask
        value ^= (value << 11) & mask
        value = (value + (value >> 17)) & mask
    elif rem == 1:
        value = (value + signed(data[end])) & mask
        value ^= (value << 10) & mask
        value = (value + (value >> 1)) & mask
    value ^= (value << 3) & mask
    value = (value + (value >> 5)) & mask
    value ^= (value << 4) & mask
    value = (value + (value >> 17)) & mask
    value ^= (value << 25) & mask
    value = (value + (value >> 6)) & mask
    return value


def mountid_for_path(path: str) -> bytes:
    """gnfs's mount id: SuperFastHash of the path without leading '/', 4 bytes LE, 12 zero.

    gnfs treats a hash of 1 (a path of 0 or 1 characters) as "could not hash"
    and leaves the mount id all zero; so do we.
    """
    text = path.lstrip("/").encode("utf-8", "surrogateescape")
    value = super_fast_hash(text)
    if value == 1:
        return bytes(16)
    return struct.pack("<I", value) + bytes(12)
