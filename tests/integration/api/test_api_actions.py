"""Cancel, requeue, pause, resume, priority and delete per the state tables, by id and by filter."""

from __future__ import annotations

import grpc
import pytest
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import types_pb2 as pb

from tests.integration.api.test_api_submit import array_spec, three_task_spec
from tests.support.procs import Jobqd


def submit(d: Jobqd, spec: pb.JobSpec | None = None) -> pb.Job:
    return d.jobs.SubmitJob(js.SubmitJobRequest(spec=spec or three_task_spec())).job


def test_requeue_of_a_queued_job_is_refused_naming_its_status(jobqd: Jobqd) -> None:
    j = submit(jobqd)
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.RequeueJobs(js.JobActionRequest(job_ids=[j.id]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "queued" in err.value.details()
    assert "completed, failed, canceled" in err.value.details()


def test_cancel_then_requeue_then_cancel_again(jobqd: Jobqd) -> None:
    j = submit(jobqd, array_spec(1000))
    c = jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=[j.id], reason="not needed")).jobs[0]
    assert c.status == pb.JOB_STATUS_CANCELED
    assert c.admission == pb.ADMISSION_PHASE_FINISHED
    assert c.task_counts.canceled == 1000
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=[j.id]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "canceled" in err.value.details()
    r = jobqd.jobs.RequeueJobs(js.JobActionRequest(job_ids=[j.id])).jobs[0]
    assert r.status == pb.JOB_STATUS_QUEUED
    assert r.task_counts.queued == 1000
    assert r.generation == 2
    assert r.admission == pb.ADMISSION_PHASE_ADMITTED


def test_pause_and_resume_a_queued_job(jobqd: Jobqd) -> None:
    j = submit(jobqd, array_spec(500))
    p = jobqd.jobs.PauseJobs(js.JobActionRequest(job_ids=[j.id])).jobs[0]
    assert p.status == pb.JOB_STATUS_PAUSED
    assert p.task_counts.paused == 500
    assert p.admission == pb.ADMISSION_PHASE_SUBMITTED  # a paused job holds no quota
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.PauseJobs(js.JobActionRequest(job_ids=[j.id]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "paused" in err.value.details()
    r = jobqd.jobs.ResumeJobs(js.JobActionRequest(job_ids=[j.id])).jobs[0]
    assert r.status == pb.JOB_STATUS_QUEUED and r.task_counts.queued == 500
    assert r.admission == pb.ADMISSION_PHASE_ADMITTED
    # resume of a job that is not paused
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.ResumeJobs(js.JobActionRequest(job_ids=[j.id]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_by_ids_is_all_or_nothing_and_by_filter_skips(jobqd: Jobqd) -> None:
    a, b = submit(jobqd), submit(jobqd)
    jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=[a.id]))
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.PauseJobs(js.JobActionRequest(job_ids=[b.id, a.id]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert jobqd.jobs.GetJob(js.GetJobRequest(job_id=b.id)).job.status == pb.JOB_STATUS_QUEUED
    res = jobqd.jobs.PauseJobs(js.JobActionRequest(filter=pb.JobFilter(name_prefix="three")))
    assert [j.id for j in res.jobs] == [b.id] and res.skipped == 1


def test_priority_and_delete(jobqd: Jobqd) -> None:
    j = submit(jobqd)
    assert (
        jobqd.jobs.SetJobPriority(js.SetJobPriorityRequest(job_id=j.id, priority=50)).job.spec.priority == 50
    )
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.DeleteJob(js.DeleteJobRequest(job_id=j.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "queued" in err.value.details()
    jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=[j.id]))
    jobqd.jobs.DeleteJob(js.DeleteJobRequest(job_id=j.id))
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.GetJob(js.GetJobRequest(job_id=j.id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_job_dependencies(jobqd: Jobqd) -> None:
    first = submit(jobqd)
    dep = pb.JobDependency(job_id=first.id, condition=pb.DEPENDENCY_CONDITION_AFTEROK)
    waiting = submit(jobqd, three_task_spec(name="after", depends_on=[dep]))
    assert waiting.status == pb.JOB_STATUS_QUEUED
    assert waiting.admission == pb.ADMISSION_PHASE_SUBMITTED
    assert f"waiting for job {first.id}" in waiting.status_reason
    anyway = submit(
        jobqd,
        three_task_spec(
            name="any",
            depends_on=[pb.JobDependency(job_id=first.id, condition=pb.DEPENDENCY_CONDITION_AFTERANY)],
        ),
    )
    jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=[first.id]))
    failed = jobqd.jobs.GetJob(js.GetJobRequest(job_id=waiting.id)).job
    assert failed.status == pb.JOB_STATUS_FAILED
    assert "can never be satisfied" in failed.status_reason
    started = jobqd.jobs.GetJob(js.GetJobRequest(job_id=anyway.id)).job
    assert started.admission == pb.ADMISSION_PHASE_ADMITTED
