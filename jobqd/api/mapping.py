"""Domain objects to protobuf messages (and the enum tables both ways)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from jobq.v1 import types_pb2 as pb

from jobqd.domain import admission as amath
from jobqd.domain.events import Event, EventType
from jobqd.domain.model import CommandDef, DependencyCondition, FailurePolicy, Job, JobDef, TaskDef
from jobqd.domain.quantity import format_milli
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus


def _by_name(enum_prefix: str, values: type, proto_enum: object) -> dict[object, int]:
    return {v: proto_enum.Value(enum_prefix + v.name) for v in values}  # type: ignore[attr-defined]


JOB_STATUS_TO_PB: dict[JobStatus, pb.JobStatus.ValueType] = _by_name("JOB_STATUS_", JobStatus, pb.JobStatus)  # type: ignore[assignment]
JOB_STATUS_FROM_PB = {v: k for k, v in JOB_STATUS_TO_PB.items()}
TASK_STATUS_TO_PB: dict[TaskStatus, pb.TaskStatus.ValueType] = _by_name(
    "TASK_STATUS_", TaskStatus, pb.TaskStatus
)  # type: ignore[assignment]
TASK_STATUS_FROM_PB = {v: k for k, v in TASK_STATUS_TO_PB.items()}
ADMISSION_TO_PB: dict[AdmissionPhase, pb.AdmissionPhase.ValueType] = _by_name(
    "ADMISSION_PHASE_", AdmissionPhase, pb.AdmissionPhase
)  # type: ignore[assignment]
ADMISSION_FROM_PB = {v: k for k, v in ADMISSION_TO_PB.items()}
EVENT_TYPE_TO_PB: dict[EventType, pb.EventType.ValueType] = _by_name("EVENT_TYPE_", EventType, pb.EventType)  # type: ignore[assignment]
EVENT_TYPE_FROM_PB = {v: k for k, v in EVENT_TYPE_TO_PB.items()}
_COND_TO_PB = {
    DependencyCondition.AFTEROK: pb.DEPENDENCY_CONDITION_AFTEROK,
    DependencyCondition.AFTERANY: pb.DEPENDENCY_CONDITION_AFTERANY,
    DependencyCondition.AFTERNOTOK: pb.DEPENDENCY_CONDITION_AFTERNOTOK,
}
STRATEGY_TO_PB = {
    amath.Strategy.BEST_EFFORT_FIFO: pb.QUEUEING_STRATEGY_BEST_EFFORT_FIFO,
    amath.Strategy.STRICT_FIFO: pb.QUEUEING_STRATEGY_STRICT_FIFO,
}
STRATEGY_FROM_PB = {v: k for k, v in STRATEGY_TO_PB.items()}
PREEMPTION_TO_PB = {
    amath.Preemption.NEVER: pb.PREEMPTION_POLICY_NEVER,
    amath.Preemption.LOWER_PRIORITY: pb.PREEMPTION_POLICY_LOWER_PRIORITY,
}
PREEMPTION_FROM_PB = {v: k for k, v in PREEMPTION_TO_PB.items()}
QUEUE_STATE_TO_PB = {
    amath.QueueState.ACTIVE: pb.QUEUE_STATE_ACTIVE,
    amath.QueueState.HELD: pb.QUEUE_STATE_HELD,
    amath.QueueState.DRAINING: pb.QUEUE_STATE_DRAINING,
}


def set_time(field: Timestamp, ts: float) -> None:
    """Set a message's Timestamp field in place from epoch seconds; 0 leaves it unset. (A Timestamp
    built apart and copied in cost twice as much, per field, per message.)"""
    if ts:
        nanos = int(ts * 1e9)
        field.seconds, field.nanos = divmod(nanos, 1_000_000_000)


def command_pb(c: CommandDef) -> pb.Command:
    msg = pb.Command(type=c.type)
    if c.params:
        s = Struct()
        s.update(dict(c.params))
        msg.params.CopyFrom(s)
    return msg


def task_spec_pb(t: TaskDef) -> pb.TaskSpec:
    return pb.TaskSpec(
        name=t.name, type=t.type, commands=[command_pb(c) for c in t.commands], depends_on=list(t.depends_on)
    )


def spec_pb(d: JobDef, *, full: bool) -> pb.JobSpec:
    spec = pb.JobSpec()
    fill_spec(spec, d, full=full)
    return spec


def fill_spec(spec: pb.JobSpec, d: JobDef, *, full: bool) -> None:
    """Write `d` into an empty `spec` in place (a Job's own spec field: no message built and copied).

    Field by field, maps only when not empty: three empty dicts handed to a constructor were half
    the cost of this function, which runs for every job of every response.
    """
    spec.name = d.name
    spec.queue = d.queue
    if d.priority:
        spec.priority = d.priority
    if d.parallelism:
        spec.parallelism = d.parallelism
    spec.failure_policy.CopyFrom(_policy_pb(d.policy))
    if d.priority_class:
        spec.priority_class = d.priority_class
    if d.labels:
        spec.labels.update(d.labels)
    if d.resources_text:
        spec.resources.update(d.resources_text)
    if d.node_selector:
        spec.node_selector.update(d.node_selector)
    if d.depends_on:
        spec.depends_on.extend(
            pb.JobDependency(job_id=x.job_id, condition=_COND_TO_PB[x.condition]) for x in d.depends_on
        )
    if d.array is not None:
        a = d.array
        spec.array.CopyFrom(
            pb.ArraySpec(template=task_spec_pb(a.template), start=a.start, end=a.end, step=a.step)
        )
    elif full and d.tasks:
        spec.tasks.extend(task_spec_pb(t) for t in d.tasks)


@functools.lru_cache(maxsize=256)
def _policy_pb(p: FailurePolicy) -> pb.FailurePolicy:
    """Nearly every job has the default policy; the message is copied into each spec, never changed."""
    return pb.FailurePolicy(
        max_attempts=p.max_attempts,
        blocklist_threshold=p.blocklist_threshold,
        fail_fraction=p.fail_fraction,
        max_interruptions=p.max_interruptions,
        retry_on_exit_codes=list(p.retry_on_exit_codes),
        fail_fast_exit_codes=list(p.fail_fast_exit_codes),
    )


def job_pb(job: Job, *, full: bool = False, archived: bool = False) -> pb.Job:
    msg = pb.Job(
        id=job.id,
        status=JOB_STATUS_TO_PB[job.status],
        admission=ADMISSION_TO_PB[job.admission],
        status_reason=job.reason,
        owner=job.owner,
        total_tasks=job.total,
        generation=job.generation,
        flavor=job.flavor,
        archived=archived,
    )
    fill_spec(msg.spec, job.defn, full=full)
    counts = msg.task_counts
    counts.SetInParent()  # present even when every count is zero (a draft), as clients expect
    for status, n in job.counts.items():
        if n:
            setattr(counts, _COUNT_FIELD[status], n)
    set_time(msg.submit_time, job.submit_ts)
    set_time(msg.admit_time, job.admit_ts)
    set_time(msg.start_time, job.start_ts)
    set_time(msg.finish_time, job.finish_ts)
    return msg


#: TaskCounts' field for each task status
_COUNT_FIELD = {
    TaskStatus.QUEUED: "queued",
    TaskStatus.ACTIVE: "active",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.SOFT_FAILED: "soft_failed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELED: "canceled",
    TaskStatus.PAUSED: "paused",
}


def task_pb(job: Job, pos: int) -> pb.Task:
    d = job.defn.task_def(pos)
    t = job.peek(pos)
    msg = pb.Task(
        id=job.task_id(pos),
        job_id=job.id,
        index=job.defn.index_of(pos),
        name=d.name,
        type=d.type,
        commands=[command_pb(c) for c in d.commands],
        depends_on=list(d.depends_on),
        status=TASK_STATUS_TO_PB[job.status_of(pos)],
    )
    if t is not None:
        msg.attempt = t.attempt
        msg.node = t.node
        msg.failed_by.extend(t.failed_by)
        msg.interruptions = t.interruptions
        msg.progress = t.progress
        if t.exit_code is not None:
            msg.exit_code = t.exit_code
        msg.message = t.message
        set_time(msg.start_time, t.start_ts)
        set_time(msg.finish_time, t.finish_ts)
    return msg


def event_pb(ev: Event) -> pb.Event:
    msg = pb.Event(
        sequence=ev.seq,
        type=EVENT_TYPE_TO_PB[ev.type],
        job_id=ev.job_id,
        task_id=ev.task_id,
        reason=ev.reason,
        node=ev.node,
        attempt=ev.attempt,
        queue=ev.queue,
        priority=ev.priority,
        count=ev.count,
    )
    set_time(msg.time, ev.ts)
    if ev.job_status:
        msg.job_status = JOB_STATUS_TO_PB[JobStatus(ev.job_status)]
    if ev.task_status:
        msg.task_status = TASK_STATUS_TO_PB[TaskStatus(ev.task_status)]
    if ev.admission:
        msg.admission = ADMISSION_TO_PB[AdmissionPhase(ev.admission)]
    return msg


def quantities(milli: Mapping[str, int]) -> dict[str, str]:
    return {k: format_milli(v) for k, v in milli.items()}


def queue_pb(d: amath.QueueDef, usage: Mapping[str, object], *, cluster_queue: str = "") -> pb.Queue:
    raw = usage.get("usage", {})
    assert isinstance(raw, dict)
    return pb.Queue(
        name=d.name,
        quotas=quantities(d.quotas),
        strategy=STRATEGY_TO_PB[d.strategy],
        preemption=PREEMPTION_TO_PB[d.preemption],
        state=QUEUE_STATE_TO_PB[d.state],
        status=pb.QueueUsage(
            pending_jobs=int(usage.get("pending", 0)),  # type: ignore[call-overload]
            admitted_jobs=int(usage.get("admitted", 0)),  # type: ignore[call-overload]
            inadmissible_jobs=int(usage.get("inadmissible", 0)),  # type: ignore[call-overload]
            usage=quantities(raw),
        ),
        cluster_queue=cluster_queue,
    )
