"""Request building shared by both clients: filters, bulk-action checks, chunking, backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jobq import job_filter, task_id
from jobq.errors import InvalidArgument
from jobq.sdk import messages
from jobq.sdk.retrying import Backoff
from jobq.spec import exec_command, task_spec
from jobq.v1 import types_pb2


def test_job_filter_takes_names_values_and_datetimes() -> None:
    flt = job_filter(
        statuses=["queued", types_pb2.JOB_STATUS_ACTIVE],
        queues=["render"],
        labels={"project": "x"},
        name_prefix="shot-",
        admission=["inadmissible"],
        submitted_after=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )

    assert list(flt.statuses) == [types_pb2.JOB_STATUS_QUEUED, types_pb2.JOB_STATUS_ACTIVE]
    assert list(flt.admission) == [types_pb2.ADMISSION_PHASE_INADMISSIBLE]
    assert (list(flt.queues), dict(flt.labels), flt.name_prefix) == (["render"], {"project": "x"}, "shot-")
    assert flt.submitted_after.ToDatetime(tzinfo=UTC) == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert not flt.HasField("submitted_before")


def test_a_bulk_action_takes_ids_or_a_filter_but_not_both_nor_neither() -> None:
    assert list(messages.job_action_request(["a", "b"], None, "").job_ids) == ["a", "b"]
    assert list(messages.job_action_request("a", None, "").job_ids) == ["a"]  # not ["a"] split into letters
    by_filter = messages.job_action_request(None, job_filter(queues=["q"]), "maintenance")
    assert (list(by_filter.filter.queues), by_filter.reason) == (["q"], "maintenance")
    with pytest.raises(InvalidArgument, match="give one, not both"):
        messages.job_action_request(["a"], job_filter(), "")
    with pytest.raises(InvalidArgument, match="give job ids or a filter"):
        messages.job_action_request([], None, "")


def test_submit_jobs_pairs_specs_with_request_ids() -> None:
    request = messages.submit_jobs_request([{"name": "a"}, types_pb2.JobSpec(name="b")], ["r1", "r2"])

    assert [(j.spec.name, j.request_id) for j in request.jobs] == [("a", "r1"), ("b", "r2")]
    with pytest.raises(InvalidArgument, match="1 ids for 2 specs"):
        messages.submit_jobs_request([{"name": "a"}, {"name": "b"}], ["r1"])


def test_draft_of_splits_off_the_tasks_and_refuses_arrays() -> None:
    one = task_spec(exec_command(["true"]))
    draft, tasks = messages.draft_of(types_pb2.JobSpec(name="big", priority=3, tasks=[one, one]))

    assert (draft.name, draft.priority, len(draft.tasks)) == ("big", 3, 0)
    assert tasks == [one, one]
    with pytest.raises(InvalidArgument, match=r"spec\.array"):
        messages.draft_of({"name": "a", "array": {"start": 1, "end": 2}})


def test_chunked() -> None:
    assert list(messages.chunked(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(messages.chunked([], 3)) == []


def test_task_id() -> None:
    assert task_id("01JABC", 7) == "01JABC.7"


def test_queue_message_leaves_out_what_is_not_given() -> None:
    queue = messages.queue_message("q", quotas={"cpu": "4"}, strategy="strict-fifo", preemption=None)

    assert queue == types_pb2.Queue(
        name="q", quotas={"cpu": "4"}, strategy=types_pb2.QUEUEING_STRATEGY_STRICT_FIFO
    )


def test_backoff_grows_to_its_maximum_with_bounded_jitter() -> None:
    delays = Backoff(initial=1, maximum=8, multiplier=2, jitter=0.5).delays(rand=lambda: 0.5)
    assert [next(delays) for _ in range(6)] == [1, 2, 4, 8, 8, 8]

    low = Backoff(initial=1, jitter=0.5).delays(rand=lambda: 0.0)
    high = Backoff(initial=1, jitter=0.5).delays(rand=lambda: 0.999999)
    assert next(low) == 0.5
    assert next(high) == pytest.approx(1.5, abs=1e-5)
