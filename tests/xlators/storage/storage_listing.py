"""Read a whole directory through storage/posix READDIRPLUS, as the NFS layer does."""
from glusterfsd.xlator import ROOT_CALLER as ROOT


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
