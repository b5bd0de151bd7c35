"""A real client (libnfs) lists a directory of many replies through the default
graph's performance/readdir-ahead: every entry as it is on disk, and the
batches made ahead are the ones the client's next calls took."""
from __future__ import annotations

import shutil

import pytest

from prefork_helpers import BASE_OPTIONS, PreforkDaemon, dump_sections

pytestmark = pytest.mark.skipif(shutil.which("nfs-ls") is None, reason="libnfs not installed")


def volfile_with_readdir_ahead(brick) -> str:
    options = {**BASE_OPTIONS, "nfs.workers": "1"}
    body = "".join(f"    option {k} {v}\n" for k, v in options.items())
    return (f"volume gv0-posix\n    type storage/posix\n    option directory {brick}\n"
            f"end-volume\n\nvolume gv0\n    type performance/readdir-ahead\n"
            f"    subvolumes gv0-posix\nend-volume\n\n"
            f"volume nfs\n    type nfs/server\n{body}    subvolumes gv0\nend-volume\n")


def test_libnfs_listing_takes_the_batches_made_ahead(tmp_path):
    from benchmarks.libnfs_client import NfsClient
    daemon = PreforkDaemon(tmp_path, workers=1)
    daemon.vol.write_text(volfile_with_readdir_ahead(daemon.brick))
    many = daemon.brick / "many"
    many.mkdir()
    expected = {}
    for i in range(700):                        # ~16 replies of libnfs's 8 KiB
        name = f"file-{i:04d}"
        (many / name).write_bytes(b"y" * i)
        expected[name] = i
    with daemon:
        assert daemon.start().returncode == 0, daemon.log_text()
        for _ in range(2):
            with NfsClient(daemon.url("/")) as client:
                listed = client.list_long("/many")
            assert {name: size for name, _, size, _, _ in listed} == expected
        (pid,) = daemon.worker_pids()
        figures = dump_sections(daemon.statedump())[f"worker.{pid}.xlator.gv0"]
    assert figures["type"] == "performance/readdir-ahead"
    used, made = int(figures["used"]), int(figures["made"])
    assert used >= 2 * 10, figures             # every call after a listing's first, twice
    assert made == used and figures["missed"] == figures["stale"] == figures["failed"] == "0"
