"""Run our server with cProfile in every thread: `python -m benchmarks.cprofile_server OUT -- ARGS`.

Why not `python -m cProfile -m glusterfsd`: cProfile sees only the thread that enabled
it, and our server does its work in event and stage threads. Here a thread-start hook
(threading.setprofile) gives each new thread its own profiler; when the server returns
(SIGTERM makes it stop gracefully), all of them are merged into one pstats file at OUT,
plus OUT.txt with the top functions by internal and by cumulative time.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import sys
import threading

TOP_N = 40


class ThreadProfilers:
    """Creates and keeps one cProfile.Profile per thread that starts after install()."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.profilers: list[cProfile.Profile] = []

    def _start_in_thread(self, frame, event, arg) -> None:
        profiler = cProfile.Profile()
        with self.lock:
            self.profilers.append(profiler)
        profiler.enable()          # replaces this hook for the rest of the thread

    def install(self) -> cProfile.Profile:
        threading.setprofile(self._start_in_thread)
        main = cProfile.Profile()
        with self.lock:
            self.profilers.append(main)
        main.enable()
        return main

    def merged(self) -> pstats.Stats | None:
        threading.setprofile(None)
        with self.lock:
            profilers = list(self.profilers)
        stats = None
        for profiler in profilers:
            profiler.disable()
            profiler.create_stats()
            if not profiler.stats:
                continue
            if stats is None:
                stats = pstats.Stats(profiler)
            else:
                stats.add(profiler)
        return stats


def write_report(stats: pstats.Stats, out: str) -> None:
    stats.dump_stats(out)
    text = io.StringIO()
    stats.stream = text
    stats.sort_stats("tottime").print_stats(TOP_N)
    stats.sort_stats("cumulative").print_stats(TOP_N)
    with open(out + ".txt", "w") as handle:
        handle.write(text.getvalue())


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m benchmarks.cprofile_server OUT -- GLUSTERFS-ARGS...",
              file=sys.stderr)
        return 2
    out, server_args = argv[0], argv[2:]
    from glusterfsd.cli import main as server_main
    profilers = ThreadProfilers()
    profilers.install()
    try:
        status = server_main(server_args)
    finally:
        stats = profilers.merged()
        if stats is not None:
            write_report(stats, out)
    return status or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
