"""The human (``--output table``) views of jobs, tasks, queues, nodes and events.

State names come from :mod:`jobq.sdk.names` only; ``now`` is passed in so ages are testable.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf import json_format
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobq.cli.rendering import fmt_age, fmt_map, fmt_time
from jobq.sdk.names import (
    ADMISSION_PHASE,
    DEPENDENCY_CONDITION,
    EVENT_TYPE,
    JOB_STATUS,
    NODE_STATE,
    PREEMPTION_POLICY,
    QUEUE_STATE,
    QUEUEING_STRATEGY,
    TASK_STATUS,
)
from jobq.v1 import types_pb2

__all__ = [
    "event_line",
    "job_detail",
    "jobs_table",
    "node_detail",
    "nodes_table",
    "queue_detail",
    "queues_table",
    "task_detail",
    "task_progress",
    "tasks_table",
]

_STYLE = {
    "completed": "green",
    "active": "cyan",
    "admitted": "cyan",
    "online": "green",
    "failed": "red",
    "soft-failed": "yellow",
    "inadmissible": "red",
    "offline": "red",
    "canceled": "dim",
    "cancel-requested": "dim",
    "paused": "magenta",
    "pause-requested": "magenta",
    "held": "magenta",
    "draining": "magenta",
    "drained": "magenta",
}


def _state(name: str) -> Text:
    return Text(name, style=_STYLE.get(name, ""))


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        # Ids and names stay whole (they get copied into the next command); free text wraps.
        wrap = column in {"REASON", "MESSAGE", "LABELS", "QUOTAS", "USAGE", "CAPACITY", "ALLOCATED", "TYPES"}
        table.add_column(column, no_wrap=not wrap, overflow="fold")
    return table


def _details(console: Console, rows: Sequence[tuple[str, str | Text]]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    console.print(grid)


def task_progress(job: types_pb2.Job) -> str:
    """``7/10`` tasks done, with the failed and active counts when there are any."""
    counts = job.task_counts
    text = f"{counts.completed}/{job.total_tasks}"
    extra = [f"{n} {name}" for n, name in ((counts.active, "active"), (counts.failed, "failed")) if n]
    return f"{text} ({', '.join(extra)})" if extra else text


def jobs_table(console: Console, jobs: Sequence[types_pb2.Job], now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    table = _table("ID", "NAME", "QUEUE", "PRI", "STATUS", "ADMISSION", "TASKS", "AGE", "REASON")
    for job in jobs:
        table.add_row(
            job.id,
            job.spec.name,
            job.spec.queue or "default",
            str(job.spec.priority),
            _state(JOB_STATUS.name(job.status)),
            _state(ADMISSION_PHASE.name(job.admission)),
            task_progress(job),
            fmt_age(job.submit_time, now),
            job.status_reason,
        )
    console.print(table)


def job_detail(console: Console, job: types_pb2.Job) -> None:
    spec, counts = job.spec, job.task_counts
    count_text = ", ".join(
        f"{getattr(counts, field.name)} {field.name.replace('_', '-')}"
        for field in counts.DESCRIPTOR.fields
        if getattr(counts, field.name)
    )
    deps = ", ".join(f"{DEPENDENCY_CONDITION.name(dep.condition)}:{dep.job_id}" for dep in spec.depends_on)
    rows: list[tuple[str, str | Text]] = [
        ("ID", job.id),
        ("Name", spec.name),
        ("Queue", spec.queue or "default"),
        ("Priority", str(spec.priority)),
        ("Status", _state(JOB_STATUS.name(job.status))),
        ("Admission", _state(ADMISSION_PHASE.name(job.admission))),
        ("Reason", job.status_reason or "-"),
        ("Tasks", f"{job.total_tasks} ({count_text or 'none yet'})"),
        ("Owner", job.owner or "-"),
        ("Labels", fmt_map(spec.labels)),
        ("Resources", fmt_map(spec.resources)),
        ("Node selector", fmt_map(spec.node_selector)),
        ("Parallelism", str(spec.parallelism or "unlimited")),
        ("Depends on", deps or "-"),
        ("Generation", str(job.generation)),
        ("Submitted", fmt_time(job.submit_time)),
        ("Admitted", fmt_time(job.admit_time)),
        ("Started", fmt_time(job.start_time)),
        ("Finished", fmt_time(job.finish_time)),
    ]
    if job.flavor:
        rows.append(("Flavor", job.flavor))
    if job.archived:
        rows.append(("Archived", "yes"))
    _details(console, rows)


def tasks_table(console: Console, tasks: Sequence[types_pb2.Task]) -> None:
    table = _table("ID", "NAME", "STATUS", "ATTEMPT", "NODE", "PROGRESS", "EXIT", "MESSAGE")
    for task in tasks:
        table.add_row(
            task.id,
            task.name,
            _state(TASK_STATUS.name(task.status)),
            str(task.attempt),
            task.node or "-",
            f"{task.progress}%",
            str(task.exit_code) if task.HasField("exit_code") else "-",
            task.message,
        )
    console.print(table)


def task_detail(console: Console, task: types_pb2.Task) -> None:
    commands = "\n".join(_command_text(cmd) for cmd in task.commands)
    rows: list[tuple[str, str | Text]] = [
        ("ID", task.id),
        ("Job", task.job_id),
        ("Index", str(task.index)),
        ("Name", task.name),
        ("Type", task.type or "-"),
        ("Status", _state(TASK_STATUS.name(task.status))),
        ("Attempt", str(task.attempt)),
        ("Node", task.node or "-"),
        ("Progress", f"{task.progress}%"),
        ("Exit code", str(task.exit_code) if task.HasField("exit_code") else "-"),
        ("Message", task.message or "-"),
        ("Failed on", ", ".join(task.failed_by) or "-"),
        ("Interruptions", str(task.interruptions)),
        ("Depends on", ", ".join(task.depends_on) or "-"),
        ("Started", fmt_time(task.start_time)),
        ("Finished", fmt_time(task.finish_time)),
        ("Commands", commands or "-"),
    ]
    _details(console, rows)


def _command_text(cmd: types_pb2.Command) -> str:
    params = json_format.MessageToDict(cmd.params)
    argv = params.get("argv")
    if cmd.type == "exec" and isinstance(argv, list) and set(params) == {"argv"}:
        return f"exec {shlex.join(str(arg) for arg in argv)}"
    return f"{cmd.type} {json.dumps(params, separators=(',', ':'))}" if params else cmd.type


def queues_table(console: Console, queues: Sequence[types_pb2.Queue]) -> None:
    table = _table(
        "NAME", "STATE", "STRATEGY", "PREEMPTION", "QUOTAS", "USAGE", "PENDING", "ADMITTED", "INADMISSIBLE"
    )
    for queue in queues:
        table.add_row(
            queue.name,
            _state(QUEUE_STATE.name(queue.state)),
            QUEUEING_STRATEGY.name(queue.strategy),
            PREEMPTION_POLICY.name(queue.preemption),
            fmt_map(queue.quotas) if queue.quotas else "unlimited",
            fmt_map(queue.status.usage),
            str(queue.status.pending_jobs),
            str(queue.status.admitted_jobs),
            str(queue.status.inadmissible_jobs),
        )
    console.print(table)


def queue_detail(console: Console, queue: types_pb2.Queue) -> None:
    rows: list[tuple[str, str | Text]] = [
        ("Name", queue.name),
        ("State", _state(QUEUE_STATE.name(queue.state))),
        ("Strategy", QUEUEING_STRATEGY.name(queue.strategy)),
        ("Preemption", PREEMPTION_POLICY.name(queue.preemption)),
        ("Quotas", fmt_map(queue.quotas) if queue.quotas else "unlimited"),
        ("Usage", fmt_map(queue.status.usage)),
        ("Pending jobs", str(queue.status.pending_jobs)),
        ("Admitted jobs", str(queue.status.admitted_jobs)),
        ("Inadmissible jobs", str(queue.status.inadmissible_jobs)),
    ]
    if queue.cluster_queue:
        rows.append(("ClusterQueue", queue.cluster_queue))
    _details(console, rows)


def nodes_table(console: Console, nodes: Sequence[types_pb2.Node], now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    table = _table("NAME", "STATE", "RUNNING", "CAPACITY", "ALLOCATED", "TYPES", "LAST SEEN", "VERSION")
    for node in nodes:
        table.add_row(
            node.name,
            _state(NODE_STATE.name(node.state)),
            str(len(node.running)),
            fmt_map(node.capacity),
            fmt_map(node.allocated),
            ",".join(node.task_types) or "-",
            fmt_age(node.last_seen, now),
            node.version or "-",
        )
    console.print(table)


def node_detail(console: Console, node: types_pb2.Node) -> None:
    running = ", ".join(f"{r.task_id}#{r.attempt}" for r in node.running)
    rows: list[tuple[str, str | Text]] = [
        ("Name", node.name),
        ("State", _state(NODE_STATE.name(node.state))),
        ("Labels", fmt_map(node.labels)),
        ("Capacity", fmt_map(node.capacity)),
        ("Allocated", fmt_map(node.allocated)),
        ("Task types", ", ".join(node.task_types) or "-"),
        ("Running", running or "-"),
        ("Last seen", fmt_time(node.last_seen)),
        ("Version", node.version or "-"),
    ]
    _details(console, rows)


def event_line(event: types_pb2.Event) -> str:
    """``42 2025-01-01 12:00:00 task-status-changed task=01J….3 status=failed node=n1 reason=…``"""
    parts = [str(event.sequence), fmt_time(event.time), EVENT_TYPE.name(event.type)]
    if event.task_id:
        parts.append(f"task={event.task_id}")
    elif event.job_id:
        parts.append(f"job={event.job_id}")
    if event.type == types_pb2.EVENT_TYPE_TASK_STATUS_CHANGED:
        parts.append(f"status={TASK_STATUS.name(event.task_status)}")
    elif event.job_status:
        parts.append(f"status={JOB_STATUS.name(event.job_status)}")
    if event.admission:
        parts.append(f"admission={ADMISSION_PHASE.name(event.admission)}")
    for key, value in (("queue", event.queue), ("node", event.node)):
        if value:
            parts.append(f"{key}={value}")
    if event.attempt:
        parts.append(f"attempt={event.attempt}")
    if event.type == types_pb2.EVENT_TYPE_JOB_PRIORITY_CHANGED:
        parts.append(f"priority={event.priority}")
    if event.count:
        parts.append(f"tasks={event.count}")
    if event.reason:
        parts.append(f"reason={event.reason!r}")
    return " ".join(parts)
