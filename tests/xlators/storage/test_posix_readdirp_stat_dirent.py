"""readdirp's entries keep their lstat (glusterfsd.stat_dirent.StatDirent): the
NFS layer packs attributes straight from it, so what the entry says (type,
nlink, ino, and the iatt built on demand) must be exactly what the storage's
own `_iatt` and a stat by gfid say, for every kind of object and odd values."""
from __future__ import annotations

import os
import stat as statmod

from glusterfsd.stat_dirent import StatDirent
from glusterfsd.xlator import ROOT_CALLER as ROOT, ROOT_GFID, Dirent
from storage_listing import listing
from xlators.storage.posix_core import PosixCore

NS = 1_000_000_000


def _odd_objects(export: str) -> None:
    """Objects of every kind, made behind the server's back, with odd attributes."""
    def at(name):
        return os.path.join(export, name)
    with open(at("plain"), "wb") as out:
        out.write(b"x" * 5000)
    with open(at("huge-sparse"), "wb") as out:
        out.truncate(1 << 40)
    os.chmod(at("plain"), 0o6755)                       # setuid, setgid
    with open(at("linked"), "wb"):
        pass
    os.link(at("linked"), at("linked-2"))
    os.link(at("linked"), at("linked-3"))
    os.mkdir(at("sub"))
    os.mkdir(at("sub/inner"))
    os.symlink("plain", at("a-link"))
    os.mkfifo(at("a-fifo"))
    os.mknod(at("a-char"), 0o620 | statmod.S_IFCHR, os.makedev(4, 64))
    os.mknod(at("a-block"), 0o660 | statmod.S_IFBLK, os.makedev(259, 0xFFFFF))
    with open(at("old-and-future"), "wb"):
        pass
    os.utime(at("old-and-future"), ns=(-5 * NS - 1, (1 << 32) * NS + 3))
    os.chown(at("old-and-future"), 4_000_000_000, 65534)


def test_stat_dirents_say_what_stat_says(store, export):
    _odd_objects(export)
    for second in (False, True):   # once healing (gfids given now), once vouched
        entries = listing(store, ROOT_GFID, size=700)
        odd = {name: e for name, e in entries.items() if name not in (b".", b"..")}
        assert len(odd) == 11
        for name, entry in odd.items():
            assert isinstance(entry, Dirent)
            assert entry.__class__ is StatDirent, name
            iatt = entry.iatt
            assert iatt == PosixCore._iatt(entry.st, entry.gfid)
            if second:      # (healing a later name may change the ctime of an earlier one)
                assert iatt == store.stat(ROOT, entry.gfid)
            assert (entry.ino, entry.type, entry.nlink) == (iatt.ino, iatt.type, iatt.nlink)
            assert entry.iatt is iatt                   # built once
    assert odd[b"linked-2"].nlink == 3 and odd[b"sub"].nlink == 3
    assert (odd[b"a-block"].iatt.rdev_major, odd[b"a-block"].iatt.rdev_minor) == (259, 0xFFFFF)


def test_a_stat_dirent_equals_the_dirent_it_stands_for(store, export):
    _odd_objects(export)
    entry = listing(store, ROOT_GFID)[b"a-char"]
    plain = Dirent(entry.name, entry.cookie, entry.ino, entry.type, entry.iatt)
    assert (entry.name, entry.cookie, entry.ino, entry.type, entry.iatt) == \
        (plain.name, plain.cookie, plain.ino, plain.type, plain.iatt)
    assert "a-char" in repr(entry)
