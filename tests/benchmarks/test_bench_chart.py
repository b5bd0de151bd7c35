"""The chart is a real PNG with one panel per measured figure."""
import pytest

pytest.importorskip("matplotlib")

from benchmarks.chart import render_chart  # noqa: E402


def row(job, metric, unit, medians, ratio, higher=True):
    return {"job": job, "metric": metric, "unit": unit, "higher_is_better": higher,
            "median": medians, "ratio_ours_vs_ganesha": ratio}


def test_png_written(tmp_path):
    summary = [row("seqwrite", "bw_mib_s", "MiB/s", {"ours": 900.0, "ganesha": 1000.0,
                                                     "local": 3000.0}, 0.9),
               row("metadata", "ls_s", "s", {"ours": 1.2, "ganesha": 0.3}, 0.25, higher=False),
               row("randwrite", "iops", "IOPS", {}, None)]
    path = render_chart(summary, tmp_path / "c.png", "title")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_nothing_measured_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no measured figure"):
        render_chart([row("x", "iops", "IOPS", {}, None)], tmp_path / "c.png", "t")
