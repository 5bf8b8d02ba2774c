"""jobqd runs on uvloop by default and on the standard asyncio loop when asked: the same job runs on
a real node, and the daemon stops cleanly, on both."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import types_pb2 as pb

from tests.support.commands import sh
from tests.support.procs import Jobqd, NodeProc, eventually


@pytest.mark.parametrize(("args", "loop"), [((), "uvloop"), (("--event-loop", "asyncio"), "asyncio")])
def test_a_job_runs_and_jobqd_stops_cleanly_on_either_loop(
    jobqd_factory: Callable[..., Jobqd],
    node_factory: Callable[..., NodeProc],
    args: tuple[str, ...],
    loop: str,
) -> None:
    d = jobqd_factory(*args)
    [ready] = d.log_records("jobqd ready")
    assert ready["event_loop"] == loop
    node_factory(d.address, "n1")
    spec = pb.JobSpec(name="x", tasks=[pb.TaskSpec(commands=[sh("echo hi")])])
    job = d.jobs.SubmitJob(js.SubmitJobRequest(spec=spec)).job
    eventually(
        lambda: d.jobs.GetJob(js.GetJobRequest(job_id=job.id)).job.status == pb.JOB_STATUS_COMPLETED,
        what="the job completed",
    )
    assert d.stop() == 0


def test_an_unknown_loop_is_refused(jobqd_factory: Callable[..., Jobqd]) -> None:
    with pytest.raises(RuntimeError, match="exited with 2") as err:
        jobqd_factory("--event-loop", "trio")
    assert "'trio' is not one of 'uvloop', 'asyncio'" in str(err.value)
