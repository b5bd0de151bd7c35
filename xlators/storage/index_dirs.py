"""Making the `.glusterfs/xx` and `.glusterfs/xx/yy` directories of the gfid index.

Why ahead of time: a gfid's entry lives in `.glusterfs/xx/yy` (see
`gfid_index`).  Made lazily, as GlusterFS's posix does, the first entry of
each of the 65 536 buckets pays a mkdir and, under metadata-sync `on`, an
fsync of its parent, inside the client's CREATE/MKDIR; with few files per
bucket that is nearly every create.  So the 256 xx directories (a GlusterFS
brick has them too) are always made at start, and the storage/posix option
`index-buckets all` makes the 65 536 xx/yy ones as well, once per store.
What that costs: seconds at the first start, and on ext4 one 4 KiB block
per directory (about 256 MiB); xfs keeps empty directories in the inode.

Durability: each directory made is committed by an fsync of its parent when
`sync` is true (metadata-sync `on`), one per parent, before any entry op
can file an entry in it.  Under `journal` the op's own fsync, which comes
later, commits them (see `metadata_sync`).

The caller runs this as root with the index directory open as `index_fd`.
Several workers starting on one new store may run it at once: a directory
another made first is simply skipped.
"""
from __future__ import annotations

import os

from xlators.storage.gfid_layout import proc_path
from xlators.storage.metadata_sync import fsync_dir_at

TOP_NAMES = tuple(b"%02x" % byte for byte in range(256))


def _make_missing(dir_fd: int, parent: bytes, names, sync: bool) -> int:
    """mkdir each of `names` (relative to dir_fd) missing from `parent`; one
    fsync of `parent` if any was made.  Returns how many were made."""
    present = set(os.listdir(proc_path(dir_fd) + b"/" + parent))
    made = 0
    for name in names:
        if name in present:
            continue
        try:
            os.mkdir(parent + b"/" + name, 0o700, dir_fd=dir_fd)
            made += 1
        except FileExistsError:  # another worker of a new store
            pass
    if made and sync:
        fsync_dir_at(dir_fd, parent)
    return made


def make_top_dirs(index_fd: int, sync: bool) -> int:
    """Make the missing `.glusterfs/xx`; how many were made."""
    return _make_missing(index_fd, b".", TOP_NAMES, sync)


def make_all_buckets(index_fd: int, sync: bool) -> int:
    """Make every missing `.glusterfs/xx/yy` (after `make_top_dirs`); how many."""
    return sum(_make_missing(index_fd, top, TOP_NAMES, sync) for top in TOP_NAMES)
