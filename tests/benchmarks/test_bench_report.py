"""Markdown rendering of a run, the files written, and the README section update."""
import json

import pytest

from benchmarks.report import (README_END, README_START, cpu_table, format_ratio, format_value,
                               render_markdown, results_table, targets_table, update_readme,
                               write_results)
from benchmarks.stats import summarize
from benchmarks.targets import evaluate


def make_doc():
    runs = [{"server": "ours", "round": 1, "job": "seqwrite", "figures": {"bw_mib_s": 1234.5}},
            {"server": "ganesha", "round": 1, "job": "seqwrite", "figures": {"bw_mib_s": 1000.0}},
            {"server": "local", "round": 1, "job": "seqwrite", "figures": {"bw_mib_s": 3000.0}},
            {"server": "ours", "round": 1, "job": "metadata",
             "figures": {"meta_ops_s": 50.0, "ls_s": 1.25}},
            {"server": "ganesha", "round": 1, "job": "metadata", "error": "timed out"}]
    rows = summarize(runs, ["seqwrite", "metadata"])
    return {"run_id": "20260101T000000Z-full", "mode": "full", "rounds": 1,
            "summary": [r.as_dict() for r in rows], "targets": evaluate(rows, 80.0),
            "machine": {"cores": 2}, "versions": {"commit": "abc1234", "fio": "fio-3.33"},
            "settings": {"ganesha": ["Protocols = 3"]}, "rss_peak_mib": {"ours": 80.0},
            "runs": runs}


def test_format_value_and_ratio():
    assert format_value(None, "MiB/s") == "—"
    assert format_value(1234.5, "MiB/s") == "1 234"
    assert format_value(12.34, "IOPS") == "12.3"
    assert format_value(0.98765, "s") == "0.988"
    assert format_ratio(None) == "—" and format_ratio(1.234) == "1.23x"


def test_results_table_rows_cells_and_failures():
    table = results_table(make_doc()["summary"])
    lines = table.splitlines()
    assert lines[0].startswith("| job | unit | ours | Ganesha")
    assert "| 1 234 | 1 000 | 3 000 | 1.23x |" in lines[2]
    assert "create + stat + remove" in lines[3] and "— (1 failed)" in lines[3]
    assert "ls -l" in lines[4] and "lower is better" in lines[4] and "1.250" in lines[4]


def test_targets_table_marks():
    table = targets_table(make_doc()["targets"])
    assert "| sequential write >= 1.0x Ganesha | 1.23x | yes |" in table
    assert "| ls -l of the big directory < 1 s (ours) | 1.250 s | **no** |" in table
    assert "not measured" in table
    assert "| 80 MiB | yes |" in table


def test_markdown_has_sections_chart_and_failures():
    text = render_markdown(make_doc(), "run.png")
    assert text.startswith("# Benchmark run 20260101T000000Z-full (full)")
    assert "![ours vs Ganesha vs local](run.png)" in text
    assert "## Targets" in text and "## Settings that differ from defaults" in text
    assert "  - Protocols = 3" in text
    assert "round 1, ganesha, metadata: timed out" in text


def test_write_results_round_trips(tmp_path):
    doc = make_doc()
    json_path, md_path = write_results(doc, tmp_path / "out", None)
    assert json.loads(json_path.read_text()) == doc
    assert md_path.read_text() == render_markdown(doc)


def test_update_readme_replaces_only_the_marked_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nstale text\n{README_END}\noutro\n")
    update_readme(readme, make_doc(), "results/x.md", "results/x.png")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "stale text" not in text and "[results/x.md](results/x.md)" in text
    assert "![ours vs Ganesha vs local](results/x.png)" in text
    update_readme(readme, make_doc(), "results/y.md", None)     # idempotent section
    assert readme.read_text().count(README_START) == 1


def test_update_readme_without_markers_fails(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="latest-results"):
        update_readme(readme, make_doc(), "results/x.md", None)


def test_rss_by_title_merges_rounds_and_repeated_titles():
    from benchmarks.report import rss_by_title
    doc = {"rss_by_process": {"ours": {
        "round 1": {"glusterfs: master": 40.0, "glusterfs: nfs worker 1/2": 90.0,
                    "glusterfs: nfs worker 1/2 [pid 7]": 120.0},
        "round 2": {"glusterfs: master": 45.0}}}}
    assert rss_by_title(doc) == {"ours": {"glusterfs: master": 45.0,
                                          "glusterfs: nfs worker 1/2": 120.0}}
    text = render_markdown({**make_doc(), **doc})
    assert "`glusterfs: nfs worker 1/2` 120 MiB" in text


