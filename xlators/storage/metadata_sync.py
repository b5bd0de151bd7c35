"""Committing an entry op's metadata to stable storage before the reply.

Why: RFC 1813 §4.7 (synchronous modifying operations) and §4.8 (stable
storage): apart from UNSTABLE WRITE, a modifying procedure's result must be
on stable storage when the reply leaves, because a client forgets a request
once answered; after a server crash, a file it was told exists must exist
(and its handle must still resolve), a name it was told is gone must stay
gone.  The kernel only promises that after fsync.  knfsd calls
`commit_metadata` on the changed directories (and new objects) before it
replies; so do we.  The storage/posix option `metadata-sync` chooses how:

* `on` (the default; works on any file system): every object that must be
  durable is fsync'd on its own, in the order below;
* `journal`: ONE fsync, of the `anchor` (see below), when `fs_journal.check`
  confirmed that the file system commits metadata as one ordered journal
  (ext4 with a journal and without fast_commit, xfs); otherwise it acts as
  `on`.  One fsync of an inode waits for the journal transaction of that
  inode's last change, and transactions commit in order, so everything the
  op changed before (or together with) the anchor's last change is committed
  with it.  Each op names as anchor an object whose last change comes after
  every change that must be durable;
* `off`: nothing is fsync'd (a crash may lose what clients were told).

What an op records in its `SyncPlan` and what `commit` does under `on`:

* `files`: descriptors of new regular files (CREATE): fsync'd (they are
  empty, so this writes only their inode: mode, owner, gfid xattr);
* `new_dirs`: (parent descriptor, name) of new directories (MKDIR): opened
  and fsync'd, for their inode and gfid xattr;
* `buckets`: gfids whose `.glusterfs/xx/yy` index entry was added or
  rewritten: that index directory is fsync'd (as root: it is 0700), so a
  handle given out resolves after a crash;
* `dirs`: the parent directories, fsync'd through the descriptors the op
  already holds (the index opens directories O_RDONLY for this).

Index entries REMOVED by an op (the last name of a file, a removed
directory, a rename's replaced target) are deliberately not synced: if the
crash keeps such an entry, the index is self-correcting: a file entry whose
object has no other name (link count 1) is an orphan that resolution
reports ESTALE and deletes, a directory entry whose path no longer leads to
that gfid resolves ESTALE (the walk checks every step's gfid xattr).  What
the client was told (the name is gone) holds, because the parent is synced.
The cost: the space of a file orphaned that way is freed only when its gfid
is next resolved.

Symlinks, devices, fifos and sockets cannot be opened for fsync from user
space (knfsd reaches their inode from inside the kernel), and LINK holds its
object only as an O_PATH descriptor.  Those inodes (new ones with their gfid
xattr, a linked one's new link count) are committed with the journal
transaction that the parent's and the index directory's fsync force on
journaling file systems (ext4, xfs, btrfs), which is what the server is
meant to run on.

Order under `on`: new objects first, then index entries, then the parents,
so that a name that survived a crash always leads to an object and gfid that
did too.  `commit` runs after the op let go of its directory locks, so
concurrent ops in one directory share journal commits instead of queueing
for them.
"""
from __future__ import annotations

import errno
import os

from xlators.storage.gfid_layout import Obj, proc_path

ON, JOURNAL, OFF = "on", "journal", "off"
_BOOL_WORDS = {"yes": ON, "true": ON, "enable": ON, "1": ON,
               "no": OFF, "false": OFF, "disable": OFF, "0": OFF}
CHOICES = (ON, JOURNAL, OFF, *_BOOL_WORDS)


def mode_of(value) -> str:
    """The mode an option value names (a bool from code, or the volfile's word)."""
    if isinstance(value, bool):
        return ON if value else OFF
    word = str(value).strip().lower()
    if word in (ON, JOURNAL, OFF):
        return word
    if word in _BOOL_WORDS:
        return _BOOL_WORDS[word]
    raise ValueError(f"metadata-sync '{value}' is not one of on, journal, off")


_DIR_SYNC_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# What may have happened to a new directory's name before we got to it.
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


class SyncPlan:
    """What one entry op changed (see the module docstring).

    `anchor` is what `journal` mode fsyncs: ("file", fd), ("bucket", gfid) or
    ("dir", Obj); an op sets it right after the change that comes last among
    those that must be durable.  A plan without one is committed in full."""

    __slots__ = ("dirs", "files", "new_dirs", "buckets", "anchor")

    def __init__(self):
        self.dirs: dict[bytes, Obj] = {}
        self.files: list[int] = []
        self.new_dirs: list[tuple[Obj, bytes]] = []
        self.buckets: set[bytes] = set()
        self.anchor: tuple | None = None

    def add_dir(self, obj: Obj) -> None:
        self.dirs.setdefault(obj.gfid, obj)

    def nothing_changed(self) -> None:
        """The op turned out to change no directory (CREATE of an existing file)."""
        self.dirs.clear()
        self.anchor = None


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


def commit(plan: SyncPlan, identity, index, mode: str = ON) -> None:
    """Make what `plan` lists durable; raises the fsync's OSError (EIO...).
    `mode` is the effective one (JOURNAL only once the file system was checked)."""
    if mode == OFF:
        return
    if mode == JOURNAL and plan.anchor is not None:
        _commit_anchor(plan.anchor, identity, index)
        return
    for fd in plan.files:
        os.fsync(fd)
    if not (plan.new_dirs or plan.buckets or plan.dirs):
        return
    with identity.as_root():  # index directories are root's; new ones may be unreadable
        for parent, name in plan.new_dirs:
            fsync_dir_at(parent.fd, name, follow=False)
        for gfid in sorted(plan.buckets):
            index.sync_entry_dir_as_root(gfid)
        for obj in plan.dirs.values():
            fsync_dir_fd(obj.fd)


def _commit_anchor(anchor: tuple, identity, index) -> None:
    """One fsync that commits the journal transaction of the op's last change."""
    kind, what = anchor
    if kind == "file":
        os.fsync(what)
    elif kind == "bucket":
        index.sync_entry_dir(what)  # as root inside
    elif kind == "dir":
        with identity.as_root():  # the caller may lack read permission on it
            fsync_dir_fd(what.fd)
    else:
        raise ValueError(f"unknown sync anchor {kind!r}")
