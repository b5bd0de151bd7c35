"""gfid -> object index of the export, in GlusterFS's own on-disk layout.

Every object carries its 16-byte gfid in the `trusted.gfid` xattr
(`user.glusterfs.gfid` where trusted.* cannot be set, e.g. not root).  The
index lives in `<directory>/.glusterfs`:

* a non-directory (file, symlink, device, fifo, socket) has a HARD LINK at
  `.glusterfs/xx/yy/<gfid as uuid>` (xx, yy = first two bytes in hex);
* a directory has a SYMLINK there whose text is
  `../../xx/yy/<parent gfid>/<name>`: its parent's entry plus its name;
* the root is `.glusterfs/00/00/00000000-0000-0000-0000-000000000001 -> ../../..`.

Why this design rather than kernel file handles (name_to_handle_at):

1. It is a GlusterFS brick layout.  A directory served here can be added as
   a brick of a real GlusterFS volume later (the "outgrow one machine" path of
   the design), and an existing brick can be served here, gfids intact.
2. Kernel handles are inode number + generation.  Copying the export
   elsewhere (rsync -aHX, restore from backup) keeps xattrs and hard links
   but invalidates every stored handle; this index survives it, and heals
   from the xattrs on lookup when it does not (`index_heal`).
3. It needs no exportable file system and no CAP_DAC_READ_SEARCH, so it
   also works unprivileged.

Its costs, and how they are met:

* The index hard link inflates st_nlink of non-directories by one; the xlator
  reports `st_nlink - 1` (`user_nlink`).
* A renamed directory's symlink must be rewritten (`move_dir`).
* Resolving a directory walks its ancestors (one readlink + one openat per
  level, never following a symlink: each step is verified by its gfid xattr);
  an LRU of O_PATH directory descriptors makes that one fstat per hot
  directory.  A descriptor follows its inode across renames and fstat shows
  nlink 0 once the directory is removed, so cached entries never go wrong.
* Deleting the last user-visible link must delete the index link too, or the
  gfid would stay resolvable: `drop_if_unlinked`.  A file whose names were all
  deleted behind our back is an orphan (nlink 1) and resolves to ESTALE.

All index work runs as root (`Identity.as_root`), whatever the caller.
Changes to one gfid's entry are serialized by striped locks.

Directories are held as O_RDONLY descriptors (O_PATH only where the process
is not root and may not read one), so an entry op can fsync the parent it
resolved without opening it again (`metadata_sync`); `sync_entry_dir` does
the same for the index directory holding one gfid's entry.  Every descriptor
opened here is closed again if a later step (fstat, xattr read) fails.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
import threading

from glusterfsd.xlator import ROOT_GFID
from xlators.storage.dir_cache import DirFdCache
from xlators.storage.dir_locks import LocksInOrder
from xlators.storage.gfid_layout import (BUCKET_LEN, GFID_XATTR, GFID_XATTR_FALLBACK, HIDDEN_DIR,
                                         Obj, dir_link_text, entry_path, gfid_str, new_gfid,
                                         parse_dir_link, proc_path, stale)
from xlators.storage import index_dirs
from xlators.storage.identity import Identity
from xlators.storage.index_heal import IndexHeal
from xlators.storage.metadata_sync import fsync_dir_at
from xlators.storage.verified_memo import VerifiedMemo, key_of

MAX_DEPTH = 4096  # a directory chain longer than this is a loop in the index
_STRIPES = 64
VERIFIED_MAX = 65536  # entries of the "index entry checked" memo
_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _obj_of(gfid: bytes, fd: int) -> Obj:
    """An Obj for a descriptor just opened; the descriptor is closed if fstat fails."""
    try:
        return Obj(gfid, fd, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise


class GfidIndex(IndexHeal):
    """Resolves gfids to objects and keeps the `.glusterfs` tree in step."""

    def __init__(self, directory: str, identity: Identity, dir_cache_size: int = 1024,
                 sync_metadata: bool = True):
        self.directory = directory
        self.identity = identity
        self.sync_metadata = sync_metadata  # fsync index directories this creates
        self.root_fd = -1
        self.index_fd = -1
        self.xattr = GFID_XATTR
        self._dirs = DirFdCache(dir_cache_size)
        self._stripes = [threading.RLock() for _ in range(_STRIPES)]
        # entries checked since start: a repeated lookup then costs one xattr
        # read and no index syscalls (see verified_memo)
        self._memo = VerifiedMemo(VERIFIED_MAX)
        self.resolved = 0
        self.healed = 0
        self.orphans_removed = 0

    # --- setup ------------------------------------------------------------
    def open(self) -> None:
        """Open the export, choose the xattr namespace, create the index tree."""
        with self.identity.as_root():
            self.root_fd = self._open_dir(self.directory, None)
            self.xattr = self._choose_xattr_key()
            root_gfid = self.read_gfid(self.root_fd)
            if root_gfid is None:
                try:
                    os.setxattr(proc_path(self.root_fd), self.xattr, ROOT_GFID, os.XATTR_CREATE)
                    root_gfid = ROOT_GFID
                except FileExistsError:  # another worker of a new store got there first
                    root_gfid = self.read_gfid(self.root_fd)
            if root_gfid != ROOT_GFID:
                raise OSError(errno.EINVAL, f"{self.directory} carries gfid {gfid_str(root_gfid)}, "
                              "not the root gfid: it lies inside another store (a brick subdirectory?)")
            try:
                os.mkdir(HIDDEN_DIR, 0o700, dir_fd=self.root_fd)
                self._synced_mkdir_parent(self.root_fd, b".")
            except FileExistsError:
                pass
            self.index_fd = os.open(HIDDEN_DIR, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                    dir_fd=self.root_fd)
            index_dirs.make_top_dirs(self.index_fd, self.sync_metadata)
            self._write_dir_link(ROOT_GFID, b"../../..")

    def _choose_xattr_key(self) -> str:
        """Keep the namespace an existing store uses; else trusted.* when allowed."""
        path = proc_path(self.root_fd)
        for key in (GFID_XATTR, GFID_XATTR_FALLBACK):
            try:
                os.getxattr(path, key)
                return key
            except OSError as err:
                if err.errno not in (errno.ENODATA, errno.EOPNOTSUPP, errno.EPERM):
                    raise
        try:
            os.setxattr(path, GFID_XATTR, ROOT_GFID, os.XATTR_CREATE)
            return GFID_XATTR
        except FileExistsError:  # another worker initialising the same new store
            return GFID_XATTR
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EACCES):
                raise
        return GFID_XATTR_FALLBACK

    @staticmethod
    def _open_dir(name, dir_fd: int | None) -> int:
        """A directory descriptor that can be fsync'd (O_RDONLY, never following
        a symlink); O_PATH when that is refused (not root, an unreadable one)."""
        try:
            return os.open(name, _O_DIR_NOFOLLOW, dir_fd=dir_fd)
        except PermissionError:
            return os.open(name, _O_PATH_NOFOLLOW | os.O_DIRECTORY, dir_fd=dir_fd)

    def _synced_mkdir_parent(self, dir_fd: int, name: bytes) -> None:
        """A directory was just made in `name` (under dir_fd): commit that."""
        if self.sync_metadata:
            fsync_dir_at(dir_fd, name)

    def make_all_buckets(self) -> int:
        """Make every `.glusterfs/xx/yy` now (option index-buckets all)."""
        with self.identity.as_root():
            return index_dirs.make_all_buckets(self.index_fd, self.sync_metadata)

    def sync_entry_dir(self, gfid: bytes) -> None:
        """fsync the index directory that holds (or held) gfid's entry."""
        with self.identity.as_root():
            self.sync_entry_dir_as_root(gfid)

    def sync_entry_dir_as_root(self, gfid: bytes) -> None:
        """sync_entry_dir for a caller already inside `as_root` (metadata_sync's
        commit: one root block for all it syncs instead of one more per entry)."""
        fsync_dir_at(self.index_fd, entry_path(gfid)[:BUCKET_LEN])

    @property
    def trusted(self) -> bool:
        return self.xattr == GFID_XATTR

    def close(self) -> None:
        self._dirs.clear()
        for fd in (self.index_fd, self.root_fd):
            if fd >= 0:
                os.close(fd)
        self.index_fd = self.root_fd = -1

    def locked(self, *gfids: bytes | None):
        """A context manager serializing index changes for these gfids (stripe
        locks, fixed order; None and empty gfids take none)."""
        if len(gfids) == 1 and gfids[0]:  # most ops: one gfid, its stripe's lock itself
            return self._stripes[gfids[0][-1] % _STRIPES]
        order = sorted({gfid[-1] % _STRIPES for gfid in gfids if gfid})
        if len(order) == 1:
            return self._stripes[order[0]]
        return LocksInOrder([self._stripes[slot] for slot in order])

    # --- the gfid xattr ---------------------------------------------------
    def read_gfid(self, fd: int) -> bytes | None:
        return self._read_gfid_path(proc_path(fd), follow=True)

    def read_gfid_at(self, dir_fd: int, name: bytes) -> bytes | None:
        """The gfid of `name` in an open directory, without following it
        (read as root: neither search permission nor user.* read rights of the
        caller matter for our own bookkeeping)."""
        path = proc_path(dir_fd) + b"/" + name
        if self.trusted:
            try:
                return self._read_gfid_path(path, follow=False)
            except PermissionError:
                pass  # no search permission on the directory
        with self.identity.as_root():
            return self._read_gfid_path(path, follow=False)

    def _read_gfid_path(self, path: bytes, follow: bool) -> bytes | None:
        try:
            value = os.getxattr(path, self.xattr, follow_symlinks=follow)
        except OSError as err:
            if err.errno in (errno.ENODATA, errno.EOPNOTSUPP):
                return None
            if err.errno == errno.EPERM and not self.trusted:
                return None  # user.* is not allowed on symlinks and devices
            raise
        return value if len(value) == 16 else None

    def vouched_gfid_at(self, dir_fd: int, name: bytes, st: os.stat_result,
                        parent: bytes) -> bytes | None:
        """The gfid of `name` (whose lstat is `st`) when the verified memo
        vouches for its index entry, else None (the caller then takes the
        full lookup-and-heal path).  Why: a listing needs each entry's gfid,
        and this costs one xattr read instead of an open, fstat and heal.
        The memo key holds st's inode, so a name replaced between the stat and
        the xattr read pairs one object's attributes with another's gfid only
        if the new object took the old one's inode number in between (or, for
        the two-link case below, whenever the new one is such a file too): the
        entry then shows the old attributes under the new handle until the
        client's next GETATTR.  Nothing is remembered from it past that: the
        replacement changed the old inode's ctime (see ctime_gfids).
        Only with trusted.* (readable as the caller, who keeps CAP_SYS_ADMIN).

        A regular file with two or more links and a gfid xattr is taken as
        filed without looking at its index entry: every file this server
        makes has its index hard link, and the usual stray, a copy made on
        the brick with its xattrs (cp -a, rsync -X), has one link and goes the
        full way (heal gives it a gfid of its own).  Why not always look: the
        lstat of `.glusterfs/xx/yy/<gfid>` lands in a different directory per
        entry, so a listing after a restart with cold caches read one
        directory block per entry from the disk (50 000 entries: ~2.5 s of
        7.9 here).  What is given up: a copy that was ALSO hard-linked on the
        brick is listed with the original's handle until its next LOOKUP."""
        if not self.trusted:
            return None
        try:
            gfid = self._read_gfid_path(proc_path(dir_fd) + b"/" + name, follow=False)
        except OSError:
            return None
        if gfid is None:
            return None
        if statmod.S_ISDIR(st.st_mode):
            key = (st.st_ino, st.st_dev, parent, name)
            return gfid if self._memo.holds(gfid, key) else None
        key = (st.st_ino, st.st_dev)
        if self._memo.holds(gfid, key):
            return gfid
        if st.st_nlink >= 2 and statmod.S_ISREG(st.st_mode):
            return gfid   # see below
        return gfid if self._entry_is(gfid, key) else None

    def _entry_is(self, gfid: bytes, key: tuple) -> bool:
        """For a non-directory not yet in the memo: is gfid's index entry the
        hard link of the object with inode `key`?  That is the 'ours' case of
        heal, checked with one lstat of the entry (under gfid's stripe lock,
        as heal does); it is then remembered.  Anything else: False."""
        if gfid == ROOT_GFID:
            return False
        with self.identity.as_root(), self._stripes[gfid[-1] % _STRIPES]:
            try:
                st = os.stat(entry_path(gfid), dir_fd=self.index_fd, follow_symlinks=False)
            except OSError:
                return False
            if (st.st_ino, st.st_dev) != key:
                return False
            self._memo.note(gfid, key)
        return True

    def assign(self, fd: int, gfid: bytes | None = None) -> bytes:
        """Give the object a gfid if it has none; returns the one it ends up with."""
        with self.identity.as_root():
            return self._assign_as_root(fd, gfid or new_gfid())

    def _assign_as_root(self, fd: int, wanted: bytes) -> bytes:
        try:
            os.setxattr(proc_path(fd), self.xattr, wanted, os.XATTR_CREATE)
            return wanted
        except FileExistsError:
            current = self.read_gfid(fd)  # someone else won the race
            if current is None:
                raise
            return current
        except OSError as err:
            if err.errno == errno.EPERM and not self.trusted:
                raise OSError(errno.EOPNOTSUPP, "symlinks and device files need trusted.* xattrs "
                              "(run as root) to carry a gfid") from None
            raise

    def file_new(self, fd: int, gfid: bytes) -> bytes:
        """A non-directory this server just made (open as `fd`, no gfid yet):
        `assign` it `gfid` and `add_nondir` its entry, in ONE root block (an
        entry op made two, each switching the thread's credentials there and
        back for a caller other than root).  Returns the gfid it ends up with."""
        with self.identity.as_root():
            gfid = self._assign_as_root(fd, gfid)
            with self._stripes[gfid[-1] % _STRIPES]:
                self._link_nondir(fd, gfid)
        return gfid

    # --- resolution -------------------------------------------------------
    def resolve(self, gfid: bytes) -> Obj:
        """The object of a gfid as an O_PATH descriptor, or ESTALE."""
        if len(gfid) != 16:
            raise OSError(errno.EINVAL, f"a gfid is 16 bytes, not {len(gfid)}")
        gfid = bytes(gfid)
        self.resolved += 1
        if gfid == ROOT_GFID:
            return _obj_of(gfid, os.dup(self.root_fd))
        cached = self._cached_dir(gfid)  # no need to be root for a cached descriptor
        if cached is not None:
            return cached
        with self.identity.as_root():
            return self._resolve(gfid)

    def _resolve(self, gfid: bytes) -> Obj:
        try:
            fd = os.open(entry_path(gfid), _O_PATH_NOFOLLOW, dir_fd=self.index_fd)
        except FileNotFoundError:
            raise stale(gfid) from None
        try:
            st = os.fstat(fd)
            is_dir_entry = statmod.S_ISLNK(st.st_mode) and self.read_gfid(fd) != gfid
        except BaseException:
            os.close(fd)
            raise
        if is_dir_entry:
            os.close(fd)  # not the object but a directory's symlink entry
            return _obj_of(gfid, self._walk(gfid))
        if st.st_nlink <= 1:
            os.close(fd)
            self._remove_orphan(gfid)
            raise stale(gfid, "all its names were removed")
        return Obj(gfid, fd, st)

    def _cached_dir(self, gfid: bytes) -> Obj | None:
        fd = self._dirs.dup(gfid)
        if fd is None:
            return None
        obj = _obj_of(gfid, fd)
        if obj.st.st_nlink == 0:
            obj.close()
            self._dirs.forget(gfid)
            return None
        return obj

    def _walk(self, gfid: bytes) -> int:
        """Open a directory by following parent links up to a known directory,
        then opening each name downwards without following symlinks."""
        chain: list[tuple[bytes, bytes]] = []
        current = gfid
        base = -1
        for _ in range(MAX_DEPTH):
            if current == ROOT_GFID:
                base = os.dup(self.root_fd)
                break
            if current != gfid:
                cached = self._cached_dir(current)
                if cached is not None:
                    base = cached.fd
                    break
            try:
                text = os.readlink(entry_path(current), dir_fd=self.index_fd)
            except FileNotFoundError:
                raise stale(gfid, f"ancestor {gfid_str(current)} has no index entry") from None
            except OSError as err:
                if err.errno == errno.EINVAL:  # a hard link: an ancestor that is not a directory
                    raise stale(gfid, "index names a non-directory as parent") from None
                raise
            parsed = parse_dir_link(text)
            if parsed is None:
                raise OSError(errno.EIO, f"index entry of {gfid_str(current)} points at the root")
            chain.append((current, parsed[1]))
            current = parsed[0]
        else:
            raise OSError(errno.ELOOP, f"index chain of {gfid_str(gfid)} is deeper than {MAX_DEPTH}")
        for step_gfid, name in reversed(chain):
            try:
                fd = self._open_dir(name, base)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise stale(gfid, "its path changed behind the server's back") from None
                raise
            finally:
                os.close(base)
            base = fd
            try:
                if self.read_gfid(fd) != step_gfid:
                    raise stale(gfid, "a different directory now has its name")
                self._dirs.put(step_gfid, fd)
            except BaseException:
                os.close(fd)
                raise
        return base

    def parent_of_dir(self, gfid: bytes) -> bytes:
        """A directory's parent gfid, from its index link (the root's is the root)."""
        if gfid == ROOT_GFID:
            return ROOT_GFID
        with self.identity.as_root():
            try:
                parsed = parse_dir_link(os.readlink(entry_path(gfid), dir_fd=self.index_fd))
            except FileNotFoundError:
                raise stale(gfid) from None
        return ROOT_GFID if parsed is None else parsed[0]

    # --- keeping the index in step ----------------------------------------
    def _mkdirs_for(self, gfid: bytes, durable: bool = True, path: bytes | None = None) -> None:
        """Make the xx/yy index directory of a gfid (and xx, which `open`
        normally made already; see `index_dirs`), after filing an entry found
        it missing.  `durable` (an entry op is filing a new entry) also
        commits them under metadata-sync `on`, even when a concurrent op made
        one first (its commit may still be to come); healing on lookup does
        not need to (it heals again).  Under `journal` the op's one fsync,
        which comes after, commits them.  `path`: entry_path(gfid), when the
        caller has it already."""
        bucket = (path or entry_path(gfid))[:BUCKET_LEN]
        top = bucket[:2]
        try:
            os.mkdir(bucket, 0o700, dir_fd=self.index_fd)
        except FileExistsError:
            pass  # another op made it just now and may not have committed it yet
        except FileNotFoundError:  # xx is missing too (removed behind our back)
            with contextlib.suppress(FileExistsError):
                os.mkdir(top, 0o700, dir_fd=self.index_fd)
            if durable:
                self._synced_mkdir_parent(self.index_fd, b".")
            with contextlib.suppress(FileExistsError):
                os.mkdir(bucket, 0o700, dir_fd=self.index_fd)
        if durable:  # called only when the entry's bucket was missing: commit it here
            self._synced_mkdir_parent(self.index_fd, top)

    def add_nondir(self, gfid: bytes, fd: int) -> None:
        """Hard-link the object open as `fd` under its gfid (fresh objects)."""
        with self.identity.as_root(), self.locked(gfid):
            self._link_nondir(fd, gfid)

    def _link_nondir(self, fd: int, gfid: bytes) -> None:
        """add_nondir's link, as root under gfid's stripe lock."""
        source, path = proc_path(fd), entry_path(gfid)
        try:
            os.link(source, path, dst_dir_fd=self.index_fd, follow_symlinks=True)
        except FileNotFoundError:  # first entry under this xx/yy
            self._mkdirs_for(gfid, path=path)
            os.link(source, path, dst_dir_fd=self.index_fd, follow_symlinks=True)

    def add_dir(self, gfid: bytes, parent: bytes, name: bytes) -> bool:
        """File a directory's entry; False when it already read so."""
        with self.identity.as_root(), self.locked(gfid):
            return self._write_dir_link(gfid, dir_link_text(parent, name))

    def move_dir(self, gfid: bytes, parent: bytes, name: bytes) -> bool:
        """A directory was renamed: point its entry at the new parent and name
        (False: the entry was already right, nothing was written)."""
        self._memo.forget(gfid)
        return self.add_dir(gfid, parent, name)

    def _write_dir_link(self, gfid: bytes, text: bytes, durable: bool = True) -> bool:
        """Create or atomically replace a directory's symlink entry (False:
        it already held `text`)."""
        path = entry_path(gfid)
        try:
            if os.readlink(path, dir_fd=self.index_fd) == text:
                return False
        except FileNotFoundError:
            try:
                os.symlink(text, path, dir_fd=self.index_fd)
                return True
            except FileNotFoundError:
                self._mkdirs_for(gfid, durable, path)
            except FileExistsError:
                pass  # made meanwhile: replace it below
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
        temp = path + b".%d.tmp" % threading.get_ident()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=self.index_fd)
        os.symlink(text, temp, dir_fd=self.index_fd)
        os.rename(temp, path, src_dir_fd=self.index_fd, dst_dir_fd=self.index_fd)
        return True

    def remove_dir(self, gfid: bytes) -> None:
        """A directory was removed: its gfid becomes unknown."""
        self._dirs.forget(gfid)
        self._memo.forget(gfid)
        with self.identity.as_root(), self.locked(gfid):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry_path(gfid), dir_fd=self.index_fd)

    def drop_if_unlinked(self, gfid: bytes) -> bool:
        """After a name of a non-directory went away: if only the index link is
        left, remove it (the gfid is gone).  True when it was removed."""
        path = entry_path(gfid)
        with self.identity.as_root(), self.locked(gfid):
            try:
                st = os.stat(path, dir_fd=self.index_fd, follow_symlinks=False)
            except FileNotFoundError:
                return True
            if st.st_nlink > 1:
                return False
            self._memo.forget(gfid)
            try:
                os.unlink(path, dir_fd=self.index_fd)
            except FileNotFoundError:
                pass
            return True

    def _remove_orphan(self, gfid: bytes) -> None:
        if self.drop_if_unlinked(gfid):
            self.orphans_removed += 1

    def note_new(self, obj: Obj, parent: bytes, name: bytes) -> None:
        """An object this server just created and filed: its entry is correct."""
        self._memo.note(obj.gfid, key_of(obj, parent, name))

    def _index_proc(self, path: bytes) -> bytes:
        return proc_path(self.index_fd) + b"/" + path

    def dir_cache_stats(self) -> dict[str, int]:
        return {"dir-fd-cache-entries": len(self._dirs), "dir-fd-cache-hits": self._dirs.hits,
                "dir-fd-cache-misses": self._dirs.misses}
