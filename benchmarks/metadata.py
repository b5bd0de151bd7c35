"""The metadata job, run in its own process: `python -m benchmarks.metadata URL ...`.

It plays a user's shell over a real client (libnfs): `touch` N new files, `stat`
them, `rm` them, then `ls -l` a directory of many entries. One call at a time, as
those tools make them. A separate process, so that the harness can bound it with a
timeout and kill it like any other client. Prints one JSON object of figures.

`--remove PATH` is the `rm -f` the harness does before a fresh write, through the
server like a user's. The big directory is filled once per server (through NFS, so the server made every
entry itself) and kept between rounds; only `ls -l` of it is measured.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks.libnfs_client import NfsClient, NfsError

BIG_DIR = "/big"
META_DIR = "/meta"


def entry_name(index: int) -> str:
    return f"f{index:07d}"


def populate_big_dir(client: NfsClient, entries: int) -> dict:
    """Make BIG_DIR hold exactly the names f0000000.. for `entries`; time the creates."""
    try:
        client.mkdir(BIG_DIR)
    except NfsError as err:
        if err.errno != 17:            # EEXIST: kept from an earlier round
            raise
    present = {entry[0] for entry in client.list_long(BIG_DIR)}
    wanted = {entry_name(i) for i in range(entries)}
    start = time.perf_counter()
    created = 0
    for name in sorted(wanted - present):
        client.create(f"{BIG_DIR}/{name}")
        created += 1
    for name in sorted(present - wanted):
        client.unlink(f"{BIG_DIR}/{name}")
    return {"populate_created": created, "populate_s": time.perf_counter() - start}


def remove_if_present(client: NfsClient, path: str) -> bool:
    """Unlink path; False when it was not there (ENOENT), any other error raises."""
    try:
        client.unlink(path)
    except NfsError as err:
        if err.errno == 2:
            return False
        raise
    return True


def run_metadata(client: NfsClient, files: int, big_entries: int) -> dict:
    """Create, stat and remove `files` files in a fresh directory; `ls -l` the big one."""
    try:
        client.mkdir(META_DIR)
    except NfsError as err:
        if err.errno != 17:
            raise
        for entry in client.list_long(META_DIR):    # left by an interrupted run
            client.unlink(f"{META_DIR}/{entry[0]}")
    names = [f"{META_DIR}/{entry_name(i)}" for i in range(files)]
    t0 = time.perf_counter()
    for path in names:
        client.create(path)
    t1 = time.perf_counter()
    for path in names:
        client.stat(path)
    t2 = time.perf_counter()
    for path in names:
        client.unlink(path)
    t3 = time.perf_counter()
    client.rmdir(META_DIR)
    listing = client.list_long(BIG_DIR)
    t4 = time.perf_counter()
    if len(listing) != big_entries:
        raise NfsError(0, f"ls -l {BIG_DIR} listed {len(listing)} entries, expected {big_entries}")
    return {
        "files": files,
        "create_ops_s": files / (t1 - t0),
        "stat_ops_s": files / (t2 - t1),
        "remove_ops_s": files / (t3 - t2),
        "meta_ops_s": 3 * files / (t3 - t0),
        "meta_s": t3 - t0,
        "ls_entries": len(listing),
        "ls_s": t4 - t3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metadata",
                                     description="metadata job over libnfs; prints JSON")
    parser.add_argument("url", help="nfs://host/export/?nfsport=..&mountport=..")
    parser.add_argument("--files", type=int, required=True)
    parser.add_argument("--big-entries", type=int, required=True)
    parser.add_argument("--populate-only", action="store_true",
                        help="only fill the big directory (once per server and run)")
    parser.add_argument("--remove", metavar="PATH",
                        help="only remove PATH if it exists (as `rm -f` on the mount), so the "
                             "server sees the removal it would see from a user")
    args = parser.parse_args(argv)
    if args.files < 1 or args.big_entries < 1:
        parser.error("--files and --big-entries must be at least 1")
    try:
        with NfsClient(args.url) as client:
            if args.remove:
                figures = {"removed": remove_if_present(client, args.remove)}
            elif args.populate_only:
                figures = populate_big_dir(client, args.big_entries)
            else:
                figures = run_metadata(client, args.files, args.big_entries)
    except NfsError as err:
        print(f"metadata job failed: {err}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
