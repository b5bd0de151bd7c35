"""The stage pool: runs work off the event threads, bounded, never killed by a bad item."""
import threading
import time

import pytest

from rpcsvc.stage import StagePool


def test_work_runs_on_stage_threads_and_a_failing_item_does_not_kill_them():
    pool = StagePool(threads=2, queue_size=8, name="t")
    done, names = threading.Event(), []
    pool.submit(lambda: 1 / 0)
    pool.submit(lambda: (names.append(threading.current_thread().name), done.set()))
    assert done.wait(5)
    assert names[0].startswith("t-stage")
    assert pool.stop()


def test_a_full_queue_holds_the_submitter_back_until_room_is_made():
    pool = StagePool(threads=1, queue_size=2, name="t")
    gate = threading.Event()
    pool.submit(gate.wait)            # the only worker is busy
    pool.submit(lambda: None)
    pool.submit(lambda: None)         # the queue now holds its bound
    submitted = threading.Event()
    threading.Thread(target=lambda: (pool.submit(lambda: None), submitted.set()),
                     daemon=True).start()
    assert not submitted.wait(0.3)    # back-pressure: the submitter waits
    gate.set()
    assert submitted.wait(5)
    assert pool.stop()


def test_stop_finishes_queued_work_then_refuses_more():
    pool = StagePool(threads=1, queue_size=16, name="t")
    ran = []
    for n in range(10):
        pool.submit(lambda n=n: (time.sleep(0.001), ran.append(n)))
    assert pool.stop()
    assert ran == list(range(10))
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        StagePool(threads=0)
    with pytest.raises(ValueError):
        StagePool(threads=1, queue_size=0)


def test_a_program_refuses_inline_procedures_it_does_not_define():
    from rpcsvc import xdr
    from rpcsvc.program import Program
    spec = xdr.load("nfs3").programs["NFS_PROGRAM"]
    assert Program(spec, 3, {0: lambda req: None}, inline=[0, 1]).inline == {0, 1}
    with pytest.raises(ValueError, match="inline"):
        Program(spec, 3, {0: lambda req: None}, inline=[99])


def test_a_program_refuses_inline_if_for_undefined_or_always_inline_procedures():
    from rpcsvc import xdr
    from rpcsvc.program import Program
    spec = xdr.load("nfs3").programs["NFS_PROGRAM"]
    def always(record, offset):
        return True
    assert Program(spec, 3, {0: lambda req: None}, inline_if={7: always}).inline_if == {7: always}
    with pytest.raises(ValueError, match="inline_if"):
        Program(spec, 3, {0: lambda req: None}, inline_if={99: always})
    with pytest.raises(ValueError, match="inline_if"):
        Program(spec, 3, {0: lambda req: None}, inline=[7], inline_if={7: always})


def _wait_idle(pool, count):
    deadline = time.monotonic() + 5
    while len(pool._idle) < count and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(pool._idle) == count


def test_an_idle_pool_wakes_the_worker_that_went_idle_last():
    # One call at a time (libnfs, ls) must wake one thread, the warm one,
    # not have every idle worker race for the GIL.
    pool = StagePool(threads=3, queue_size=8, name="t")
    _wait_idle(pool, 3)
    ran = []
    for _ in range(5):
        done = threading.Event()
        pool.submit(lambda: (ran.append(threading.current_thread().name), done.set()))
        assert done.wait(5)
        _wait_idle(pool, 3)
    assert len(set(ran)) == 1
    assert pool.stop()


def test_work_that_blocks_spreads_over_every_worker():
    pool = StagePool(threads=3, queue_size=8, name="t")
    gate, started, names = threading.Event(), threading.Semaphore(0), set()

    def block():
        names.add(threading.current_thread().name)
        started.release()
        gate.wait(5)
    for _ in range(3):
        pool.submit(block)
    for _ in range(3):
        assert started.acquire(timeout=5)
    assert len(names) == 3
    gate.set()
    assert pool.stop()
