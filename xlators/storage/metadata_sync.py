"""Committing an entry op's metadata to stable storage before the reply.

Why: RFC 1813 §4.7 (synchronous modifying operations) and §4.8 (stable
storage): apart from UNSTABLE WRITE, a modifying procedure's result must be
on stable storage when the reply leaves, because a client forgets a request
once answered; after a server crash, a file it was told exists must exist.  The kernel only promises that after fsync.  knfsd calls
`commit_metadata` on the changed directories (and new objects) before it
replies; so do we, when the storage/posix option `metadata-sync` is on (the
default).

What an op records in its `SyncPlan` and what `commit` then does:

* `files`: descriptors of new regular files (CREATE): fsync'd (they are
  empty, so this writes only their inode: mode, owner, gfid xattr);
* `new_dirs`: (parent descriptor, name) of new directories (MKDIR): opened
  and fsync'd, for their inode and gfid xattr;
* `buckets`: gfids whose `.glusterfs/xx/yy` index entry was added, removed
  or rewritten: that index directory is fsync'd (as root: it is 0700);
* `dirs`: the parent directories, fsync'd through the descriptors the op
  already holds (the index opens directories O_RDONLY for this).

Symlinks, devices, fifos and sockets cannot be opened for fsync from user
space (knfsd reaches their inode from inside the kernel), and LINK holds its
object only as an O_PATH descriptor.  Those inodes (new ones with their gfid
xattr, a linked one's new link count) are committed with the journal
transaction that the parent's and the index directory's fsync force on
journaling file systems (ext4, xfs, btrfs), which is what the server is
meant to run on.

Order: new objects first, then index entries, then the parents, so that a
name that survived a crash always leads to an object and gfid that did too.
`commit` runs after the op let go of its directory locks, so concurrent ops
in one directory share journal commits instead of queueing for them.
"""
from __future__ import annotations

import errno
import os

from xlators.storage.gfid_layout import Obj, proc_path

_DIR_SYNC_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# What may have happened to a new directory's name before we got to it.
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


class SyncPlan:
    """What one entry op changed (see the module docstring)."""

    __slots__ = ("dirs", "files", "new_dirs", "buckets")

    def __init__(self):
        self.dirs: dict[bytes, Obj] = {}
        self.files: list[int] = []
        self.new_dirs: list[tuple[Obj, bytes]] = []
        self.buckets: set[bytes] = set()

    def add_dir(self, obj: Obj) -> None:
        self.dirs.setdefault(obj.gfid, obj)

    def nothing_changed(self) -> None:
        """The op turned out to change no directory (CREATE of an existing file)."""
        self.dirs.clear()


def fsync_dir_fd(fd: int) -> None:
    """fsync a directory descriptor; an O_PATH one (EBADF) is reopened first."""
    try:
        os.fsync(fd)
        return
    except OSError as err:
        if err.errno != errno.EBADF:
            raise
    real = os.open(proc_path(fd), _DIR_SYNC_OPEN)
    try:
        os.fsync(real)
    finally:
        os.close(real)


def fsync_dir_at(dir_fd: int, name: bytes, follow: bool = True) -> bool:
    """Open a directory by name under dir_fd and fsync it; False if it is not there."""
    flags = _DIR_SYNC_OPEN | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in _GONE:
            return False
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def commit(plan: SyncPlan, identity, index) -> None:
    """Make what `plan` lists durable; raises the fsync's OSError (EIO...)."""
    for fd in plan.files:
        os.fsync(fd)
    if not (plan.new_dirs or plan.buckets or plan.dirs):
        return
    with identity.as_root():  # index directories are root's; new ones may be unreadable
        for parent, name in plan.new_dirs:
            fsync_dir_at(parent.fd, name, follow=False)
        for gfid in sorted(plan.buckets):
            index.sync_entry_dir(gfid)
        for obj in plan.dirs.values():
            fsync_dir_fd(obj.fd)
