"""Clients see and act on their own jobs only; admins on everyone's; node tokens run tasks only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import node_service_pb2 as ns
from jobq.v1 import node_service_pb2_grpc as ns_grpc
from jobq.v1 import types_pb2 as pb

from tests.integration.api.test_api_submit import three_task_spec
from tests.integration.dispatch.test_farm import sh
from tests.integration.security.conftest import Secured
from tests.support.procs import NodeProc, eventually, open_channel

NOT_FOUND = grpc.StatusCode.NOT_FOUND


def jobs_as(s: Secured, who: str) -> js_grpc.JobServiceStub:
    return js_grpc.JobServiceStub(open_channel(s.jobqd.address, token=s.tokens[who]))


def code_of(fn: Callable[[], object]) -> grpc.StatusCode:
    try:
        fn()
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def watched_job_ids(stub: js_grpc.JobServiceStub) -> set[str]:
    seen: set[str] = set()
    stream = stub.WatchEvents(js.WatchEventsRequest(after_sequence=0), timeout=1.5)
    with pytest.raises(grpc.RpcError) as err:  # the stream goes on until its deadline
        seen.update(r.event.job_id for r in stream)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    return seen


def test_a_client_cannot_see_or_touch_another_clients_job(secured_shared: Secured) -> None:
    alice, bob, root = (jobs_as(secured_shared, n) for n in ("alice", "bob", "root"))
    a = alice.SubmitJob(js.SubmitJobRequest(spec=three_task_spec("alices"), request_id="alice-1")).job
    b = bob.SubmitJob(js.SubmitJobRequest(spec=three_task_spec("bobs"))).job
    assert (a.owner, b.owner) == ("alice", "bob")  # the owner is the token's name

    # bob: alice's job does not exist for him, whatever he tries
    task = f"{a.id}.0"
    for attempt in (
        lambda: bob.GetJob(js.GetJobRequest(job_id=a.id)),
        lambda: bob.ListTasks(js.ListTasksRequest(job_id=a.id)),
        lambda: bob.GetTask(js.GetTaskRequest(task_id=task)),
        lambda: bob.CancelJobs(js.JobActionRequest(job_ids=[a.id])),
        lambda: bob.RequeueJobs(js.JobActionRequest(job_ids=[a.id])),
        lambda: bob.PauseJobs(js.JobActionRequest(job_ids=[a.id, b.id])),
        lambda: bob.SetJobPriority(js.SetJobPriorityRequest(job_id=a.id, priority=5)),
        lambda: bob.DeleteJob(js.DeleteJobRequest(job_id=a.id)),
        lambda: bob.CancelTasks(js.TaskActionRequest(task_ids=[task])),
        lambda: bob.RequeueTasks(js.TaskActionRequest(task_ids=[task])),
        lambda: list(bob.TailTaskLog(js.TailTaskLogRequest(task_id=task), timeout=5)),
    ):
        assert code_of(attempt) == NOT_FOUND
    listed = {j.id for j in bob.ListJobs(js.ListJobsRequest()).jobs}
    assert b.id in listed and a.id not in listed
    err = code_of(lambda: bob.ListJobs(js.ListJobsRequest(filter=pb.JobFilter(owner="alice"))))
    assert err == grpc.StatusCode.PERMISSION_DENIED
    # an action by filter only ever reaches his own jobs
    r = bob.CancelJobs(js.JobActionRequest(filter=pb.JobFilter(statuses=[pb.JOB_STATUS_QUEUED])))
    assert [j.id for j in r.jobs] == [b.id]
    assert alice.GetJob(js.GetJobRequest(job_id=a.id)).job.status == pb.JOB_STATUS_QUEUED
    # a request id of alice's neither returns her job nor names it
    with pytest.raises(grpc.RpcError) as reuse:
        bob.SubmitJob(js.SubmitJobRequest(spec=three_task_spec("alices"), request_id="alice-1"))
    assert reuse.value.code() == grpc.StatusCode.ALREADY_EXISTS and a.id not in (reuse.value.details() or "")
    # nor can he make a job of his wait for hers (that would tell him how hers ended)
    with pytest.raises(grpc.RpcError) as dep:
        bob.SubmitJob(
            js.SubmitJobRequest(
                spec=three_task_spec(
                    "w",
                    depends_on=[pb.JobDependency(job_id=a.id, condition=pb.DEPENDENCY_CONDITION_AFTERANY)],
                )
            )
        )
    assert dep.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not exist" in (
        dep.value.details() or ""
    )
    # alice's retry still returns her job
    again = alice.SubmitJob(js.SubmitJobRequest(spec=three_task_spec("alices"), request_id="alice-1"))
    assert again.job.id == a.id and not again.created
    # events: each sees only their own jobs' events
    assert watched_job_ids(bob) == {b.id}
    assert watched_job_ids(alice) == {a.id}

    # the admin sees and acts on both
    everyone = {j.id for j in root.ListJobs(js.ListJobsRequest()).jobs}
    assert {a.id, b.id} <= everyone
    assert {j.id for j in root.ListJobs(js.ListJobsRequest(filter=pb.JobFilter(owner="alice"))).jobs} == {
        a.id
    }
    assert root.CancelJobs(js.JobActionRequest(job_ids=[a.id])).jobs[0].status == pb.JOB_STATUS_CANCELED
    assert {a.id, b.id} <= watched_job_ids(root)


def test_a_node_token_cannot_submit_or_read_jobs(secured_shared: Secured) -> None:
    node = jobs_as(secured_shared, "n1")
    for attempt in (
        lambda: node.SubmitJob(js.SubmitJobRequest(spec=three_task_spec())),
        lambda: node.ListJobs(js.ListJobsRequest()),
    ):
        assert code_of(attempt) == grpc.StatusCode.PERMISSION_DENIED


def hello(name: str) -> ns.NodeMessage:
    return ns.NodeMessage(hello=ns.Hello(name=name, capacity={"slots": "1"}, command_types=["exec"]))


def test_a_node_token_connects_only_as_its_own_node(secured_shared: Secured) -> None:
    with open_channel(secured_shared.jobqd.address) as ch:
        connect = ns_grpc.NodeServiceStub(ch).Connect
        md = [("authorization", f"Bearer {secured_shared.tokens['n1']}")]
        with pytest.raises(grpc.RpcError) as err:
            next(iter(connect(iter([hello("n2")]), metadata=md, timeout=5)))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        stream = connect(iter([hello("n1")]), metadata=md, timeout=5)
        assert next(iter(stream)).HasField("welcome")
        stream.cancel()


def test_a_real_node_with_its_token_runs_a_clients_job(
    secured: Secured, tmp_path: Path, node_factory: Callable[..., NodeProc]
) -> None:
    token_file = tmp_path / "n1.token"
    token_file.write_text(secured.tokens["n1"] + "\n")
    node_factory(secured.jobqd.address, "n1", "--token-file", str(token_file))
    alice = jobs_as(secured, "alice")
    job = alice.SubmitJob(
        js.SubmitJobRequest(spec=pb.JobSpec(name="hi", tasks=[pb.TaskSpec(commands=[sh("echo hi")])]))
    ).job
    done = eventually(
        lambda: (
            (j := alice.GetJob(js.GetJobRequest(job_id=job.id)).job).status == pb.JOB_STATUS_COMPLETED and j
        ),
        what="alice's job to complete on the node",
    )
    assert done.owner == "alice"
    lines = [
        ln
        for r in alice.TailTaskLog(js.TailTaskLogRequest(task_id=f"{job.id}.0"), timeout=5)
        for ln in r.lines
    ]
    assert "hi" in lines
