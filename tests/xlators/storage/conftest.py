"""Fixtures for the storage/posix tests: fresh exports in tmp_path."""
from __future__ import annotations

import os

import pytest

from xlators.storage.identity import reset_thread
from xlators.storage.posix import PosixXlator


@pytest.fixture
def make_store(tmp_path):
    """make_store(options=None, directory=None) -> an initialised PosixXlator.

    Every store made is finalised afterwards, and the test thread gets its
    root identity back (fops leave the caller's fsuid on the thread).
    """
    made: list[PosixXlator] = []

    def make(options: dict | None = None, directory: str | None = None) -> PosixXlator:
        path = directory or str(tmp_path / "export")
        os.makedirs(path, exist_ok=True)
        xl = PosixXlator("test-posix", {"directory": path, **(options or {})}, [])
        xl.init()
        made.append(xl)
        return xl

    yield make
    reset_thread()
    for xl in made:
        xl.fini()


@pytest.fixture
def store(make_store):
    return make_store()


@pytest.fixture
def export(store):
    """The export directory's path, for changes made behind the server's back."""
    return store.directory


def _record_fsyncs(monkeypatch, note) -> None:
    """Make os.fsync note the path of every descriptor it syncs, then sync it."""
    real = os.fsync

    def recording(fd):
        note(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)
    monkeypatch.setattr(os, "fsync", recording)


@pytest.fixture
def fsyncs(monkeypatch):
    """Every fsync issued while the test runs, in order (paths, repeats kept)."""
    seen: list[str] = []
    _record_fsyncs(monkeypatch, seen.append)
    return seen


@pytest.fixture
def synced(monkeypatch):
    """The paths of everything fsync'd while the test runs (a set)."""
    seen: set[str] = set()
    _record_fsyncs(monkeypatch, seen.add)
    return seen
