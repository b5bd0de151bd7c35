"""Job selection: order, the implied write, and unknown names."""
import pytest

from benchmarks.jobs import ALL_JOBS, METADATA, SEQ_WRITE, select_jobs


def test_all_by_default_in_canonical_order():
    assert select_jobs(None) == list(ALL_JOBS)
    assert select_jobs("") == list(ALL_JOBS)


def test_a_read_brings_the_write_that_creates_its_file_first():
    names = [job.name for job in select_jobs("randread")]
    assert names == ["seqwrite", "randread"]


def test_metadata_alone_needs_no_file():
    assert select_jobs("metadata") == [METADATA]


def test_order_follows_the_canonical_list_not_the_argument():
    names = [job.name for job in select_jobs("metadata, seqwrite")]
    assert names == ["seqwrite", "metadata"]


def test_unknown_and_empty_names_fail():
    with pytest.raises(ValueError, match="unknown job"):
        select_jobs("seqwrite,bogus")
    with pytest.raises(ValueError, match="no job"):
        select_jobs(" , ")


def test_quick_sizes_are_smaller():
    assert SEQ_WRITE.sized(True)[0] < SEQ_WRITE.sized(False)[0]
    assert METADATA.counts(True) == (300, 1000)
    assert METADATA.counts(False) == (10_000, 50_000)
