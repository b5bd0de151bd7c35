"""The descriptor LRU of storage/posix (xlators/storage/fd_cache.py)."""
from __future__ import annotations

import errno
import os

import pytest

from xlators.storage.fd_cache import FdCache


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(6):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"file %d" % i)
        paths.append(str(path))
    return paths


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def open_files() -> list[str]:
    """Paths this process has open (descriptor numbers get reused, paths do not)."""
    found = []
    for entry in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{entry}"))
        except OSError:
            pass
    return found


def make_cache(files, capacity):
    opened = []

    def reopen(gfid, acc):
        index = gfid[0]
        if index >= len(files):
            raise OSError(errno.ESTALE, "gone")
        fd = os.open(files[index], acc)
        opened.append(fd)
        return fd
    return FdCache(capacity, reopen), opened


def gfid(i: int) -> bytes:
    return bytes([i]) + b"\0" * 15


def test_lru_eviction_closes_and_reopens(files):
    cache, opened = make_cache(files, 2)
    for i in range(4):
        with cache.use(gfid(i), os.O_RDONLY) as fd:
            assert os.pread(fd, 20, 0) == b"file %d" % i
    assert len(cache) == 2 and cache.evictions == 2
    assert [open_files().count(path) for path in files[:4]] == [0, 0, 1, 1]
    with cache.use(gfid(0), os.O_RDONLY) as fd:  # evicted: reopened transparently
        assert os.pread(fd, 20, 0) == b"file 0"
    assert cache.misses == 5 and cache.hits == 0
    with cache.use(gfid(0), os.O_RDONLY):
        pass
    assert cache.hits == 1
    cache.clear()
    assert not any(path in open_files() for path in files)


def test_pinned_descriptor_survives_eviction_until_unpinned(files):
    cache, opened = make_cache(files, 1)
    with cache.use(gfid(0), os.O_RDONLY) as pinned:
        with cache.use(gfid(1), os.O_RDONLY):
            pass  # evicts gfid 0 while it is in use
        assert is_open(pinned) and os.pread(pinned, 6, 0) == b"file 0"
        assert files[0] in open_files()
    assert files[0] not in open_files()
    cache.clear()


def test_forget_and_release(files):
    cache, _ = make_cache(files, 4)
    fd = os.open(files[2], os.O_RDONLY)
    cache.adopt(gfid(2), os.O_RDONLY, fd)
    duplicate = os.open(files[2], os.O_RDONLY)
    cache.adopt(gfid(2), os.O_RDONLY, duplicate)  # already cached: the new one is closed
    assert open_files().count(files[2]) == 1 and cache.note_open(gfid(2), os.O_RDONLY)
    cache.release(gfid(2), os.O_RDONLY, gone=lambda _: False)
    cache.release(gfid(2), os.O_RDONLY, gone=lambda _: False)
    cache.release(gfid(2), os.O_RDONLY, gone=lambda _: False)
    assert files[2] in open_files()  # still cached for the next open
    assert cache.note_open(gfid(2), os.O_RDONLY)
    cache.release(gfid(2), os.O_RDONLY, gone=lambda _: True)  # file deleted meanwhile
    assert files[2] not in open_files() and len(cache) == 0
    for acc in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):   # every access mode of one file
        cache.adopt(gfid(3), acc, os.open(files[3], acc))
    cache.adopt(gfid(1), os.O_RDONLY, os.open(files[1], os.O_RDONLY))
    cache.forget(gfid(3))
    assert files[3] not in open_files()
    assert not any(cache.note_open(gfid(3), acc) for acc in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR))
    assert files[1] in open_files() and len(cache) == 1   # another file's fd stays


def test_reopen_failure_propagates(files):
    cache, _ = make_cache(files, 2)
    with pytest.raises(OSError) as info:
        with cache.use(gfid(9), os.O_RDONLY):
            pass
    assert info.value.errno == errno.ESTALE and len(cache) == 0


def test_pin_cached_never_opens_and_skips_evicted_descriptors(files):
    cache, opened = make_cache(files, capacity=1)
    assert cache.pin_cached(gfid(0)) is None and opened == []     # nothing cached: no reopen
    first = cache.pin(gfid(0), os.O_RDONLY)
    held = cache.pin_cached(gfid(0))
    assert held is first and first.pins == 2
    cache.unpin(held)
    cache.unpin(cache.pin(gfid(1), os.O_RDONLY))                  # evicts gfid 0 (still pinned)
    assert first.doomed and cache.pin_cached(gfid(0)) is None
    cache.unpin(first)
    assert not is_open(first.fd)
