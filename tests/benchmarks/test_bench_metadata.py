"""The metadata job's logic over an in-memory client with libnfs's error behaviour."""
import errno

import pytest

from benchmarks import metadata
from benchmarks.libnfs_client import NfsError


class MemoryClient:
    """Directories and files in dictionaries; errors as libnfs raises them."""

    def __init__(self):
        self.dirs: dict[str, set[str]] = {"/": set()}

    def _split(self, path):
        parent, _, name = path.rpartition("/")
        return parent or "/", name

    def mkdir(self, path):
        if path in self.dirs:
            raise NfsError(errno.EEXIST, f"mkdir {path}: exists")
        parent, name = self._split(path)
        self.dirs[parent].add(name)
        self.dirs[path] = set()

    def rmdir(self, path):
        if self.dirs[path]:
            raise NfsError(errno.ENOTEMPTY, f"rmdir {path}: not empty")
        parent, name = self._split(path)
        self.dirs[parent].discard(name)
        del self.dirs[path]

    def create(self, path):
        parent, name = self._split(path)
        self.dirs[parent].add(name)

    def stat(self, path):
        parent, name = self._split(path)
        if name not in self.dirs.get(parent, ()):
            raise NfsError(errno.ENOENT, f"stat {path}: no such file")
        return 0o100644, 0

    def unlink(self, path):
        parent, name = self._split(path)
        if name not in self.dirs.get(parent, ()):
            raise NfsError(errno.ENOENT, f"unlink {path}: no such file")
        self.dirs[parent].discard(name)

    def list_long(self, path):
        return [(name, 0o100644, 0, 0, 0) for name in sorted(self.dirs[path])]


def test_populate_then_run_figures():
    client = MemoryClient()
    first = metadata.populate_big_dir(client, 50)
    assert first["populate_created"] == 50
    again = metadata.populate_big_dir(client, 50)        # kept between rounds
    assert again["populate_created"] == 0
    figures = metadata.run_metadata(client, files=20, big_entries=50)
    assert figures["files"] == 20 and figures["ls_entries"] == 50
    for key in ("create_ops_s", "stat_ops_s", "remove_ops_s", "meta_ops_s", "ls_s"):
        assert figures[key] > 0
    assert "meta" not in client.dirs["/"]                 # cleaned up after itself


def test_populate_trims_extra_entries():
    client = MemoryClient()
    metadata.populate_big_dir(client, 10)
    metadata.populate_big_dir(client, 4)
    assert len(client.list_long(metadata.BIG_DIR)) == 4


def test_leftovers_of_an_interrupted_run_are_removed_first():
    client = MemoryClient()
    metadata.populate_big_dir(client, 5)
    client.mkdir(metadata.META_DIR)
    client.create(f"{metadata.META_DIR}/stale")
    figures = metadata.run_metadata(client, files=3, big_entries=5)
    assert figures["files"] == 3


def test_wrong_listing_count_is_an_error():
    client = MemoryClient()
    metadata.populate_big_dir(client, 5)
    with pytest.raises(NfsError, match="listed 5 entries, expected 6"):
        metadata.run_metadata(client, files=1, big_entries=6)


def test_other_mkdir_errors_propagate():
    client = MemoryClient()

    def refuse(path):
        raise NfsError(errno.EACCES, "mkdir: permission denied")
    client.mkdir = refuse
    with pytest.raises(NfsError, match="permission denied"):
        metadata.populate_big_dir(client, 1)


def test_main_validates_counts(capsys):
    with pytest.raises(SystemExit) as exc:
        metadata.main(["nfs://127.0.0.1/x/", "--files", "0", "--big-entries", "1"])
    assert exc.value.code == 2


def test_remove_if_present():
    client = MemoryClient()
    client.create("/bench.dat")
    assert metadata.remove_if_present(client, "/bench.dat") is True
    assert metadata.remove_if_present(client, "/bench.dat") is False


def test_remove_other_errors_propagate():
    client = MemoryClient()

    def refuse(path):
        raise NfsError(errno.EACCES, "unlink: permission denied")
    client.unlink = refuse
    with pytest.raises(NfsError, match="permission denied"):
        metadata.remove_if_present(client, "/bench.dat")
