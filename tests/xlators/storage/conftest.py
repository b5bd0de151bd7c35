"""Fixtures for the storage/posix tests (make_store is tests/xlators/conftest.py's)."""
from __future__ import annotations

import os

import pytest


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
