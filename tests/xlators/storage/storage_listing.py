"""Read a whole directory through storage/posix READDIRPLUS, as the NFS layer does
(and fill one with files to read)."""
import os

from glusterfsd.xlator import ROOT_CALLER as ROOT


def make_files(store, parent, count) -> dict:
    """{name: iatt} of `count` new empty files f000, f001 ... in `parent`."""
    made = {}
    for i in range(count):
        fd, iatt, _, _ = store.create(ROOT, parent, b"f%03d" % i, os.O_RDWR, 0o640)
        store.release(fd)
        made[b"f%03d" % i] = iatt
    return made


def listing(store, gfid, size=4096, caller=ROOT) -> dict:
    """{name: Dirent} of every entry, fetched `size` bytes' worth at a time."""
    out, cookie = {}, 0
    for _ in range(10_000):
        fd = store.opendir(caller, gfid)
        entries, eof = store.readdirp(caller, fd, cookie, size)
        store.release(fd)
        out.update((e.name, e) for e in entries)
        if eof:
            return out
        cookie = entries[-1].cookie
    raise AssertionError("listing did not end")
