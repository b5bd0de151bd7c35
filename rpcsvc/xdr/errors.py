"""The named errors of the XDR layer.

Every malformed input gets one of these, never a bare struct.error or
IndexError, so the RPC layer can turn any of them into GARBAGE_ARGS (for a
call's arguments) or a dropped record (for a header it cannot read) without
guessing what went wrong.  All of them are ValueErrors: a value that does not
fit the declared type.
"""
from __future__ import annotations


class XdrError(ValueError):
    """Base of every XDR failure: decoding, encoding or a bad .x definition."""


class XdrShortBuffer(XdrError):
    """The buffer ends before the value it is supposed to hold."""


class XdrLimitExceeded(XdrError):
    """A string, opaque or array is longer than its declared maximum."""


class XdrBadDiscriminant(XdrError):
    """A union discriminant that has neither a case arm nor a default arm."""


class XdrBadPadding(XdrError):
    """Padding bytes after an opaque or string are not zero (RFC 4506 §4.10)."""


class XdrBadValue(XdrError):
    """A value outside its type: bool not 0/1, undeclared enum value,
    integer out of range, wrong fixed length, wrong Python type on encode."""


class XdrTrailingData(XdrError):
    """decode_all() found bytes left over after the value."""


class XdrDefinitionError(XdrError):
    """A .x file that cannot be parsed or refers to something undefined.

    `where` is "file:line" when the position is known, so the message points
    at the line to fix.
    """

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)
