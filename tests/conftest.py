"""Shared fixtures: test xlator types, and helpers to run the daemon for real."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def write_volfile(tmp_path):
    """Write volfile text to a file and return its path."""
    def write(text: str, name: str = "test.vol") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


@pytest.fixture
def pool():
    """A running event pool (2 threads), destroyed after the test."""
    from event import new_pool
    p = new_pool(slots=256, threads=2)
    p.dispatch()
    yield p
    p.destroy()
