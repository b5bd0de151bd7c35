"""The issue's targets against summary rows: met, missed, and not measured."""
from benchmarks.stats import summarize
from benchmarks.targets import TARGETS, evaluate


def run(server, job, **figures):
    return {"server": server, "round": 1, "job": job, "figures": figures}


def by_text(results):
    return {r["target"]: r for r in results}


def test_targets_met_missed_and_unmeasured():
    runs = [run("ours", "seqwrite", bw_mib_s=1100.0), run("ganesha", "seqwrite", bw_mib_s=1000.0),
            run("ours", "seqread-warm", bw_mib_s=900.0), run("ganesha", "seqread-warm", bw_mib_s=1000.0),
            run("local", "seqread-warm", bw_mib_s=1600.0),
            run("ours", "randread", iops=700.0), run("ganesha", "randread", iops=1000.0),
            run("ours", "metadata", meta_ops_s=100.0, ls_s=1.5),
            run("ganesha", "metadata", meta_ops_s=100.0, ls_s=0.2)]
    results = by_text(evaluate(summarize(runs), rss_peak_mib=120.0))
    assert len(results) == len(TARGETS)
    assert results["sequential write >= 1.0x Ganesha"]["met"] is True
    assert results["sequential read (warm) >= 1.0x Ganesha"]["met"] is False
    local = results["sequential read (warm) >= 50 % of the local page-cache read"]
    assert local["value"] == 900.0 / 1600.0 and local["met"] is True
    assert results["4 KiB random read, iodepth 16 >= 0.6x Ganesha"]["met"] is True
    assert results["metadata (create, stat, remove) >= 1.0x Ganesha"]["met"] is True
    assert results["ls -l of the big directory < 1 s (ours)"]["met"] is False
    assert results["RSS per server process <= 200 MiB (ours, psutil peak)"]["met"] is True
    # nothing measured for these: not met, not missed
    assert results["4 KiB random write, iodepth 16 >= 0.6x Ganesha"]["met"] is None
    assert results["sequential read (cold) >= 1.0x Ganesha"]["value"] is None


def test_rss_over_the_limit_and_unknown():
    assert by_text(evaluate([], 250.0))[TARGETS[-1].text]["met"] is False
    assert by_text(evaluate([], None))[TARGETS[-1].text]["met"] is None
