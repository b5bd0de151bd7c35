"""The inode table: gfid -> what the server knows about an object, with an LRU bound.

Why it exists (gnfs's `inode_table_t`):
- resolving a handle is a nameless LOOKUP by gfid down the graph; for an
  object seen recently the table answers instead, so the common case costs
  no extra fop (the fop that follows fails with ESTALE anyway if the object
  went away meanwhile, and the resolver then forgets it);
- the type is known before a fop is attempted, so READ of a directory or
  READDIR of a file gets ISDIR/NOTDIR without a round trip;
- dentries (parent gfid, name) -> child let a subdirectory export check that
  a handle lies inside it, and let REMOVE/RENAME know which object a name
  pointed to (to drop its cached fd when its last link goes).

Dentries are kept only for real names: never "", "." or "..", and never an
object as its own parent.  Such a link would make a directory its own
ancestor, and a subdirectory export's containment walk (nfs.resolver) would
then find no export root above it and answer STALE for every client.

The table is bounded: `limit` inodes (gnfs: nfs.mem-factor x 6000), least
recently used first out, except pinned ones (export roots).  Every method
takes the one lock; they are all O(1) except `ancestors`, which walks at most
`MAX_DEPTH` parents.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from glusterfsd.xlator import Iatt

MAX_DEPTH = 4096
_NOT_NAMES = (b"", b".", b"..")


def _real_dentry(gfid: bytes, parent: bytes, name: bytes) -> bool:
    """True if (parent, name) -> gfid may be recorded (see the module doc)."""
    return parent != gfid and name not in _NOT_NAMES


def _dentry_key(parent: bytes | None, name: bytes | None) -> bytes | None:
    """The dentry table's key of (parent, name): the parent's 16-byte gfid and the
    name in one bytes object, not a tuple: a listing records every entry, and
    bytes are neither a second object per dentry nor tracked by the cyclic GC
    (50 000 tuples made the first `ls -l` of a big directory pay for several
    full collections).  None (no dentry) if either is unknown."""
    if parent is None or name is None:
        return None
    return parent + name


class Inode:
    """One object: its type and the dentry it was last reached by.  No attributes:
    every reply takes fresh ones from the storage, so keeping the last seen would
    only cost a lock per call (and memory per inode)."""

    __slots__ = ("gfid", "type", "parent", "name", "pinned")

    def __init__(self, gfid: bytes, type_: int, parent: bytes | None = None,
                 name: bytes | None = None):
        self.gfid = gfid
        self.type = type_
        self.parent = parent
        self.name = name
        self.pinned = False

    def __repr__(self) -> str:
        return f"<Inode {self.gfid.hex()} type={self.type} parent={self.parent and self.parent.hex()}>"


class InodeTable:
    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("the inode table needs room for at least one inode")
        self.limit = limit
        # gfid -> Inode, or a listed child's light record (type, parent, name):
        # see `link_children` and `_inode_locked`
        self._inodes: OrderedDict[bytes, Inode | tuple] = OrderedDict()
        # parent gfid + name -> child gfid (see `_dentry_key`)
        self._dentries: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    # --- reading ---------------------------------------------------------
    def get(self, gfid: bytes) -> Inode | None:
        """The inode for gfid (and mark it recently used), or None."""
        with self._lock:
            return None if self._touch_locked(gfid) is None else self._inode_locked(gfid)

    def type_of(self, gfid: bytes) -> int | None:
        """The type of gfid (and mark it recently used), or None if unknown: what
        resolving a handle needs, so a listed child's light record is not made
        into an Inode for it (`get` would)."""
        with self._lock:
            inode = self._touch_locked(gfid)
            if inode is None:
                return None
            return inode[0] if inode.__class__ is tuple else inode.type

    def child(self, parent: bytes, name: bytes) -> bytes | None:
        """The gfid a name in a directory was last seen to point to."""
        with self._lock:
            return self._dentries.get(_dentry_key(parent, name))

    def parent_of(self, gfid: bytes) -> bytes | None:
        """The directory gfid was last seen in (None if unknown)."""
        with self._lock:
            inode = self._inode_locked(gfid)
            return inode.parent if inode is not None else None

    def ancestors(self, gfid: bytes) -> list[bytes] | None:
        """gfid's parent chain as far as it is known ([parent, grandparent, ...]).

        None when the chain breaks before reaching an inode without a parent
        (unknown inode or a loop), i.e. the answer is incomplete.
        """
        chain = []
        with self._lock:
            current = self._inode_locked(gfid)
            while current is not None and len(chain) < MAX_DEPTH:
                if current.parent is None:
                    return chain
                chain.append(current.parent)
                current = self._inode_locked(current.parent)
        return None

    def __len__(self) -> int:
        return len(self._inodes)

    def __contains__(self, gfid: bytes) -> bool:
        return gfid in self._inodes

    # --- changing --------------------------------------------------------
    def link(self, iatt: Iatt, parent: bytes | None = None, name: bytes | None = None,
             pin: bool = False) -> Inode:
        """Record an object seen (with the dentry it was reached by, if any)."""
        with self._lock:
            return self._link_locked(iatt.gfid, iatt.type, parent, name, pin)

    def link_child(self, parent: bytes, gfid: bytes, kind: int, name: bytes) -> None:
        """`link` of an object found under `name` in `parent` (LOOKUP), without
        the Inode back.  The usual case -- the same dentry seen again, on every
        stat of a known path -- only makes it the youngest and points the name
        at it again (another object may have taken the name meanwhile, e.g.
        through a listing); anything else goes through `_link_locked`."""
        with self._lock:
            inode = self._inodes.get(gfid)
            if inode.__class__ is tuple:
                seen_again = inode == (kind, parent, name)
            else:
                seen_again = inode is not None and inode.parent == parent and inode.name == name
                if seen_again:
                    inode.type = kind
            if not seen_again:
                self._link_locked(gfid, kind, parent, name, False)
                return
            self._inodes.move_to_end(gfid)
            self._dentries[_dentry_key(parent, name)] = gfid

    def link_children(self, parent: bytes, children: list[tuple[bytes, int, bytes]]) -> None:
        """`link` of each (gfid, type, name) child in `parent`, under one lock
        acquisition: a READDIRPLUS reply records dozens of entries at once.
        (gfid and type, not an Iatt: they are all the table keeps, and a
        listing need not build an Iatt per entry for them.)

        The two usual cases are spelled out (a listing records every entry: 50 000
        for `ls -l` of a big directory): an entry seen before under the same name
        only becomes the youngest, and an unknown one is added with its dentry;
        the table is trimmed to its limit once per reply.  Anything else (a name
        that moved, '.' and '..') goes through `_link_locked`.

        An unknown child is kept as a light record, the tuple (type, parent,
        name), made an `Inode` only when something asks for it
        (`_inode_locked`): the first `ls -l` of a big directory adds tens of
        thousands of inodes, most never asked for, and an Inode each cost
        more than the listing's lstats -- its constructor, and the cyclic GC's
        full collections over every one of them (a tuple of bytes and ints is
        untracked at its first collection)."""
        with self._lock:
            inodes, dentries = self._inodes, self._dentries
            get, to_end = inodes.get, inodes.move_to_end
            for gfid, kind, name in children:
                inode = get(gfid)
                if inode is None:
                    if gfid != parent and name not in _NOT_NAMES:
                        inodes[gfid] = (kind, parent, name)
                        dentries[parent + name] = gfid       # _dentry_key, inlined
                        continue
                elif inode.__class__ is tuple:
                    if inode[1] == parent and inode[2] == name:
                        to_end(gfid)
                        if inode[0] != kind:
                            inodes[gfid] = (kind, parent, name)
                        continue
                elif inode.parent == parent and inode.name == name:
                    to_end(gfid)
                    inode.type = kind
                    continue
                self._link_locked(gfid, kind, parent, name, False)
            if len(inodes) > self.limit:
                self._evict_locked()

    def _touch_locked(self, gfid: bytes) -> Inode | tuple | None:
        """gfid's entry (an Inode or a light record), made the youngest and
        counted as a hit, or None counted as a miss; under the lock."""
        inode = self._inodes.get(gfid)
        if inode is None:
            self.misses += 1
            return None
        self._inodes.move_to_end(gfid)
        self.hits += 1
        return inode

    def _inode_locked(self, gfid: bytes) -> Inode | None:
        """The Inode of gfid (made from its light record, in the record's place
        in the LRU order, if it has one), or None; under the lock."""
        inode = self._inodes.get(gfid)
        if inode.__class__ is tuple:
            kind, parent, name = inode
            inode = self._inodes[gfid] = Inode(gfid, kind, parent, name)
        return inode

    def _link_locked(self, gfid: bytes, kind: int, parent: bytes | None, name: bytes | None,
                     pin: bool) -> Inode:
        inode = self._inode_locked(gfid)
        if inode is None:
            inode = Inode(gfid, kind)
            self._inodes[gfid] = inode
            self._evict_locked()
        else:
            self._inodes.move_to_end(gfid)
            inode.type = kind
        if pin:
            inode.pinned = True
        if parent is not None and name is not None and _real_dentry(gfid, parent, name):
            self._set_dentry_locked(inode, parent, name)
        return inode

    def unlink(self, parent: bytes, name: bytes) -> bytes | None:
        """Forget a dentry; returns the child gfid it pointed to (if known)."""
        with self._lock:
            gfid = self._dentries.pop(_dentry_key(parent, name), None)
            if gfid is not None:
                inode = self._inode_locked(gfid)
                if inode is not None and inode.parent == parent and inode.name == name:
                    inode.parent = inode.name = None
            return gfid

    def rename(self, oldparent: bytes, oldname: bytes, newparent: bytes, newname: bytes,
               gfid: bytes | None) -> None:
        """Move a dentry (the target name, if it existed, is replaced)."""
        with self._lock:
            known = self._dentries.pop(_dentry_key(oldparent, oldname), None)
            gfid = gfid or known
            replaced = self._dentries.pop(_dentry_key(newparent, newname), None)
            if replaced is not None and replaced != gfid:
                old = self._inode_locked(replaced)
                if old is not None and old.parent == newparent and old.name == newname:
                    old.parent = old.name = None
            inode = self._inode_locked(gfid) if gfid else None
            if inode is not None:
                if _real_dentry(gfid, newparent, newname):
                    self._set_dentry_locked(inode, newparent, newname)
                elif inode.parent is not None:      # its old dentry is gone: forget where it is
                    if self._dentries.get(_dentry_key(inode.parent, inode.name)) == gfid:
                        del self._dentries[_dentry_key(inode.parent, inode.name)]
                    inode.parent = inode.name = None

    def set_parent(self, gfid: bytes, parent: bytes) -> None:
        """Record a directory's parent learnt from a '..' lookup (its name unknown)."""
        if parent == gfid:
            return          # the volume root is its own '..': it has no parent
        with self._lock:
            inode = self._inode_locked(gfid)
            if inode is not None and inode.parent != parent:
                if inode.parent is not None and \
                        self._dentries.get(_dentry_key(inode.parent, inode.name)) == gfid:
                    del self._dentries[_dentry_key(inode.parent, inode.name)]
                inode.parent, inode.name = parent, None

    def forget(self, gfid: bytes) -> None:
        """Drop an object that no longer exists (unless pinned)."""
        with self._lock:
            inode = self._inodes.get(gfid)
            if inode is None:
                return
            if inode.__class__ is tuple:        # a light record is never pinned
                self._drop_locked(gfid, inode[1], inode[2])
            elif not inode.pinned:
                self._drop_locked(gfid, inode.parent, inode.name)

    # --- internals -------------------------------------------------------
    def _set_dentry_locked(self, inode: Inode, parent: bytes, name: bytes) -> None:
        if inode.parent is not None and (inode.parent, inode.name) != (parent, name):
            if self._dentries.get(_dentry_key(inode.parent, inode.name)) == inode.gfid:
                del self._dentries[_dentry_key(inode.parent, inode.name)]
        inode.parent, inode.name = parent, name
        self._dentries[_dentry_key(parent, name)] = inode.gfid

    def _drop_locked(self, gfid: bytes, parent: bytes | None, name: bytes | None) -> None:
        """Forget gfid and its dentry (parent, name), if that still names it."""
        self._inodes.pop(gfid, None)
        key = _dentry_key(parent, name)
        if key is not None and self._dentries.get(key) == gfid:
            del self._dentries[key]

    def _evict_locked(self) -> None:
        # Pinned inodes are moved to the young end so the scan stays short.
        budget = len(self._inodes)
        while len(self._inodes) > self.limit and budget > 0:
            budget -= 1
            gfid, inode = next(iter(self._inodes.items()))
            if inode.__class__ is tuple:        # a light record is never pinned
                self._drop_locked(gfid, inode[1], inode[2])
            elif inode.pinned:
                self._inodes.move_to_end(gfid)
                continue
            else:
                self._drop_locked(gfid, inode.parent, inode.name)
            self.evictions += 1

    def stats(self) -> dict:
        with self._lock:
            return {"inodes": len(self._inodes), "dentries": len(self._dentries),
                    "limit": self.limit, "hits": self.hits, "misses": self.misses,
                    "evictions": self.evictions}


class InodeTables:
    """One InodeTable per subvolume, as gnfs has one per xlator: gfids are unique only
    within a volume (every root is 00..01, and a copied brick repeats all of them)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._tables: dict[str, InodeTable] = {}
        self._lock = threading.Lock()

    def table(self, volume: str) -> InodeTable:
        table = self._tables.get(volume)
        if table is None:
            with self._lock:
                table = self._tables.setdefault(volume, InodeTable(self.limit))
        return table

    def stats(self) -> dict:
        totals = {"inodes": 0, "dentries": 0, "hits": 0, "misses": 0, "evictions": 0}
        for table in list(self._tables.values()):
            for key, value in table.stats().items():
                if key in totals:
                    totals[key] += value
        totals["limit_per_volume"] = self.limit
        totals["volumes"] = len(self._tables)
        return totals
