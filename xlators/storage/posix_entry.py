"""storage/posix fops on names: lookup, mknod, mkdir, unlink, rmdir, symlink,
rename, link, create.

Each runs as the caller against a parent directory descriptor, with the final
component never followed, and then (as root) brings the gfid index up to date
under that gfid's lock.  A new object first exists without a gfid; if giving
it one fails, the entry is removed again so no gfid-less object is left.

Every op that changes a directory runs in `_changing` (posix_core): the
parents are locked before they are resolved and until their post-op fstat,
so the wcc pair describes exactly this change as far as this process goes,
and what changed is committed to stable storage before the op returns
(option `metadata-sync`).  Each op lists in the SyncPlan what it touched and
names its `journal` anchor: the object changed last among what must be durable.
"""
from __future__ import annotations

import errno
import os
import stat as statmod

from glusterfsd.xlator import Caller, Fd, Iatt
from xlators.storage import names
from xlators.storage.gfid_layout import Obj, new_gfid
from xlators.storage.posix_core import PosixCore

_SPECIAL_TYPES = (statmod.S_IFCHR, statmod.S_IFBLK, statmod.S_IFIFO, statmod.S_IFSOCK)


class EntryFops(PosixCore):

    def lookup(self, caller: Caller, parent: bytes, name: bytes | str | None) -> Iatt:
        self._enter(caller)
        if name is None:
            with self._resolve(parent) as obj:
                return self._iatt(obj.st, obj.gfid)
        raw = names.check_component(name)
        with self._resolve_dir(parent) as pobj:
            return self._lookup_in(pobj, raw)

    def lookup_with_parent(self, caller: Caller, parent: bytes, name) -> tuple[Iatt | None, Iatt]:
        """lookup() of a name, and the directory's attributes from the same
        resolution, as GlusterFS's lookup answers `postparent`; a name that is
        not there gives (None, postparent) instead of ENOENT.  NFS LOOKUP replies
        with both, also when it fails (clients look names up before creating
        them); asking for the directory separately resolved it a second time."""
        self._enter(caller)
        raw = names.check_component(name)
        with self._resolve_dir(parent) as pobj:
            try:
                found = self._lookup_in(pobj, raw)
            except FileNotFoundError:
                found = None
            return found, self._iatt(pobj.st, pobj.gfid)

    def _lookup_in(self, pobj: Obj, raw: bytes) -> Iatt:
        if raw in names.DOTS:
            os.stat(b".", dir_fd=pobj.fd)  # the caller needs search permission
            if raw == b".":
                return self._iatt(pobj.st, pobj.gfid)
            with self._resolve(self.index.parent_of_dir(pobj.gfid)) as up:
                return self._iatt(up.st, up.gfid)
        if self._is_hidden(pobj.gfid, raw):
            raise OSError(errno.ENOENT, "no such entry")
        with self._child(pobj, raw) as obj:
            return self._iatt(obj.st, obj.gfid)

    # --- creating ----------------------------------------------------------------
    def mkdir(self, caller: Caller, parent: bytes, name, mode: int):
        self._enter(caller)
        self._writable("mkdir")
        raw = self._name(name, "mkdir")
        self._refuse_hidden(parent, raw, "mkdir")
        with self._changing(parent) as ((pobj,), plan):
            pre = self._iatt(pobj.st, pobj.gfid)
            os.mkdir(raw, mode & 0o7777, dir_fd=pobj.fd)
            iatt = self._give_gfid(pobj, raw, mode, is_dir=True)
            plan.new_dirs.append((pobj, raw))
            plan.buckets.add(iatt.gfid)
            plan.anchor = ("bucket", iatt.gfid)  # the index entry is made last
            return iatt, pre, self._fresh_iatt(pobj)

    def mknod(self, caller: Caller, parent: bytes, name, mode: int, rdev: int):
        self._enter(caller)
        self._writable("mknod")
        raw = self._name(name, "mknod")
        kind = statmod.S_IFMT(mode)
        if kind not in _SPECIAL_TYPES:
            raise OSError(errno.EINVAL, f"mknod makes character/block devices, fifos and sockets, "
                                        f"not type {kind:#o}")
        self._refuse_hidden(parent, raw, "mknod")
        device = rdev if kind in (statmod.S_IFCHR, statmod.S_IFBLK) else 0
        with self._changing(parent) as ((pobj,), plan):
            pre = self._iatt(pobj.st, pobj.gfid)
            os.mknod(raw, kind | (mode & 0o7777), device, dir_fd=pobj.fd)
            iatt = self._give_gfid(pobj, raw, mode, is_dir=False)
            plan.buckets.add(iatt.gfid)
            plan.anchor = ("bucket", iatt.gfid)
            return iatt, pre, self._fresh_iatt(pobj)

    def symlink(self, caller: Caller, parent: bytes, name, target, mode: int = 0o777):
        """`mode` is accepted for the interface; Linux symlinks are always 0777."""
        self._enter(caller)
        self._writable("symlink")
        raw = self._name(name, "symlink")
        text = names.check_symlink_target(target)
        self._refuse_hidden(parent, raw, "symlink")
        with self._changing(parent) as ((pobj,), plan):
            pre = self._iatt(pobj.st, pobj.gfid)
            os.symlink(text, raw, dir_fd=pobj.fd)
            iatt = self._give_gfid(pobj, raw, None, is_dir=False)
            plan.buckets.add(iatt.gfid)
            plan.anchor = ("bucket", iatt.gfid)
            return iatt, pre, self._fresh_iatt(pobj)

    def _give_gfid(self, pobj: Obj, raw: bytes, mode: int | None, is_dir: bool) -> Iatt:
        """A fresh object gets a new gfid and its index entry, or is removed again.
        The index entry is made LAST: it is the op's `journal` sync anchor.

        One fstat, after the gfid xattr (which changes the ctime) serves
        _fix_mode and, for a directory, the reply (its symlink entry in the
        index leaves the directory's own inode alone); a non-directory's
        index hard link changes its link count and ctime: stat again."""
        try:
            with self._new_child(pobj, raw) as obj:
                if mode is None:  # a symlink: no mode to fix, gfid and entry in one root block
                    obj.gfid = self.index.file_new(obj.fd, new_gfid())
                else:
                    obj.gfid = self.index.assign(obj.fd, new_gfid())
                    obj.st = os.fstat(obj.fd)
                    self._fix_mode(obj, mode)
                    if is_dir:
                        self.index.add_dir(obj.gfid, pobj.gfid, raw)
                    else:
                        self.index.add_nondir(obj.gfid, obj.fd)
                if not is_dir:
                    obj.st = os.fstat(obj.fd)
                self.index.note_new(obj, pobj.gfid, raw)
                return self._iatt(obj.st, obj.gfid)
        except BaseException:
            self._undo_create(pobj, raw, is_dir)
            raise

    def create(self, caller: Caller, parent: bytes, name, flags: int, mode: int):
        self._enter(caller)
        self._writable("create")
        raw = self._name(name, "create")
        self._refuse_hidden(parent, raw, "create")
        acc = flags & os.O_ACCMODE
        if acc not in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
            raise OSError(errno.EINVAL, f"bad access mode in flags {flags:#o}")
        base = acc | os.O_CLOEXEC | os.O_NOFOLLOW | (flags & os.O_TRUNC)
        fd = -1  # ours to close until the fd cache adopts it
        try:
            with self._changing(parent) as ((pobj,), plan):
                pre = self._iatt(pobj.st, pobj.gfid)
                try:
                    made = os.open(raw, base | os.O_CREAT | os.O_EXCL, mode & 0o7777,
                                   dir_fd=pobj.fd)
                except FileExistsError:
                    if flags & os.O_EXCL:
                        raise
                    fd, gfid = self._open_existing(pobj, raw, base)
                    plan.nothing_changed()
                    if flags & os.O_TRUNC:
                        plan.files.append(fd)  # its size changed
                        plan.anchor = ("file", fd)
                    iatt = self._iatt(os.fstat(fd), gfid)
                else:
                    new = self._file_new(pobj, raw, made, mode)  # closes `made` if it fails
                    fd, gfid = made, new.gfid
                    plan.files.append(fd)
                    plan.buckets.add(gfid)
                    # the index link (and any chmod) changed the file's inode last
                    plan.anchor = ("file", fd)
                    iatt = self._iatt(new.st, gfid)       # taken after the index link
                post = self._fresh_iatt(pobj)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        self.fd_cache.adopt(gfid, acc, fd)
        return Fd(gfid, flags, ctx={"acc": acc}), iatt, pre, post

    def _file_new(self, pobj: Obj, raw: bytes, fd: int, mode: int) -> Obj:
        """Give a file just made its gfid and index entry; its Obj (with a stat
        taken after both) or, on failure, the file is closed and removed.
        One fstat, after the index link, serves both _fix_mode (the link
        leaves the mode alone) and the reply (it does change the link count
        and ctime); _fix_mode stats again only if it changed the mode."""
        try:
            obj = Obj(self.index.file_new(fd, new_gfid()), fd, None)
            obj.st = os.fstat(fd)
            self._fix_mode(obj, mode)
            self.index.note_new(obj, pobj.gfid, raw)
            return obj
        except BaseException:
            os.close(fd)
            self._undo_create(pobj, raw, is_dir=False)
            raise

    def _open_existing(self, pobj: Obj, raw: bytes, base: int) -> tuple[int, bytes]:
        """CREATE without O_EXCL on an existing name opens it, if it is a file."""
        with self._child(pobj, raw) as obj:
            if obj.is_dir:
                raise OSError(errno.EISDIR, "a directory has that name")
            if not statmod.S_ISREG(obj.st.st_mode):
                raise OSError(errno.EEXIST, "a non-regular file has that name")
            return os.open(obj.proc, base & ~os.O_NOFOLLOW), obj.gfid

    def link(self, caller: Caller, gfid: bytes, newparent: bytes, newname):
        self._enter(caller)
        self._writable("link")
        raw = self._name(newname, "link")
        self._refuse_hidden(newparent, raw, "link")
        with self._resolve(gfid) as obj:
            if obj.is_dir:
                raise OSError(errno.EPERM, "hard links to directories are not allowed")
            self._link_count_ok(obj.st)
            with self._changing(newparent) as ((pobj,), plan):
                pre = self._iatt(pobj.st, pobj.gfid)
                with self.index.locked(obj.gfid):
                    # linking /proc/self/fd/N (followed) links the object itself, even a
                    # symlink, without the CAP_DAC_READ_SEARCH that AT_EMPTY_PATH needs
                    os.link(obj.proc, raw, dst_dir_fd=pobj.fd, follow_symlinks=True)
                plan.anchor = ("dir", pobj)
                return self._fresh_iatt(obj), pre, self._fresh_iatt(pobj)

    # --- removing ------------------------------------------------------------------
    def unlink(self, caller: Caller, parent: bytes, name):
        self._enter(caller)
        self._writable("unlink")
        raw = self._name(name, "unlink")
        self._refuse_hidden(parent, raw, "unlink")
        with self._changing(parent) as ((pobj,), plan):
            pre = self._iatt(pobj.st, pobj.gfid)
            gfid = self.index.read_gfid_at(pobj.fd, raw)   # ENOENT if the name is not there
            with self.index.locked(gfid):
                try:
                    os.unlink(raw, dir_fd=pobj.fd)
                except IsADirectoryError:
                    raise OSError(errno.EISDIR, "unlink of a directory (use rmdir)") from None
                plan.anchor = ("dir", pobj)
                if gfid:  # a removed index entry needs no sync (metadata_sync: orphans)
                    self._forget_if_gone(gfid)
            return pre, self._fresh_iatt(pobj)

    def rmdir(self, caller: Caller, parent: bytes, name):
        self._enter(caller)
        self._writable("rmdir")
        raw = self._name(name, "rmdir")
        self._refuse_hidden(parent, raw, "rmdir")
        with self._changing(parent) as ((pobj,), plan):
            pre = self._iatt(pobj.st, pobj.gfid)
            gfid = self.index.read_gfid_at(pobj.fd, raw)   # ENOENT if the name is not there
            with self.index.locked(gfid):
                # ENOTDIR for anything but a directory (a symlink to one too): no lstat first
                os.rmdir(raw, dir_fd=pobj.fd)
                plan.anchor = ("dir", pobj)
                if gfid:  # a removed index entry needs no sync (metadata_sync)
                    self.index.remove_dir(gfid)
            return pre, self._fresh_iatt(pobj)

    def _forget_if_gone(self, gfid: bytes) -> bool:
        """A name of a non-directory went away; if it was the last, so is the
        gfid (True: its index entry was removed)."""
        if self.index.drop_if_unlinked(gfid):
            self.fd_cache.forget(gfid)
            return True
        return False

    def rename(self, caller: Caller, oldparent: bytes, oldname, newparent: bytes, newname):
        self._enter(caller)
        self._writable("rename")
        old = self._name(oldname, "rename")
        new = self._name(newname, "rename")
        self._refuse_hidden(oldparent, old, "rename")
        self._refuse_hidden(newparent, new, "rename")
        with self._changing(oldparent, newparent) as ((opobj, npobj), plan):
            preold = self._iatt(opobj.st, opobj.gfid)
            prenew = self._iatt(npobj.st, npobj.gfid)
            with self._child(opobj, old) as src:
                target, target_is_dir = self._peek(npobj, new)
                with self.index.locked(src.gfid, target):
                    os.rename(old, new, src_dir_fd=opobj.fd, dst_dir_fd=npobj.fd)
                    plan.anchor = ("dir", npobj)  # one transaction changed both parents
                    if src.is_dir and self.index.move_dir(src.gfid, npobj.gfid, new):
                        plan.buckets.add(src.gfid)
                        plan.anchor = ("bucket", src.gfid)
                    # a replaced target's removed index entry needs no sync (metadata_sync)
                    if target and target != src.gfid:
                        if target_is_dir:
                            self.index.remove_dir(target)
                        else:
                            self._forget_if_gone(target)
            return preold, self._fresh_iatt(opobj), prenew, self._fresh_iatt(npobj)

    def _peek(self, pobj: Obj, name: bytes) -> tuple[bytes | None, bool]:
        """The gfid and kind of what `name` holds now (None: nothing)."""
        try:
            st = os.stat(name, dir_fd=pobj.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None, False
        return self.index.read_gfid_at(pobj.fd, name), statmod.S_ISDIR(st.st_mode)

