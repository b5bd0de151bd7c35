"""Medians over rounds, ratios, and the per-run records folded into summary rows."""
import pytest

from benchmarks.stats import median, performance_ratio, summarize


def test_median_odd_even_and_empty():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_ratio_directions():
    assert performance_ratio(200.0, 100.0) == 2.0
    # a time: ours takes half as long -> 2x faster
    assert performance_ratio(0.5, 1.0, higher_is_better=False) == 2.0


@pytest.mark.parametrize("ours,ganesha", [(None, 1.0), (1.0, None), (0.0, 1.0), (1.0, 0.0)])
def test_ratio_undefined(ours, ganesha):
    assert performance_ratio(ours, ganesha) is None


def run(server, round_no, job, **figures):
    return {"server": server, "round": round_no, "job": job, "figures": figures}


def test_summarize_medians_ratio_and_failures():
    runs = [run("ours", 1, "seqwrite", bw_mib_s=100.0), run("ganesha", 1, "seqwrite", bw_mib_s=200.0),
            run("ours", 2, "seqwrite", bw_mib_s=300.0), run("ganesha", 2, "seqwrite", bw_mib_s=100.0),
            run("ours", 3, "seqwrite", bw_mib_s=200.0),
            {"server": "ganesha", "round": 3, "job": "seqwrite", "error": "timeout"},
            run("local", 1, "seqwrite", bw_mib_s=900.0),
            {"server": "local", "round": 1, "job": "seqread-cold", "skipped": "no drop_caches"}]
    rows = summarize(runs, ["seqwrite", "seqread-cold"])
    assert [r.job for r in rows] == ["seqwrite", "seqread-cold"]
    write = rows[0]
    assert write.median_of("ours") == 200.0
    assert write.median_of("ganesha") == 150.0
    assert write.ratio == pytest.approx(200.0 / 150.0)
    assert write.errors == {"ganesha": 1}
    cold = rows[1]
    assert cold.values == {} and cold.errors == {} and cold.ratio is None
    doc = write.as_dict()
    assert doc["median"] == {"ours": 200.0, "ganesha": 150.0, "local": 900.0}
    assert doc["ratio_ours_vs_ganesha"] == pytest.approx(4 / 3)


def test_summarize_metadata_has_two_metrics_with_time_inverted():
    runs = [run("ours", 1, "metadata", meta_ops_s=500.0, ls_s=2.0),
            run("ganesha", 1, "metadata", meta_ops_s=1000.0, ls_s=0.5)]
    rows = summarize(runs, ["metadata"])
    assert [r.metric.key for r in rows] == ["meta_ops_s", "ls_s"]
    assert rows[0].ratio == 0.5
    assert rows[1].ratio == 0.25


def test_unknown_server_in_a_record_is_an_error():
    with pytest.raises(ValueError, match="unknown server"):
        summarize([run("kernel", 1, "seqwrite", bw_mib_s=1.0)], ["seqwrite"])


def test_summarize_server_cpu_per_io_and_per_job_lower_is_better():
    from benchmarks.jobs import cpu_metric
    runs = [run("ours", 1, "randread", iops=10.0, server_cpu_us_per_io=40.0, server_cpu_s=1.2),
            run("ganesha", 1, "randread", iops=20.0, server_cpu_us_per_io=20.0),
            run("local", 1, "randread", iops=99.0),
            run("ours", 1, "metadata", meta_ops_s=1.0, ls_s=1.0, server_cpu_s=30.0),
            run("ganesha", 1, "metadata", meta_ops_s=2.0, ls_s=0.5, server_cpu_s=6.0)]
    rows = summarize(runs, ["randread", "metadata"], cpu_metric)
    assert [(r.job, r.metric.key) for r in rows] == [("randread", "server_cpu_us_per_io"),
                                                     ("metadata", "server_cpu_s")]
    assert rows[0].values == {"ours": [40.0], "ganesha": [20.0]}    # local: no server
    assert rows[0].ratio == 0.5 and rows[1].ratio == pytest.approx(0.2)
