"""Request messages that take more than one line to build, shared by the async and sync clients.

Each function checks what the server would refuse anyway but can be caught before sending
(ids *and* a filter, mismatched request ids), and accepts the friendly forms (status names,
datetimes) the clients' methods take.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import TypeVar

from google.protobuf import timestamp_pb2

from jobq.errors import InvalidArgument
from jobq.sdk.names import (
    ADMISSION_PHASE,
    EVENT_TYPE,
    JOB_STATUS,
    PREEMPTION_POLICY,
    QUEUEING_STRATEGY,
    TASK_STATUS,
)
from jobq.spec import JobSpecLike, as_job_spec
from jobq.v1 import job_service_pb2, types_pb2

__all__ = [
    "chunked",
    "draft_of",
    "event_types",
    "job_action_request",
    "job_filter",
    "queue_message",
    "submit_jobs_request",
    "task_id",
    "task_statuses",
]

T = TypeVar("T")


def task_id(job_id: str, index: int) -> str:
    """The id of task ``index`` of job ``job_id``: ``"<job id>.<index>"``."""
    return f"{job_id}.{index}"


def job_filter(
    *,
    statuses: Iterable[int | str] = (),
    queues: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
    name_prefix: str = "",
    owner: str = "",
    submitted_after: datetime | None = None,
    submitted_before: datetime | None = None,
    admission: Iterable[int | str] = (),
) -> types_pb2.JobFilter:
    """A JobFilter for ListJobs and the bulk actions; every argument left out does not filter.

    Statuses and admission phases may be enum values or names (``"queued"``, ``"soft-failed"``).
    A naive datetime is taken as local time.
    """
    flt = types_pb2.JobFilter(
        statuses=[JOB_STATUS.coerce(s) for s in statuses],
        queues=list(queues),
        labels=dict(labels or {}),
        name_prefix=name_prefix,
        owner=owner,
        admission=[ADMISSION_PHASE.coerce(a) for a in admission],
    )
    if submitted_after is not None:
        flt.submitted_after.CopyFrom(_timestamp(submitted_after))
    if submitted_before is not None:
        flt.submitted_before.CopyFrom(_timestamp(submitted_before))
    return flt


def job_action_request(
    job_ids: Iterable[str] | None, job_filter: types_pb2.JobFilter | None, reason: str
) -> job_service_pb2.JobActionRequest:
    """Either ids or a filter, never both nor neither (an empty filter, given explicitly, means all jobs)."""
    ids = [job_ids] if isinstance(job_ids, str) else list(job_ids or [])
    if ids and job_filter is not None:
        raise InvalidArgument("job_ids and filter: give one, not both")
    if not ids and job_filter is None:
        raise InvalidArgument("job_ids: give job ids or a filter")
    return job_service_pb2.JobActionRequest(job_ids=ids, filter=job_filter, reason=reason)


def submit_jobs_request(
    specs: Sequence[JobSpecLike], request_ids: Sequence[str] | None
) -> job_service_pb2.SubmitJobsRequest:
    if request_ids is not None and len(request_ids) != len(specs):
        raise InvalidArgument(f"request_ids: {len(request_ids)} ids for {len(specs)} specs")
    ids = request_ids if request_ids is not None else [""] * len(specs)
    return job_service_pb2.SubmitJobsRequest(
        jobs=[
            job_service_pb2.SubmitJobRequest(spec=as_job_spec(spec), request_id=rid)
            for spec, rid in zip(specs, ids, strict=True)
        ]
    )


def draft_of(spec: JobSpecLike) -> tuple[types_pb2.JobSpec, list[types_pb2.TaskSpec]]:
    """Split a spec into the task-less draft CreateJob takes and the tasks it already lists."""
    full = as_job_spec(spec)
    if full.HasField("array"):
        raise InvalidArgument("spec.array: arrays are expanded by the server; submit them with submit_job")
    draft = types_pb2.JobSpec()
    draft.CopyFrom(full)
    del draft.tasks[:]
    return draft, list(full.tasks)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items (the last one shorter), for AddTasks."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def queue_message(
    name: str,
    *,
    quotas: Mapping[str, str] | None,
    strategy: types_pb2.QueueingStrategy.ValueType | str | None,
    preemption: types_pb2.PreemptionPolicy.ValueType | str | None,
) -> types_pb2.Queue:
    queue = types_pb2.Queue(name=name, quotas=dict(quotas or {}))
    if strategy is not None:
        queue.strategy = QUEUEING_STRATEGY.coerce(strategy)
    if preemption is not None:
        queue.preemption = PREEMPTION_POLICY.coerce(preemption)
    return queue


def task_statuses(
    statuses: Iterable[int | str],
) -> list[types_pb2.TaskStatus.ValueType]:
    return [TASK_STATUS.coerce(s) for s in statuses]


def event_types(types: Iterable[int | str]) -> list[types_pb2.EventType.ValueType]:
    return [EVENT_TYPE.coerce(t) for t in types]


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when.astimezone())  # astimezone: a naive datetime is local time
    return stamp
