"""The list of mounts (gnfs's rmtab): which host mounted which export path.

MOUNT's DUMP answers from this list and `showmount -a` prints it.  gnfs keeps
it in `nfs.mount-rmtab` (default /var/lib/glusterd/nfs/rmtab) so that it
survives a restart, and several NFS heads may share one file; "/-" turns the
file off.  UMNT is advisory in NFSv3 (clients that crash never send it), so
the list is informational: nothing is ever refused because of it.

The file uses gnfs's key=value store layout so an operator's tooling reads
both the same way:

    hostname-0=192.168.1.7
    mountpoint-0=/gv0
    hostname-1=...

Our server runs several worker processes (prefork) that each answer MNT, so
the file, not one worker's memory, is the truth: every change takes an
exclusive `flock` on a side file (`<path>.lock`), re-reads the file, applies
the change and replaces the file atomically (write a temporary file, fsync,
rename), so a crash leaves either the old or the new list, never half of one.
A file that cannot be read or parsed is logged and treated as empty: a
damaged rmtab must never stop MOUNT from working.

The file is the server's, not a client's: MOUNT runs in the same stage
threads as NFS calls, and those threads keep the file-system identity of the
last NFS caller (storage/posix switches fsuid per thread and switches back
only when needed).  So every touch of the file first gives the thread back
the daemon's own identity (`identity.reset_thread`); without it, a MNT after
a uid-1000 GETATTR would read and write the rmtab as uid 1000.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import tempfile
import threading
from contextlib import contextmanager

from glusterfsd import log as gflog
from xlators.storage.identity import reset_thread

logger = gflog.get_logger("mount3")

DISABLED = "/-"                     # gnfs's value of nfs.mount-rmtab that means "no file"
DEFAULT_PATH = "/var/lib/glusterd/nfs/rmtab"
MAX_FILE_BYTES = 8 << 20            # refuse to parse absurdly large files (corruption)

_LINE = re.compile(r"(hostname|mountpoint)-(\d+)=(.*)")

Entry = tuple[str, str]


class RmtabFormatError(ValueError):
    """The file is not an rmtab (bad line, unpaired entry, binary junk)."""


def parse(text: str) -> list[Entry]:
    """(host, path) pairs from the file's text, in index order; RmtabFormatError if malformed."""
    hosts: dict[int, str] = {}
    paths: dict[int, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise RmtabFormatError(f"line {lineno} is not hostname-N=... or mountpoint-N=...")
        kind, index, value = match.group(1), int(match.group(2)), match.group(3)
        table = hosts if kind == "hostname" else paths
        if index in table:
            raise RmtabFormatError(f"line {lineno} repeats {kind}-{index}")
        if not value:
            raise RmtabFormatError(f"line {lineno} has an empty {kind}")
        table[index] = value
    if set(hosts) != set(paths):
        unpaired = sorted(set(hosts) ^ set(paths))
        raise RmtabFormatError(f"entries {unpaired} lack a hostname or a mountpoint")
    entries: list[Entry] = []
    for index in sorted(hosts):
        entry = (hosts[index], paths[index])
        if entry not in entries:
            entries.append(entry)
    return entries


def render(entries: list[Entry]) -> str:
    lines = []
    for index, (host, path) in enumerate(entries):
        lines.append(f"hostname-{index}={host}")
        lines.append(f"mountpoint-{index}={path}")
    return "".join(line + "\n" for line in lines)


def _check_entry(host: str, path: str) -> None:
    # A newline would break the line format; '=' in a host is no address.
    for what, value in (("host", host), ("path", path)):
        if not isinstance(value, str) or not value or "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"rmtab {what} {value!r} cannot be recorded")


class Rmtab:
    """The mount list, persisted at `path` (None: in memory only).

    Thread-safe, and safe across processes sharing the file (see the module
    docstring).  Adding an entry that is already there changes nothing, so a
    retransmitted MNT does not list a mount twice.
    """

    def __init__(self, path: str | None):
        if path == DISABLED:
            path = None
        self.path = path
        self._lock = threading.Lock()
        self._memory: list[Entry] = []
        self._file_failed = False          # the last write failed: memory is ahead of the file
        self._read_problem: str | None = None   # last problem logged, so it is logged once
        if path is not None:
            reset_thread()
            with self._lock:
                self._memory = self._read_file() or []

    @classmethod
    def from_option(cls, value: str | None) -> "Rmtab":
        """The rmtab for an `nfs.mount-rmtab` value ("/-" or None: no file)."""
        return cls(None if value in (None, "", DISABLED) else value)

    @property
    def persistent(self) -> bool:
        return self.path is not None

    # --- the list -------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every (host, path), oldest first (re-read from the file when there is one)."""
        with self._lock:
            if self.path is not None and not self._file_failed:
                reset_thread()
                with self._file_lock(exclusive=False):
                    found = self._read_file()
                if found is not None:
                    self._memory = found
            return list(self._memory)

    def add(self, host: str, path: str) -> None:
        _check_entry(host, path)
        self._change(lambda entries: entries if (host, path) in entries
                     else entries + [(host, path)])

    def remove(self, host: str, path: str) -> None:
        self._change(lambda entries: [e for e in entries if e != (host, path)])

    def remove_host(self, host: str) -> None:
        self._change(lambda entries: [e for e in entries if e[0] != host])

    def __len__(self) -> int:
        return len(self.entries())

    # --- persistence ----------------------------------------------------
    def _change(self, edit) -> None:
        with self._lock:
            if self.path is None:
                self._memory = edit(self._memory)
                return
            reset_thread()
            try:
                with self._file_lock(exclusive=True):
                    current = None if self._file_failed else self._read_file()
                    if current is None:
                        # Unreadable, corrupt, or behind our memory after a failed
                        # write: our memory is the best list there is.
                        current = self._memory
                    updated = edit(current)
                    if updated != current or self._file_failed:
                        self._write_file(updated)
                    self._memory = updated
                    if self._file_failed:
                        logger.info("rmtab %s is writable again", self.path)
                    self._file_failed = False
            except OSError as err:
                # Keep serving from memory; say so once until the file works again.
                self._memory = edit(self._memory)
                if not self._file_failed:
                    logger.error("cannot update rmtab %s (%s); keeping the mount list in memory",
                                 self.path, err.strerror or err)
                    self._file_failed = True

    @contextmanager
    def _file_lock(self, exclusive: bool):
        """flock on `<path>.lock`; the rmtab itself is replaced by rename, so it cannot carry the lock."""
        lock_path = self.path + ".lock"
        fd = None
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            if err.errno == errno.ENOENT and exclusive:
                os.makedirs(os.path.dirname(lock_path) or ".", exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            elif exclusive:
                raise
            # A reader that cannot create the lock file reads without it: the
            # file is replaced atomically, so it still sees a whole list.
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            if fd is not None:
                os.close(fd)  # closing releases the flock

    def _read_file(self) -> list[Entry] | None:
        """The file's entries ([] if there is no file), or None if it is unreadable or corrupt."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            self._read_problem = None
            return []
        except OSError as err:
            self._report(f"cannot read rmtab {self.path} ({err.strerror or err}); "
                         "using the mount list in memory (empty at start)")
            return None
        try:
            if len(data) > MAX_FILE_BYTES:
                raise RmtabFormatError(f"larger than {MAX_FILE_BYTES} bytes")
            entries = parse(data.decode("utf-8"))
        except (UnicodeDecodeError, RmtabFormatError) as err:
            self._report(f"rmtab {self.path} is corrupt ({err}); treating it as empty "
                         "until the next mount rewrites it")
            return None
        self._read_problem = None
        return entries

    def _report(self, problem: str) -> None:
        if problem != self._read_problem:
            logger.warning("%s", problem)
            self._read_problem = problem

    def _write_file(self, entries: list[Entry]) -> None:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".rmtab.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(render(entries))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass  # the rename is done; a directory fsync is only extra durability

    def __repr__(self) -> str:
        return f"<Rmtab {self.path or '(memory)'}>"
