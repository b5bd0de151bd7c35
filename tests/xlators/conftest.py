"""Fixtures for the xlator tests: storage/posix over fresh exports in tmp_path."""
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
