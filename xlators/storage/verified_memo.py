"""The gfid index's memo of entries it has checked since start.

Why: a LOOKUP (or a listing) of a name must make sure the object's index
entry is right (`GfidIndex.heal`), which costs an lstat of the entry, and
more when it is not.  Once checked, an entry stays right until this server
moves or removes it (and then forgets it here), so a repeated lookup needs
only the object's gfid xattr and a look in this memo.

The key of an entry says what was checked: the object's inode (ino, dev) for
a non-directory (its entry is a hard link to that inode), plus the parent
gfid and the name for a directory (its entry is a symlink naming them).  A
gfid whose object changed (another inode now carries it, a directory was
renamed behind our back) no longer matches its key and is checked again.

Bounded (least recently used out first), and shared by the stage threads
under one lock.  Kept apart from `gfid_index` for its size.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from xlators.storage.gfid_layout import Obj


def key_of(obj: Obj, parent: bytes, name: bytes) -> tuple:
    """What a checked entry of `obj`, found as `name` in `parent`, is remembered by."""
    if obj.is_dir:
        return (obj.st.st_ino, obj.st.st_dev, parent, name)
    return (obj.st.st_ino, obj.st.st_dev)


class VerifiedMemo:
    """gfid -> key (see key_of) of index entries found right, LRU-bounded."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self._entries: OrderedDict[bytes, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, gfid: bytes, key: tuple) -> bool:
        """Whether gfid's entry was found right for exactly this key."""
        with self._lock:
            if self._entries.get(gfid) != key:
                return False
            self._entries.move_to_end(gfid)
            return True

    def note(self, gfid: bytes, key: tuple) -> None:
        with self._lock:
            self._entries[gfid] = key
            self._entries.move_to_end(gfid)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, gfid: bytes) -> None:
        """gfid's entry is about to change or go: check it again next time."""
        with self._lock:
            self._entries.pop(gfid, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
