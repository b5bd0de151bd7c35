"""fs_journal.check: `metadata-sync journal` is used only where the file
system was seen to commit metadata as one ordered journal."""
from __future__ import annotations

import os
import struct

import pytest

from xlators.storage import fs_journal


def _superblock(compat: int, magic: int = fs_journal.EXT4_SUPER_MAGIC) -> bytes:
    block = bytearray(2048)
    struct.pack_into("<H", block, 1024 + 0x38, magic)
    struct.pack_into("<I", block, 1024 + 0x5C, compat)
    return bytes(block)


@pytest.fixture
def fake_fs(tmp_path, monkeypatch):
    """fake_fs(fstype, journal_task=None, compat=None) -> check()'s answer for
    tmp_path, as if it lay on such a file system (mountinfo, sysfs, /dev faked)."""
    st_dev = os.stat(tmp_path).st_dev
    majmin = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    monkeypatch.setattr(fs_journal, "_is_device", lambda fd, dev: dev == st_dev)

    def make(fstype: str, journal_task: str | None = None, compat: int | None = None):
        root = tmp_path / fstype
        root.mkdir()
        (root / "mountinfo").write_text(
            f"22 1 0:99 / /elsewhere rw - tmpfs tmpfs rw\n"
            f"36 22 {majmin} / /export rw,relatime shared:1 - {fstype} /dev/fakedev rw\n")
        (root / "sys/dev/block").mkdir(parents=True)
        os.symlink("../../devices/virtual/block/fakedev", root / "sys/dev/block" / majmin)
        if journal_task is not None:
            (root / "sys/fs/ext4/fakedev").mkdir(parents=True)
            (root / "sys/fs/ext4/fakedev/journal_task").write_text(journal_task + "\n")
        (root / "dev/block").mkdir(parents=True)
        if compat is not None:
            (root / "dev/block" / majmin).write_bytes(_superblock(compat))
        return fs_journal.check(str(tmp_path), mountinfo=str(root / "mountinfo"),
                                sysfs=str(root / "sys"), dev=str(root / "dev"))
    return make


def test_xfs_commits_in_order(fake_fs):
    assert fake_fs("xfs")[0] is True


def test_ext4_with_a_journal_and_without_fast_commit_is_verified(fake_fs):
    ok, why = fake_fs("ext4", "4242", fs_journal.COMPAT_HAS_JOURNAL)
    assert ok is True and "jbd2" in why


@pytest.mark.parametrize("task, compat, reason", [
    ("<none>", fs_journal.COMPAT_HAS_JOURNAL, "no journal"),       # mounted without one
    ("4242", 0, "no journal"),                                      # superblock says none
    ("4242", fs_journal.COMPAT_HAS_JOURNAL | fs_journal.COMPAT_FAST_COMMIT, "fast_commit"),
    ("4242", None, "unreadable"),                                   # cannot see fast_commit
    (None, fs_journal.COMPAT_HAS_JOURNAL, "unknown"),               # no sysfs entry
])
def test_ext4_is_refused_unless_every_fact_is_seen(fake_fs, task, compat, reason):
    ok, why = fake_fs("ext4", task, compat)
    assert ok is False and reason in why


@pytest.mark.parametrize("fstype", ["btrfs", "tmpfs", "nfs4", "ext3"])
def test_other_file_systems_are_refused(fake_fs, fstype):
    ok, why = fake_fs(fstype)
    assert ok is False and fstype in why


def test_a_superblock_of_another_kind_or_device_is_not_read(tmp_path):
    image = tmp_path / "sb"
    image.write_bytes(_superblock(fs_journal.COMPAT_HAS_JOURNAL, magic=0x1234))
    assert fs_journal.ext4_features(str(image), None) is None          # not ext4
    image.write_bytes(_superblock(fs_journal.COMPAT_HAS_JOURNAL))
    assert fs_journal.ext4_features(str(image), None) == fs_journal.COMPAT_HAS_JOURNAL
    assert fs_journal.ext4_features(str(image), os.stat(tmp_path).st_dev) is None  # not that device
    assert fs_journal.ext4_features(str(tmp_path / "missing"), None) is None


def test_the_mount_of_a_device_is_the_last_one_listed(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
                    "2 1 8:2 / /a rw shared:3 master:4 - xfs /dev/sda2 rw\n"
                    "3 1 8:1 /sub /b rw - ext4 /dev/sda1 rw,noatime\n")
    assert fs_journal.mount_of(os.makedev(8, 2), str(info)) == ("xfs", "/dev/sda2")
    assert fs_journal.mount_of(os.makedev(8, 1), str(info)) == ("ext4", "/dev/sda1")
    assert fs_journal.mount_of(os.makedev(9, 9), str(info)) is None
