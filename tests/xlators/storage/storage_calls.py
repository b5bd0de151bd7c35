"""What the storage tests share about calling a fop: the errno it fails with."""
from __future__ import annotations

import pytest


def errno_of(call, *args) -> int:
    """The errno of the OSError `call(*args)` raises (the test fails if it does not)."""
    with pytest.raises(OSError) as info:
        call(*args)
    return info.value.errno
