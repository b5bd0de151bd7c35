"""cProfile in every thread: a function run only in a worker thread shows in the merge."""
import pstats
import threading

from benchmarks.cprofile_server import ThreadProfilers, write_report


def only_in_a_thread():
    return sum(range(1000))


def test_thread_work_is_in_the_merged_profile(tmp_path):
    profilers = ThreadProfilers()
    profilers.install()
    try:
        worker = threading.Thread(target=only_in_a_thread)
        worker.start()
        worker.join(timeout=10)
    finally:
        stats = profilers.merged()
    names = {func[2] for func in stats.stats}
    assert "only_in_a_thread" in names
    out = tmp_path / "p.prof"
    write_report(stats, str(out))
    assert "only_in_a_thread" in (tmp_path / "p.prof.txt").read_text()
    assert pstats.Stats(str(out)).total_calls > 0
    assert threading.getprofile() is None


def test_usage_error_without_separator():
    from benchmarks.cprofile_server import main
    assert main(["out.prof", "-N"]) == 2
