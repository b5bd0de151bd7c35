"""Does one fsync on this file system commit every earlier metadata change?

Why the question: `metadata-sync journal` (see `metadata_sync`) fsyncs only
the object an entry op changed last, relying on the file system committing
metadata as one ordered journal: fsync of an inode waits for the journal
transaction (or log sequence) of that inode's last change, and transactions
commit in order, so every change made before it is on disk too.  That holds
for

* xfs: fsync forces the log up to the inode's last commit sequence, and the
  log is written in sequence order;
* ext4 WITH a journal and WITHOUT the fast_commit feature: fsync waits for
  the jbd2 transaction holding the inode's last change (`i_sync_tid`).

It does not hold for ext4 without a journal (each fsync writes only its own
inode and, for a new entry, its parent), ext4 with fast_commit (a fast commit
logs only the inodes fsync'd), btrfs (fsync writes a per-inode log tree), or
anything we cannot identify.  So `check` answers yes only when it has SEEN
the facts: the file system type from /proc/self/mountinfo, for ext4 a journal
thread in /sys/fs/ext4/<dev>/journal_task and the superblock's feature bits
(has_journal set, fast_commit clear) read from the block device.  When the
device cannot be read (a container without access to it), the answer is no.

The paths are parameters so that tests can present any file system.
"""
from __future__ import annotations

import os
import stat
import struct

EXT4_SUPER_OFFSET = 1024
EXT4_SUPER_MAGIC = 0xEF53
_MAGIC_AT = 0x38
_COMPAT_AT = 0x5C
COMPAT_HAS_JOURNAL = 0x0004
COMPAT_FAST_COMMIT = 0x0400


def mount_of(st_dev: int, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, str] | None:
    """(file system type, source) of the mount whose device is st_dev; the
    last such line wins (a later mount of the same device is the visible one)."""
    wanted = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    found = None
    with open(mountinfo, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[2] != wanted or "-" not in fields[6:]:
                continue
            rest = fields[fields.index("-", 6) + 1:]
            if len(rest) >= 2:
                found = (rest[0], rest[1])
    return found


def ext4_features(device: str, st_dev: int | None) -> int | None:
    """s_feature_compat of the ext4 superblock on `device`, or None if it
    cannot be read or is not the block device st_dev (None: not checked)."""
    try:
        with open(device, "rb") as dev:
            if st_dev is not None and not _is_device(dev.fileno(), st_dev):
                return None
            dev.seek(EXT4_SUPER_OFFSET)
            block = dev.read(0x60)
    except OSError:
        return None
    if len(block) < 0x60 or struct.unpack_from("<H", block, _MAGIC_AT)[0] != EXT4_SUPER_MAGIC:
        return None
    return struct.unpack_from("<I", block, _COMPAT_AT)[0]


def _is_device(fd: int, st_dev: int) -> bool:
    """Is the open file the block device st_dev (not some other node)?"""
    st = os.fstat(fd)
    return stat.S_ISBLK(st.st_mode) and st.st_rdev == st_dev


def _kernel_name(st_dev: int, sysfs: str) -> str | None:
    """The block device's kernel name (what /sys/fs/ext4/ is keyed by: vda1, dm-0)."""
    try:
        return os.path.basename(os.readlink(f"{sysfs}/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}"))
    except OSError:
        return None


def check(path: str, *, mountinfo: str = "/proc/self/mountinfo", sysfs: str = "/sys",
          dev: str = "/dev") -> tuple[bool, str]:
    """(True, why) when one fsync commits all earlier metadata of the file
    system holding `path`; (False, why not) otherwise."""
    st_dev = os.stat(path).st_dev
    try:
        mount = mount_of(st_dev, mountinfo)
    except OSError as err:
        return False, f"cannot read {mountinfo}: {err.strerror}"
    if mount is None:
        return False, "its mount is not listed in mountinfo"
    fstype = mount[0]
    if fstype == "xfs":
        return True, "xfs (metadata log forced in order)"
    if fstype != "ext4":
        return False, f"{fstype} is not known to commit metadata as one journal"
    name = _kernel_name(st_dev, sysfs)
    if name is None:
        return False, "ext4 on a device without a sysfs entry"
    try:
        with open(f"{sysfs}/fs/ext4/{name}/journal_task", encoding="ascii") as task:
            journal_task = task.read().strip()
    except OSError:
        return False, f"ext4 on {name}: journal state unknown"
    if not journal_task.isdigit():
        return False, f"ext4 on {name} has no journal"
    features = None
    for device in (f"{dev}/block/{os.major(st_dev)}:{os.minor(st_dev)}", f"{dev}/{name}"):
        features = ext4_features(device, st_dev)
        if features is not None:
            break
    if features is None:
        return False, f"ext4 on {name}: superblock unreadable (fast_commit unknown)"
    if not features & COMPAT_HAS_JOURNAL:
        return False, f"ext4 on {name} has no journal"
    if features & COMPAT_FAST_COMMIT:
        return False, f"ext4 on {name} uses fast_commit (fsync logs single inodes)"
    return True, f"ext4 on {name} with a jbd2 journal, no fast_commit"
