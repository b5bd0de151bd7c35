"""The host's CPU steal over a window, and the export file system in words."""
from collections import namedtuple

import pytest

from benchmarks import host

Times = namedtuple("Times", "user system idle steal")
TimesNoSteal = namedtuple("TimesNoSteal", "user system idle")


def window_over(monkeypatch, start, end) -> host.CpuWindow:
    readings = iter([start, end])
    monkeypatch.setattr(host.psutil, "cpu_times", lambda: next(readings))
    return host.CpuWindow()


def test_steal_is_its_share_of_all_cpu_time_in_the_window(monkeypatch):
    window = window_over(monkeypatch, Times(10, 5, 80, 5), Times(30, 10, 100, 25))
    assert window.steal_pct() == pytest.approx(100 * 20 / 65)


def test_no_time_passed_is_no_steal(monkeypatch):
    assert window_over(monkeypatch, Times(1, 1, 1, 1), Times(1, 1, 1, 1)).steal_pct() == 0.0


def test_a_kernel_without_steal_gives_none(monkeypatch):
    window = window_over(monkeypatch, TimesNoSteal(1, 1, 1), TimesNoSteal(2, 2, 2))
    assert window.steal_pct() is None


def test_a_real_window_is_a_percentage():
    steal = host.CpuWindow().steal_pct()
    assert steal is None or 0.0 <= steal <= 100.0


def test_export_file_system_names_its_device(tmp_path):
    text = host.export_file_system(str(tmp_path))
    assert "; device " in text and not text.startswith("unknown")


def test_export_file_system_of_a_missing_path_says_unknown(tmp_path):
    assert host.export_file_system(str(tmp_path / "gone")).startswith("unknown (")
