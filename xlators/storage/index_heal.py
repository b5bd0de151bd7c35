"""Healing the gfid index: objects found by name whose gfid or index entry is
missing or wrong, mixed into `gfid_index.GfidIndex`.

Why apart: the index is kept in step by the server's own entry ops
(`GfidIndex.add_nondir`, `add_dir`, `move_dir`, ...); healing is for what
happened behind its back -- objects created on the brick directly, a
directory renamed there, a copy (cp -a, rsync -X) that carried another
object's gfid.  A lookup by name calls `heal`; what it finds correct it
remembers in the verified memo, so a hot name is checked once.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
import threading

from glusterfsd.xlator import ROOT_GFID
from xlators.storage.gfid_layout import Obj, dir_link_text, entry_path, new_gfid
from xlators.storage.verified_memo import key_of


class IndexHeal:
    """`heal` and its two steps; state (index_fd, locks, memo, counters) is
    GfidIndex's."""

    def heal(self, obj: Obj, parent: bytes, name: bytes) -> bytes:
        """Make sure an object found by name has a gfid and a correct index
        entry (objects created behind the server's back, renamed directories,
        copies that carried another object's gfid).  Returns its gfid."""
        if self.trusted:  # trusted.* reads need CAP_SYS_ADMIN, which callers keep
            gfid = self.read_gfid(obj.fd)
        else:
            with self.identity.as_root():
                gfid = self.read_gfid(obj.fd)
        key = key_of(obj, parent, name)
        if gfid is not None and self._memo.holds(gfid, key):
            obj.gfid = gfid
            return gfid
        with self.identity.as_root():
            for _ in range(3):
                gfid = self.read_gfid(obj.fd)
                if gfid is None:
                    gfid = self.assign(obj.fd)
                    self.healed += 1
                if gfid == ROOT_GFID:
                    raise OSError(errno.EIO, f"'{name.decode(errors='replace')}' claims the root gfid")
                with self.locked(gfid):
                    state = self._entry_state(gfid, obj, dir_link_text(parent, name))
                    if state == "other":  # a copy carrying a live object's gfid
                        os.setxattr(obj.proc, self.xattr, new_gfid(), os.XATTR_REPLACE)
                        self.healed += 1
                        continue  # file the new gfid on the next pass
                    if state != "ours":
                        self._file_entry(obj, gfid, parent, name)
                        self.healed += 1
                    self._memo.note(gfid, key_of(obj, parent, name))
                obj.gfid = gfid
                return gfid
        raise OSError(errno.EIO, f"cannot give '{name.decode(errors='replace')}' a gfid of its own")

    def _entry_state(self, gfid: bytes, obj: Obj, wanted: bytes) -> str:
        """How gfid's index entry relates to obj: 'missing', 'ours' (correct),
        'stale' (names nothing alive, or obj before a rename), 'other' (another
        live object holds the gfid)."""
        path = entry_path(gfid)
        try:
            st = os.stat(path, dir_fd=self.index_fd, follow_symlinks=False)
        except FileNotFoundError:
            return "missing"
        is_dir_link = statmod.S_ISLNK(st.st_mode) and \
            self._read_gfid_path(self._index_proc(path), follow=False) != gfid
        if not is_dir_link:
            if (st.st_ino, st.st_dev) == (obj.st.st_ino, obj.st.st_dev):
                return "ours"
            return "other" if st.st_nlink > 1 else "stale"
        if obj.is_dir and os.readlink(path, dir_fd=self.index_fd) == wanted:
            return "ours"
        try:
            other = self._walk(gfid)
        except OSError:
            return "stale"
        try:
            other_st = os.fstat(other)
        finally:
            os.close(other)
        if (other_st.st_ino, other_st.st_dev) == (obj.st.st_ino, obj.st.st_dev):
            return "stale"  # ours, but the link text is out of date
        return "other"

    def _file_entry(self, obj: Obj, gfid: bytes, parent: bytes, name: bytes) -> None:
        """Write obj's entry, replacing whatever stale entry is there."""
        self._dirs.forget(gfid)
        if obj.is_dir:
            self._write_dir_link(gfid, dir_link_text(parent, name), durable=False)
            return
        self._mkdirs_for(gfid, durable=False)
        path = entry_path(gfid)
        temp = path + b".%d.tmp" % threading.get_ident()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=self.index_fd)
        os.link(obj.proc, temp, dst_dir_fd=self.index_fd, follow_symlinks=True)
        os.rename(temp, path, src_dir_fd=self.index_fd, dst_dir_fd=self.index_fd)
        obj.st = os.fstat(obj.fd)
