"""XDR (RFC 4506) for the ONC RPC programs this server speaks.

The protocols are kept as DATA: the .x files next to this module, written
from the RFCs (rpc.x RFC 5531, portmap.x RFC 1833, nfs3.x and mount3.x
RFC 1813, nlm4.x RFC 1813 App. II, gluster_hndsk.x GlusterFS GETSPEC).  This
package parses them and generates a fast encoder/decoder per type:

    from rpcsvc import xdr
    nfs3 = xdr.load("nfs3")                  # parsed once per process
    nfs3.NFS3ERR_STALE                       # constants and enum members: int
    attrs = nfs3.fattr3(type=nfs3.NF3REG, mode=0o644, ...)   # struct value
    data = nfs3.GETATTR3res.encode((nfs3.NFS3_OK, nfs3.GETATTR3resok(attrs)))
    nfs3.GETATTR3res.pack(value, out)         # append to a bytearray
    args, end = nfs3.GETATTR3args.decode(buf, offset)
    args = nfs3.GETATTR3args.decode_all(buf)  # trailing bytes: XdrTrailingData
    proc = nfs3.programs["NFS_PROGRAM"].versions[3].procs[1]  # Proc(name, number, arg, res)

Python values: integers -> int, bool -> bool, enum -> int, string -> bytes,
opaque -> bytes (a zero-copy memoryview slice when decoding a memoryview),
arrays -> list, optional -> None or the value, union -> (discriminant, arm),
void -> None, struct -> an instance of its generated class (any object with
the same attribute names encodes).  Linked lists (a struct whose last member
points to its own type, and the pointers that start such lists) are Python
lists of nodes, coded in a loop.  Fields named like a Python keyword get a
trailing underscore (RENAME3args.from_).
"""
from __future__ import annotations

from .codec import Codec
from .errors import (XdrBadDiscriminant, XdrBadPadding, XdrBadValue,
                     XdrDefinitionError, XdrError, XdrLimitExceeded,
                     XdrShortBuffer, XdrTrailingData)
from .spec import XDR_DIR, Proc, Program, Spec, Version, build, load
from .values import XdrStruct

__all__ = [
    "load", "build", "Spec", "Codec", "Program", "Version", "Proc", "XdrStruct",
    "XdrError", "XdrShortBuffer", "XdrLimitExceeded", "XdrBadDiscriminant",
    "XdrBadPadding", "XdrBadValue", "XdrTrailingData", "XdrDefinitionError",
    "XDR_DIR",
]
