"""Embedded admission over the API: quotas, preemption with reasons, hold/release, drain."""

from __future__ import annotations

import grpc
import pytest
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import queue_service_pb2 as qs
from jobq.v1 import types_pb2 as pb

from tests.integration.api.test_api_submit import three_task_spec
from tests.support.procs import Jobqd


def two_cpu_job(d: Jobqd, name: str, priority: int = 0) -> pb.Job:
    spec = three_task_spec(name=name, queue="q4", resources={"cpu": "2"}, parallelism=1, priority=priority)
    return d.jobs.SubmitJob(js.SubmitJobRequest(spec=spec)).job


def get(d: Jobqd, job_id: str) -> pb.Job:
    return d.jobs.GetJob(js.GetJobRequest(job_id=job_id)).job


@pytest.fixture
def q4(jobqd: Jobqd) -> Jobqd:
    jobqd.queues.CreateQueue(
        qs.CreateQueueRequest(
            queue=pb.Queue(name="q4", quotas={"cpu": "4"}, preemption=pb.PREEMPTION_POLICY_LOWER_PRIORITY)
        )
    )
    return jobqd


def test_quota_admits_two_and_the_third_waits_with_reason(q4: Jobqd) -> None:
    a, b, c = (two_cpu_job(q4, n) for n in "abc")
    assert get(q4, a.id).admission == pb.ADMISSION_PHASE_ADMITTED
    assert get(q4, b.id).admission == pb.ADMISSION_PHASE_ADMITTED
    third = get(q4, c.id)
    assert third.admission == pb.ADMISSION_PHASE_SUBMITTED
    assert "insufficient unused quota for cpu, 2 more needed" in third.status_reason
    queue = q4.queues.GetQueue(qs.GetQueueRequest(name="q4")).queue
    assert queue.status.admitted_jobs == 2 and queue.status.pending_jobs == 1
    assert queue.status.usage["cpu"] == "4"
    # finishing one admits the waiting one
    q4.jobs.CancelJobs(js.JobActionRequest(job_ids=[a.id]))
    assert get(q4, c.id).admission == pb.ADMISSION_PHASE_ADMITTED


def test_higher_priority_preempts_the_newest_lower_one(q4: Jobqd) -> None:
    low1 = two_cpu_job(q4, "low1")
    low2 = two_cpu_job(q4, "low2")
    high = two_cpu_job(q4, "high", priority=100)
    assert get(q4, high.id).admission == pb.ADMISSION_PHASE_ADMITTED
    assert get(q4, low1.id).admission == pb.ADMISSION_PHASE_ADMITTED
    victim = get(q4, low2.id)
    assert victim.admission == pb.ADMISSION_PHASE_SUBMITTED
    assert victim.status == pb.JOB_STATUS_QUEUED
    assert victim.status_reason == f"preempted by job {high.id} in queue q4"


def test_hold_makes_new_jobs_wait_and_release_admits_them(q4: Jobqd) -> None:
    q4.queues.HoldQueue(qs.HoldQueueRequest(name="q4"))
    j = two_cpu_job(q4, "held")
    held = get(q4, j.id)
    assert held.admission == pb.ADMISSION_PHASE_INADMISSIBLE
    assert "queue q4 is held" in held.status_reason
    q4.queues.ReleaseQueue(qs.ReleaseQueueRequest(name="q4"))
    assert get(q4, j.id).admission == pb.ADMISSION_PHASE_ADMITTED


def test_drain_evicts_admitted_jobs(q4: Jobqd) -> None:
    j = two_cpu_job(q4, "running")
    assert get(q4, j.id).admission == pb.ADMISSION_PHASE_ADMITTED
    q4.queues.HoldQueue(qs.HoldQueueRequest(name="q4", drain=True))
    evicted = get(q4, j.id)
    assert evicted.admission in (pb.ADMISSION_PHASE_SUBMITTED, pb.ADMISSION_PHASE_INADMISSIBLE)
    assert "draining" in evicted.status_reason


def usage(d: Jobqd) -> dict[str, str]:
    return dict(d.queues.GetQueue(qs.GetQueueRequest(name="q4")).queue.status.usage)


def test_usage_follows_every_admission_change(q4: Jobqd) -> None:
    """The queue's usage is kept as jobs are admitted, preempted, finished and drained (not summed
    over the admitted jobs at each read): it must match the admitted jobs at every step."""
    assert usage(q4) == {}
    low1, low2 = two_cpu_job(q4, "low1"), two_cpu_job(q4, "low2")
    assert usage(q4) == {"cpu": "4"}
    high = two_cpu_job(q4, "high", priority=100)  # preempts low2: still 4
    assert get(q4, low2.id).admission == pb.ADMISSION_PHASE_SUBMITTED
    assert usage(q4) == {"cpu": "4"}
    q4.jobs.CancelJobs(js.JobActionRequest(job_ids=[high.id]))  # low2 takes its place
    assert get(q4, low2.id).admission == pb.ADMISSION_PHASE_ADMITTED
    assert usage(q4) == {"cpu": "4"}
    q4.jobs.CancelJobs(js.JobActionRequest(job_ids=[low1.id]))
    assert usage(q4) == {"cpu": "2"}
    q4.queues.HoldQueue(qs.HoldQueueRequest(name="q4", drain=True))
    assert usage(q4) == {}
    q4.queues.ReleaseQueue(qs.ReleaseQueueRequest(name="q4"))
    assert usage(q4) == {"cpu": "2"}
    q4.kill()  # rebuilt from the store: usage too
    q4.start()
    assert usage(q4) == {"cpu": "2"}


def test_queue_crud_errors(jobqd: Jobqd) -> None:
    with pytest.raises(grpc.RpcError) as err:
        jobqd.queues.CreateQueue(qs.CreateQueueRequest(queue=pb.Queue(name="Bad_Name")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        jobqd.queues.CreateQueue(qs.CreateQueueRequest(queue=pb.Queue(name="q", quotas={"cpu": "many"})))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "quotas" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        jobqd.queues.DeleteQueue(qs.DeleteQueueRequest(name="default"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        jobqd.queues.GetQueue(qs.GetQueueRequest(name="missing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    jobqd.queues.CreateQueue(qs.CreateQueueRequest(queue=pb.Queue(name="tmp")))
    with pytest.raises(grpc.RpcError) as err:
        jobqd.queues.CreateQueue(qs.CreateQueueRequest(queue=pb.Queue(name="tmp")))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    jobqd.queues.DeleteQueue(qs.DeleteQueueRequest(name="tmp"))
    assert [q.name for q in jobqd.queues.ListQueues(qs.ListQueuesRequest()).queues] == ["default"]