def test_markdown_lists_skipped_runs_and_server_logs():
    doc = make_doc()
    doc["runs"] = doc["runs"] + [{"server": "local", "round": 1, "job": "seqread-cold",
                                  "skipped": "cannot drop the page cache"}]
    doc["server_logs"] = {"ganesha": "/var/tmp/bench/run-ganesha/ganesha.log"}
    text = render_markdown(doc)
    assert "## Skipped runs" in text
    assert "round 1, local, seqread-cold: cannot drop the page cache" in text
    assert "ganesha `/var/tmp/bench/run-ganesha/ganesha.log`" in text


def test_server_cpu_table_in_the_markdown_and_the_readme(tmp_path):
    from benchmarks.jobs import cpu_metric
    runs = [{"server": "ours", "round": 1, "job": "randread",
             "figures": {"iops": 10.0, "server_cpu_us_per_io": 40.0}},
            {"server": "ganesha", "round": 1, "job": "randread",
             "figures": {"iops": 20.0, "server_cpu_us_per_io": 20.0}},
            {"server": "ours", "round": 1, "job": "metadata",
             "figures": {"meta_ops_s": 1.0, "ls_s": 1.0, "server_cpu_s": 30.0}},
            {"server": "ganesha", "round": 1, "job": "metadata", "error": "timed out"}]
    rows = [r.as_dict() for r in summarize(runs, ["randread", "metadata"], cpu_metric)]
    table = cpu_table(rows).splitlines()
    assert "| per I/O, µs | 40.0 | 20.0 | 0.50x |" in table[2]
    assert "| whole job, s | 30.000 | — (1 failed) | — |" in table[3]
    doc = {**make_doc(), "server_cpu": rows}
    assert "## Server CPU" in render_markdown(doc) and table[2] in render_markdown(doc)
    assert "## Server CPU" not in render_markdown(make_doc())     # older runs had none
    readme = tmp_path / "README.md"
    readme.write_text(f"top\n{README_START}\nold\n{README_END}\n")
    update_readme(readme, doc, "results/x.md", None)
    assert table[2] in readme.read_text()


def test_steal_table_shows_each_round_per_server():
    from benchmarks.report import steal_table
    runs = [{"server": "ours", "round": 1, "job": "randread",
             "figures": {"iops": 1.0, "host_steal_pct": 2.4}},
            {"server": "ganesha", "round": 1, "job": "randread",
             "figures": {"iops": 1.0, "host_steal_pct": 0.2}},
            {"server": "ours", "round": 2, "job": "randread",
             "figures": {"iops": 1.0, "host_steal_pct": 61.0}},
            {"server": "ganesha", "round": 2, "job": "randread", "error": "timed out"},
            {"server": "ours", "round": 1, "job": "metadata",
             "figures": {"meta_ops_s": 1.0, "host_steal_pct": 5.0}}]
    table = steal_table(runs).splitlines()
    assert table[0] == "| job | ours | Ganesha |"
    assert table[2].endswith("| 2 / 61 | 0 |")
    assert table[3].endswith("| 5 | — |")
    doc = {**make_doc(), "runs": runs}
    assert "## Host CPU steal" in render_markdown(doc)
    assert "## Host CPU steal" not in render_markdown(make_doc())   # older runs had none


def test_steal_table_and_rule_show_the_attempts_measured_again():
    from benchmarks.report import steal_rule, steal_table
    runs = [{"server": "ours", "round": 1, "job": "randread",
             "figures": {"iops": 1.0, "host_steal_pct": 3.2},
             "disturbed": [{"iops": 0.5, "host_steal_pct": 41.0},
                           {"iops": 0.7, "host_steal_pct": 12.6}]},
            {"server": "ours", "round": 2, "job": "randread",
             "figures": {"iops": 1.0, "host_steal_pct": 1.0}}]
    assert steal_table(runs).splitlines()[2].endswith("| 3 [41, 13] / 1 |")
    doc = {**make_doc(), "runs": runs, "steal_limit_pct": 10.0, "attempts": 3}
    assert "passed 10 %" in steal_rule(doc) and "again: 2 time(s)" in steal_rule(doc)
    assert steal_rule(doc) in render_markdown(doc)
    assert steal_rule(make_doc()) == ""     # runs without the rule say nothing of it
