"""fio command lines and fio JSON -> figures, including the outputs that must be refused."""
import json

import pytest

from benchmarks.fio import (FioError, direction_of, extract_json, fio_argv, parse_fio_output,
                            timeout_for)
from benchmarks.jobs import RAND_READ, SEQ_READ_WARM, SEQ_WRITE

MIB = 1 << 20


def fio_doc(direction="write", io_bytes=64 * MIB, bw_bytes=500 * MIB, iops=500.0, error=0,
            runtime=128, jobs=1):
    section = {"io_bytes": io_bytes, "bw_bytes": bw_bytes, "iops": iops, "runtime": runtime,
               "clat_ns": {"mean": 2_000_000.0,
                           "percentile": {"50.000000": 1_900_000, "99.000000": 4_000_000}}}
    empty = {"io_bytes": 0, "bw_bytes": 0, "iops": 0.0, "runtime": 0, "clat_ns": {"mean": 0.0}}
    job = {"jobname": "j", "error": error, "read": empty, "write": empty}
    job[direction] = section
    return json.dumps({"fio version": "fio-3.33", "jobs": [job] * jobs}, indent=2)


def test_nfs_argv_has_engine_url_and_depth():
    argv = fio_argv("/x/fio", SEQ_WRITE, quick=False, nfs_url="nfs://127.0.0.1/export/?a=1")
    assert argv[0] == "/x/fio"
    assert "--ioengine=nfs" in argv and "--nfs_url=nfs://127.0.0.1/export/?a=1" in argv
    assert "--iodepth=16" in argv and f"--size={1 << 30}" in argv and "--bs=1M" in argv
    assert not any(a.startswith("--runtime") for a in argv)
    assert not any(a.startswith("--invalidate") for a in argv)
    assert "--filename=bench.dat" in argv     # relative to the export's root


def test_psync_argv_uses_directory_and_depth_one():
    argv = fio_argv("fio", RAND_READ, quick=True, directory="/var/tmp/d")
    # absolute: fio ignores a --directory given after --filename (the file landed in cwd)
    assert "--ioengine=psync" in argv and "--filename=/var/tmp/d/bench.dat" in argv
    assert not any(a.startswith("--directory") for a in argv)
    assert "--iodepth=1" in argv and "--time_based" in argv and "--runtime=3" in argv
    assert "--invalidate=0" in argv          # keep the page cache warm, as the NFS engine does


def test_argv_needs_exactly_one_target():
    with pytest.raises(ValueError):
        fio_argv("fio", SEQ_WRITE, quick=True)
    with pytest.raises(ValueError):
        fio_argv("fio", SEQ_WRITE, quick=True, nfs_url="nfs://h/e/", directory="/d")


def test_timeouts_bound_every_job():
    assert timeout_for(RAND_READ, quick=False) == 30 + 120
    assert timeout_for(SEQ_WRITE, quick=True) == 300


def test_parse_sized_write():
    figures = parse_fio_output(fio_doc(), SEQ_WRITE, quick=True)
    assert figures.direction == "write" and figures.io_bytes == 64 * MIB
    assert figures.bw_mib_s == pytest.approx(500.0)
    assert figures.clat_mean_us == pytest.approx(2000.0)
    assert figures.clat_p50_us == pytest.approx(1900.0)
    assert figures.clat_p99_us == pytest.approx(4000.0)


def test_parse_skips_notes_before_json():
    text = "fio: note: something\n" + fio_doc("read")
    assert parse_fio_output(text, SEQ_READ_WARM, quick=True).direction == "read"


def test_failed_mount_moves_no_data_and_is_refused():
    # fio's NFS engine exits 0 with error 0 when the mount fails; io_bytes is 0
    with pytest.raises(FioError, match="moved no data"):
        parse_fio_output(fio_doc(io_bytes=0, bw_bytes=0), SEQ_WRITE, quick=True,
                         stderr="nfs: Failed to mount")


def test_short_sized_job_is_refused():
    # unpatched fio lost (iodepth - 1) blocks at the end of a sized job
    with pytest.raises(FioError, match="moved"):
        parse_fio_output(fio_doc(io_bytes=49 * MIB), SEQ_WRITE, quick=True)


def test_time_based_job_accepts_any_positive_amount():
    figures = parse_fio_output(fio_doc("read", io_bytes=12345 * 4096, iops=4100.0),
                               RAND_READ, quick=True)
    assert figures.iops == 4100.0


def test_job_error_is_refused():
    with pytest.raises(FioError, match="error 5"):
        parse_fio_output(fio_doc(error=5), SEQ_WRITE, quick=True)


def test_more_than_one_job_is_refused():
    with pytest.raises(FioError, match="one job"):
        parse_fio_output(fio_doc(jobs=2), SEQ_WRITE, quick=True)


def test_missing_fields_are_named():
    doc = json.loads(fio_doc())
    del doc["jobs"][0]["write"]["bw_bytes"]
    with pytest.raises(FioError, match="bw_bytes"):
        parse_fio_output(json.dumps(doc), SEQ_WRITE, quick=True)


def test_no_json_and_broken_json():
    with pytest.raises(FioError, match="no JSON"):
        extract_json("fio: engine nfs not loadable\n")
    with pytest.raises(FioError, match="does not parse"):
        extract_json('{"jobs": [\n')


def test_direction_of_mixed_job_is_refused():
    assert direction_of("randread") == "read"
    with pytest.raises(ValueError):
        direction_of("randrw")
