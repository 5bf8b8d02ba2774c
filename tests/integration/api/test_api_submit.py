"""Submitting jobs over real gRPC: single, batch, arrays, drafts, idempotency, task counts."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import types_pb2 as pb

from tests.support.procs import Jobqd


def exec_cmd(*argv: str) -> pb.Command:
    params = struct_pb2.Struct()
    params.update({"argv": list(argv)})
    return pb.Command(type="exec", params=params)


def three_task_spec(name: str = "three", **kw: object) -> pb.JobSpec:
    return pb.JobSpec(
        name=name,
        tasks=[pb.TaskSpec(name=f"t{i}", commands=[exec_cmd("echo", str(i))]) for i in range(3)],
        **kw,  # type: ignore[arg-type]
    )


def array_spec(n: int, name: str = "arr") -> pb.JobSpec:
    return pb.JobSpec(
        name=name,
        array=pb.ArraySpec(template=pb.TaskSpec(commands=[exec_cmd("echo", "{index}")]), start=1, end=n),
    )


def test_submit_three_tasks_and_array_are_listed_with_counts(jobqd: Jobqd) -> None:
    a = jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec())).job
    b = jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=array_spec(10_000))).job
    assert a.total_tasks == 3 and b.total_tasks == 10_000
    listed = {j.id: j for j in jobqd.jobs.ListJobs(js.ListJobsRequest()).jobs}
    assert listed[a.id].task_counts.queued == 3
    assert listed[b.id].task_counts.queued == 10_000
    for j in listed.values():
        assert j.status == pb.JOB_STATUS_QUEUED
        assert j.admission == pb.ADMISSION_PHASE_ADMITTED  # default queue: unlimited
    tasks = jobqd.jobs.ListTasks(js.ListTasksRequest(job_id=b.id, page_size=5)).tasks
    assert [t.index for t in tasks] == [1, 2, 3, 4, 5]
    assert tasks[2].id == f"{b.id}.3"
    assert tasks[2].commands[0].params["argv"][1] == "3"  # {index} expanded server-side


def test_request_id_retry_returns_the_same_job(jobqd: Jobqd) -> None:
    req = js.SubmitJobRequest(request_id="abc-1", spec=three_task_spec())
    first = jobqd.jobs.SubmitJob(req)
    again = jobqd.jobs.SubmitJob(req)
    assert first.created and not again.created
    assert again.job.id == first.job.id
    assert len(jobqd.jobs.ListJobs(js.ListJobsRequest()).jobs) == 1
    other = js.SubmitJobRequest(request_id="abc-1", spec=three_task_spec(name="different"))
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.SubmitJob(other)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "abc-1" in err.value.details()


def test_batch_submit_is_all_or_nothing(jobqd: Jobqd) -> None:
    good = js.SubmitJobRequest(spec=three_task_spec())
    bad = js.SubmitJobRequest(
        spec=pb.JobSpec(name="bad", parallelism=-1, tasks=[pb.TaskSpec(commands=[exec_cmd("x")])])
    )
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.SubmitJobs(js.SubmitJobsRequest(jobs=[good, bad]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "jobs[1].spec.parallelism" in err.value.details()
    assert not jobqd.jobs.ListJobs(js.ListJobsRequest()).jobs
    ok = jobqd.jobs.SubmitJobs(js.SubmitJobsRequest(jobs=[good, good]))
    assert len({r.job.id for r in ok.results}) == 2


def test_draft_built_in_chunks_then_committed(jobqd: Jobqd) -> None:
    draft = jobqd.jobs.CreateJob(js.CreateJobRequest(spec=pb.JobSpec(name="big"))).job
    assert draft.status == pb.JOB_STATUS_UNDER_CONSTRUCTION
    chunk = [pb.TaskSpec(commands=[exec_cmd("true")]) for _ in range(1000)]
    for k in range(3):
        r = jobqd.jobs.AddTasks(js.AddTasksRequest(job_id=draft.id, offset=k * 1000, tasks=chunk))
        assert r.total_tasks == (k + 1) * 1000
    # a retried chunk is accepted without change; a gap is refused
    assert (
        jobqd.jobs.AddTasks(js.AddTasksRequest(job_id=draft.id, offset=1000, tasks=chunk)).total_tasks == 3000
    )
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.AddTasks(js.AddTasksRequest(job_id=draft.id, offset=5000, tasks=chunk))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    job = jobqd.jobs.CommitJob(js.CommitJobRequest(job_id=draft.id)).job
    assert job.status == pb.JOB_STATUS_QUEUED and job.total_tasks == 3000
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.AddTasks(js.AddTasksRequest(job_id=draft.id, offset=3000, tasks=chunk))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "queued" in err.value.details()


def test_list_pagination_and_filters(jobqd: Jobqd) -> None:
    ids = [
        jobqd.jobs.SubmitJob(
            js.SubmitJobRequest(spec=three_task_spec(name=f"job-{i}", labels={"team": "a" if i % 2 else "b"}))
        ).job.id
        for i in range(7)
    ]
    seen: list[str] = []
    token = ""
    while True:
        page = jobqd.jobs.ListJobs(js.ListJobsRequest(page_size=3, page_token=token))
        seen += [j.id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    team_a = jobqd.jobs.ListJobs(js.ListJobsRequest(filter=pb.JobFilter(labels={"team": "a"}))).jobs
    assert [j.id for j in team_a] == ids[1::2]
    prefixed = jobqd.jobs.ListJobs(js.ListJobsRequest(filter=pb.JobFilter(name_prefix="job-6"))).jobs
    assert [j.id for j in prefixed] == [ids[6]]
