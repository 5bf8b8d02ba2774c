"""Both clients against a real gRPC server with canned replies: what they send, what they return,
and how failures surface."""

from __future__ import annotations

import socket

import grpc
import jobq
import pytest
from jobq import errors
from jobq.sdk.retrying import Backoff
from jobq.spec import echo_command, task_spec
from jobq.v1 import job_service_pb2, node_service_pb2, queue_service_pb2, types_pb2

from tests.unit.sdk.fake_jobqd import Fail, FakeJobqd, Streams

FAST = Backoff(initial=0.01, maximum=0.01)

pytestmark = pytest.mark.timeout(20)


def _job(job_id: str = "01JA", status: int = types_pb2.JOB_STATUS_QUEUED, **kwargs: object) -> types_pb2.Job:
    return types_pb2.Job(id=job_id, status=status, **kwargs)  # type: ignore[arg-type]


def _event(sequence: int) -> job_service_pb2.WatchEventsResponse:
    return job_service_pb2.WatchEventsResponse(event=types_pb2.Event(sequence=sequence, job_id="01JA"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- sync client -----------------------------------------------------------------------------


def test_submit_sends_the_spec_request_id_and_token(jobqd: FakeJobqd) -> None:
    jobqd.replies["SubmitJob"] = job_service_pb2.SubmitJobResponse(job=_job(), created=True)

    with jobq.Client(jobqd.address, token="s3cret") as client:
        response = client.submit_job(
            {"name": "j", "tasks": [{"commands": [{"echo": "hi"}]}]}, request_id="r1"
        )

    assert (response.job.id, response.created) == ("01JA", True)
    sent = jobqd.last("SubmitJob")
    assert (sent.request_id, sent.spec.name, sent.spec.tasks[0].commands[0]) == (
        "r1",
        "j",
        echo_command("hi"),
    )
    assert jobqd.metadata["SubmitJob"][-1]["authorization"] == "Bearer s3cret"


def test_no_token_sends_no_authorization(jobqd: FakeJobqd) -> None:
    jobqd.replies["ListQueues"] = queue_service_pb2.ListQueuesResponse()

    with jobq.Client(jobqd.address) as client:
        client.list_queues()

    assert "authorization" not in jobqd.metadata["ListQueues"][-1]


def test_server_errors_become_jobq_errors_with_the_servers_message(jobqd: FakeJobqd) -> None:
    jobqd.replies["RequeueJobs"] = Fail(
        grpc.StatusCode.FAILED_PRECONDITION, "job 01JA is queued; requeue needs completed, failed or canceled"
    )

    with jobq.Client(jobqd.address) as client, pytest.raises(errors.FailedPrecondition) as caught:
        client.requeue_jobs(["01JA"])

    assert caught.value.message == "job 01JA is queued; requeue needs completed, failed or canceled"
    assert isinstance(caught.value.__cause__, grpc.RpcError)


def test_an_unreachable_server_is_unavailable() -> None:
    with jobq.Client(f"127.0.0.1:{_free_port()}", timeout=5) as client, pytest.raises(errors.Unavailable):
        client.get_job("01JA")


def test_iter_jobs_follows_page_tokens(jobqd: FakeJobqd) -> None:
    jobqd.replies["ListJobs"] = [
        job_service_pb2.ListJobsResponse(jobs=[_job("a"), _job("b")], next_page_token="p2"),
        job_service_pb2.ListJobsResponse(jobs=[_job("c")]),
    ]

    with jobq.Client(jobqd.address) as client:
        ids = [j.id for j in client.iter_jobs(filter=jobq.job_filter(statuses=["failed"]), page_size=2)]

    assert ids == ["a", "b", "c"]
    assert [r.page_token for r in jobqd.requests["ListJobs"]] == ["", "p2"]
    assert list(jobqd.last("ListJobs").filter.statuses) == [types_pb2.JOB_STATUS_FAILED]


def test_submit_large_job_streams_chunks_with_offsets_then_commits(jobqd: FakeJobqd) -> None:
    jobqd.replies["CreateJob"] = job_service_pb2.CreateJobResponse(
        job=_job(status=types_pb2.JOB_STATUS_UNDER_CONSTRUCTION)
    )
    jobqd.replies["AddTasks"] = lambda req: job_service_pb2.AddTasksResponse(
        total_tasks=req.offset + len(req.tasks)
    )
    jobqd.replies["CommitJob"] = job_service_pb2.CommitJobResponse(job=_job(total_tasks=5))
    first = task_spec(echo_command("first"))
    more = ({"commands": [{"echo": str(i)}]} for i in range(4))

    with jobq.Client(jobqd.address) as client:
        job = client.submit_large_job(
            {"name": "big", "tasks": [{"commands": [{"echo": "first"}]}]}, more, chunk_size=2
        )

    assert job.total_tasks == 5
    assert not jobqd.last("CreateJob").spec.tasks
    added = [(r.offset, len(r.tasks)) for r in jobqd.requests["AddTasks"]]
    assert added == [(0, 1), (1, 2), (3, 2)]
    assert jobqd.requests["AddTasks"][0].tasks[0] == first
    assert jobqd.last("CommitJob").job_id == "01JA"


def test_submit_large_job_deletes_the_draft_when_a_chunk_is_refused(jobqd: FakeJobqd) -> None:
    jobqd.replies["CreateJob"] = job_service_pb2.CreateJobResponse(job=_job())
    jobqd.replies["AddTasks"] = Fail(grpc.StatusCode.INVALID_ARGUMENT, "tasks[0].commands: must not be empty")
    jobqd.replies["DeleteJob"] = job_service_pb2.DeleteJobResponse()

    with (
        jobq.Client(jobqd.address) as client,
        pytest.raises(errors.InvalidArgument, match="must not be empty"),
    ):
        client.submit_large_job({"name": "big"}, [{"commands": []}])

    assert jobqd.last("DeleteJob").job_id == "01JA"
    assert "CommitJob" not in jobqd.requests


def test_watch_events_resumes_after_the_last_sequence_seen(jobqd: FakeJobqd) -> None:
    jobqd.replies["WatchEvents"] = Streams(
        [[_event(1), _event(2), Fail(grpc.StatusCode.UNAVAILABLE, "jobqd restarting")], [_event(3)]]
    )
    reconnects: list[tuple[errors.JobqError | None, float]] = []

    with jobq.Client(jobqd.address) as client:
        events = client.watch_events(
            0,
            job_ids=["01JA"],
            reconnect=True,
            backoff=FAST,
            on_reconnect=lambda e, d: reconnects.append((e, d)),
        )
        seen = [next(events).sequence for _ in range(3)]
        events.close()

    assert seen == [1, 2, 3]
    assert [r.after_sequence for r in jobqd.requests["WatchEvents"]][:2] == [0, 2]
    assert list(jobqd.requests["WatchEvents"][1].job_ids) == ["01JA"]
    assert isinstance(reconnects[0][0], errors.Unavailable)


def test_watch_events_without_reconnect_raises_the_cut(jobqd: FakeJobqd) -> None:
    jobqd.replies["WatchEvents"] = [_event(1), Fail(grpc.StatusCode.UNAVAILABLE, "gone")]

    with jobq.Client(jobqd.address) as client:
        events = client.watch_events()
        assert next(events).sequence == 1
        with pytest.raises(errors.Unavailable, match="gone"):
            next(events)

    assert jobqd.last("WatchEvents").after_sequence == -1


def test_watch_events_does_not_retry_a_refusal(jobqd: FakeJobqd) -> None:
    jobqd.replies["WatchEvents"] = [Fail(grpc.StatusCode.PERMISSION_DENIED, "admins only")]

    with jobq.Client(jobqd.address) as client, pytest.raises(errors.PermissionDenied):
        list(client.watch_events(reconnect=True, backoff=FAST))

    assert len(jobqd.requests["WatchEvents"]) == 1


def test_follow_job_polls_until_the_job_is_finished(jobqd: FakeJobqd) -> None:
    jobqd.replies["GetJob"] = [
        job_service_pb2.GetJobResponse(job=_job(status=s))
        for s in (types_pb2.JOB_STATUS_QUEUED, types_pb2.JOB_STATUS_ACTIVE, types_pb2.JOB_STATUS_FAILED)
    ]

    with jobq.Client(jobqd.address) as client:
        seen = [j.status for j in client.follow_job("01JA", poll_interval=0.01)]

    assert seen == [types_pb2.JOB_STATUS_QUEUED, types_pb2.JOB_STATUS_ACTIVE, types_pb2.JOB_STATUS_FAILED]


def test_wait_job_gives_up_after_its_timeout(jobqd: FakeJobqd) -> None:
    jobqd.replies["GetJob"] = job_service_pb2.GetJobResponse(job=_job(status=types_pb2.JOB_STATUS_ACTIVE))

    with (
        jobq.Client(jobqd.address) as client,
        pytest.raises(errors.DeadlineExceeded, match="job 01JA is still active"),
    ):
        client.wait_job("01JA", poll_interval=0.01, timeout=0.05)


def test_messages_above_grpcs_4_mib_default_are_accepted(jobqd: FakeJobqd) -> None:
    jobqd.replies["GetJob"] = job_service_pb2.GetJobResponse(job=_job(status_reason="x" * (5 * 1024 * 1024)))

    with jobq.Client(jobqd.address) as client:
        assert len(client.get_job("01JA", full=True).status_reason) == 5 * 1024 * 1024

    assert jobqd.last("GetJob").view == types_pb2.JOB_VIEW_FULL


def test_tasks_logs_queues_and_nodes_unwrap_their_responses(jobqd: FakeJobqd) -> None:
    jobqd.replies["GetTask"] = job_service_pb2.GetTaskResponse(task=types_pb2.Task(id="01JA.3"))
    jobqd.replies["TailTaskLog"] = [job_service_pb2.TailTaskLogResponse(attempt=2, lines=["a", "b"])]
    jobqd.replies["CancelTasks"] = job_service_pb2.TaskActionResponse(tasks=[types_pb2.Task(id="01JA.3")])
    jobqd.replies["HoldQueue"] = queue_service_pb2.HoldQueueResponse(queue=types_pb2.Queue(name="q"))
    jobqd.replies["DrainNode"] = node_service_pb2.DrainNodeResponse(node=types_pb2.Node(name="n1"))
    jobqd.replies["ClearBlocklist"] = node_service_pb2.ClearBlocklistResponse(cleared=4)

    with jobq.Client(jobqd.address) as client:
        assert client.get_task(jobq.task_id("01JA", 3)).id == "01JA.3"
        assert [c.lines for c in client.tail_task_log("01JA.3", lines=0)] == [["a", "b"]]
        assert [t.id for t in client.cancel_tasks(["01JA.3"], reason="why")] == ["01JA.3"]
        assert client.hold_queue("q", drain=True).name == "q"
        assert client.drain_node("n1", stop=True).name == "n1"
        assert client.clear_blocklist(job_id="01JA") == 4

    assert (jobqd.last("TailTaskLog").lines, jobqd.last("TailTaskLog").follow) == (0, False)
    assert jobqd.last("HoldQueue").drain
    assert jobqd.last("DrainNode").stop
    assert jobqd.last("CancelTasks").reason == "why"


def test_a_bulk_action_needs_ids_or_a_filter_before_anything_is_sent(jobqd: FakeJobqd) -> None:
    with jobq.Client(jobqd.address) as client, pytest.raises(errors.InvalidArgument):
        client.cancel_jobs()

    assert "CancelJobs" not in jobqd.requests


# --- async client ----------------------------------------------------------------------------


async def test_async_client_submits_and_maps_errors(jobqd: FakeJobqd) -> None:
    jobqd.replies["SubmitJob"] = job_service_pb2.SubmitJobResponse(job=_job(), created=False)
    jobqd.replies["SetJobPriority"] = Fail(grpc.StatusCode.NOT_FOUND, "job 01JB not found")

    async with jobq.AsyncClient(jobqd.address, token="t") as client:
        response = await client.submit_job(types_pb2.JobSpec(name="j"), request_id="r")
        with pytest.raises(errors.NotFound, match="job 01JB not found"):
            await client.set_job_priority("01JB", 3)

    assert not response.created
    assert jobqd.metadata["SubmitJob"][-1]["authorization"] == "Bearer t"


async def test_async_iterators_page_and_resume(jobqd: FakeJobqd) -> None:
    jobqd.replies["ListTasks"] = [
        job_service_pb2.ListTasksResponse(tasks=[types_pb2.Task(id="a.0")], next_page_token="n"),
        job_service_pb2.ListTasksResponse(tasks=[types_pb2.Task(id="a.1")]),
    ]
    jobqd.replies["WatchEvents"] = Streams(
        [[_event(5), Fail(grpc.StatusCode.UNAVAILABLE, "cut")], [_event(6)]]
    )

    async with jobq.AsyncClient(jobqd.address) as client:
        tasks = [t.id async for t in client.iter_tasks("a", statuses=["failed"])]
        seen = []
        async for event in client.watch_events(4, reconnect=True, backoff=FAST):
            seen.append(event.sequence)
            if len(seen) == 2:
                break

    assert tasks == ["a.0", "a.1"]
    assert list(jobqd.last("ListTasks").statuses) == [types_pb2.TASK_STATUS_FAILED]
    assert seen == [5, 6]
    assert [r.after_sequence for r in jobqd.requests["WatchEvents"]][:2] == [4, 5]


async def test_async_wait_and_large_submit(jobqd: FakeJobqd) -> None:
    jobqd.replies["GetJob"] = [
        job_service_pb2.GetJobResponse(job=_job(status=types_pb2.JOB_STATUS_ACTIVE)),
        job_service_pb2.GetJobResponse(job=_job(status=types_pb2.JOB_STATUS_COMPLETED)),
    ]
    jobqd.replies["CreateJob"] = job_service_pb2.CreateJobResponse(job=_job())
    jobqd.replies["AddTasks"] = lambda req: job_service_pb2.AddTasksResponse(
        total_tasks=req.offset + len(req.tasks)
    )
    jobqd.replies["CommitJob"] = job_service_pb2.CommitJobResponse(job=_job(total_tasks=3))

    async def tasks():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield task_spec(echo_command(str(i)))

    async with jobq.AsyncClient(jobqd.address) as client:
        finished = await client.wait_job("01JA", poll_interval=0.01)
        committed = await client.submit_large_job({"name": "big"}, tasks(), chunk_size=2)

    assert finished.status == types_pb2.JOB_STATUS_COMPLETED
    assert committed.total_tasks == 3
    assert [r.offset for r in jobqd.requests["AddTasks"]] == [0, 2]


async def test_async_unreachable_server_is_unavailable() -> None:
    async with jobq.AsyncClient(f"127.0.0.1:{_free_port()}", timeout=5) as client:
        with pytest.raises(errors.Unavailable):
            await client.list_nodes()
