"""A disk that fills up under jobqd: writes fail with UNAVAILABLE and one clear log line, reads keep
working and show only what was stored, and after a restart nothing half-written is in the store.

"Disk full" is real, not simulated in jobqd: the test lowers the running daemon's RLIMIT_FSIZE to
the size its WAL has now (prlimit on its pid), so the next commit that must grow the WAL fails
inside SQLite with a write error, exactly where ENOSPC would hit. Python ignores SIGXFSZ, so the
write just fails. (A read-only data directory fails the same commit the same way; as root, the test
cannot make a directory read-only for itself.)
"""

from __future__ import annotations

import json
import resource

import grpc
import pytest
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import types_pb2 as pb

from tests.integration.api.test_api_submit import three_task_spec
from tests.integration.ops.test_backup_restore import all_job_ids
from tests.support.invariants import assert_store_consistent
from tests.support.procs import Jobqd, eventually


def padded(name: str) -> pb.JobSpec:
    return three_task_spec(name, labels={f"pad{i}": "x" * 60 for i in range(40)})


def test_a_full_disk_makes_jobqd_read_only_without_partial_state(jobqd: Jobqd) -> None:
    stored = [jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=padded(f"ok{i}"))).job.id for i in range(5)]
    wal = jobqd.data_dir / "jobq.db-wal"
    assert jobqd.proc is not None
    limit = wal.stat().st_size
    assert jobqd.log_path.stat().st_size < limit  # the log must still fit, to say what happened
    resource.prlimit(jobqd.proc.pid, resource.RLIMIT_FSIZE, (limit, limit))

    failed: grpc.RpcError | None = None
    for i in range(200):
        try:
            stored.append(jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=padded(f"late{i}"))).job.id)
        except grpc.RpcError as err:
            failed = err
            break
    assert failed is not None, "the WAL never hit the limit"
    assert failed.code() == grpc.StatusCode.UNAVAILABLE
    assert "could not write" in (failed.details() or "")

    # one clear line in the log
    def errors() -> list[dict[str, object]]:
        lines = [json.loads(x) for x in jobqd.log_path.read_text().splitlines() if x.startswith("{")]
        return [x for x in lines if x["level"] == "error"]

    [line] = eventually(errors, timeout=5, what="the error line")
    assert "read-only until restarted" in str(line["event"]) and "fix" in line

    # from now on every change is refused up front, reads work and show only what was stored
    with pytest.raises(grpc.RpcError) as again:
        jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec("refused")))
    assert again.value.code() == grpc.StatusCode.UNAVAILABLE and "restarted" in (again.value.details() or "")
    with pytest.raises(grpc.RpcError) as cancel:
        jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=[stored[0]]))
    assert cancel.value.code() == grpc.StatusCode.UNAVAILABLE
    assert jobqd.jobs.GetJob(js.GetJobRequest(job_id=stored[0])).job.status == pb.JOB_STATUS_QUEUED
    eventually(lambda: all_job_ids(jobqd) == set(stored), timeout=5, what="reads to show the stored state")

    # restart (with room on the disk again): exactly the acknowledged jobs, consistent
    jobqd.stop()
    jobqd.start()
    assert all_job_ids(jobqd) == set(stored)
    jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec("after")))
    assert jobqd.stop() == 0
    counts = assert_store_consistent(jobqd.data_dir)
    assert counts["jobs"] == len(stored) + 1
    print(f"acknowledged={len(stored)} refused after the disk filled; store consistent: {counts}")
