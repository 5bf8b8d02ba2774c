"""The human (``--output table``) views of jobs, tasks, queues, nodes and events.

State names come from :mod:`jobq.sdk.names` only; ``now`` is passed in so ages are testable.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf import json_format
from rich.cells import cell_len
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


#: Free text that may wrap; every other column keeps its values whole, because ids and names get
#: copied into the next command.
_WRAPPING = frozenset({"REASON", "MESSAGE", "QUOTAS", "USAGE", "JOBS", "CAPACITY", "ALLOCATED", "TYPES"})
#: Narrowest a wrapping column is worth showing at.
_MIN_WRAP = 12
_GAP = 2

Cell = str | Text


def _print_table(
    console: Console, headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, drop: Sequence[str] = ()
) -> None:
    """A borderless table that fits the console: when it would not, the columns in ``drop`` are
    left out, first ones first, rather than cutting ids or squeezing text to a letter per line."""
    widths = [max([cell_len(h), *(cell_len(str(row[i])) for row in rows)]) for i, h in enumerate(headers)]
    needs = {h: min(w, _MIN_WRAP) if h in _WRAPPING else w for h, w in zip(headers, widths, strict=True)}
    shown = list(headers)
    for column in drop:
        if sum(needs[h] for h in shown) + _GAP * (len(shown) - 1) <= console.width:
            break
        shown.remove(column)
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, _GAP, 0, 0))
    for header in shown:
        if header in _WRAPPING:
            table.add_column(header, overflow="fold")
        else:
            table.add_column(header, no_wrap=True, min_width=needs[header])
    keep = [headers.index(h) for h in shown]
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    console.print(table)


def _details(console: Console, rows: Sequence[tuple[str, Cell]]) -> None:
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
    headers = ("ID", "NAME", "QUEUE", "PRI", "STATUS", "ADMISSION", "TASKS", "AGE", "REASON")
    rows = [
        (
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
        for job in jobs
    ]
    _print_table(console, headers, rows, drop=("AGE", "ADMISSION", "PRI", "QUEUE", "REASON"))


def job_detail(console: Console, job: types_pb2.Job) -> None:
    spec, counts = job.spec, job.task_counts
    count_text = ", ".join(
        f"{getattr(counts, field.name)} {field.name.replace('_', '-')}"
        for field in counts.DESCRIPTOR.fields
        if getattr(counts, field.name)
    )
    deps = ", ".join(f"{DEPENDENCY_CONDITION.name(dep.condition)}:{dep.job_id}" for dep in spec.depends_on)
    rows: list[tuple[str, Cell]] = [
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
    headers = ("ID", "NAME", "STATUS", "ATTEMPT", "NODE", "PROGRESS", "EXIT", "MESSAGE")
    rows = [
        (
            task.id,
            task.name,
            _state(TASK_STATUS.name(task.status)),
            str(task.attempt),
            task.node or "-",
            f"{task.progress}%",
            str(task.exit_code) if task.HasField("exit_code") else "-",
            task.message,
        )
        for task in tasks
    ]
    _print_table(console, headers, rows, drop=("PROGRESS", "ATTEMPT", "EXIT", "NAME", "NODE", "MESSAGE"))


def task_detail(console: Console, task: types_pb2.Task) -> None:
    commands = "\n".join(_command_text(cmd) for cmd in task.commands)
    rows: list[tuple[str, Cell]] = [
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
    headers = ("NAME", "STATE", "STRATEGY", "PREEMPTION", "QUOTAS", "USAGE", "JOBS")
    rows = [
        (
            queue.name,
            _state(QUEUE_STATE.name(queue.state)),
            QUEUEING_STRATEGY.name(queue.strategy),
            PREEMPTION_POLICY.name(queue.preemption),
            fmt_map(queue.quotas) if queue.quotas else "unlimited",
            fmt_map(queue.status.usage),
            _queue_jobs(queue.status),
        )
        for queue in queues
    ]
    _print_table(console, headers, rows, drop=("PREEMPTION", "STRATEGY", "USAGE", "QUOTAS"))


def _queue_jobs(usage: types_pb2.QueueUsage) -> str:
    text = f"{usage.pending_jobs} pending, {usage.admitted_jobs} admitted"
    return f"{text}, {usage.inadmissible_jobs} inadmissible" if usage.inadmissible_jobs else text


def queue_detail(console: Console, queue: types_pb2.Queue) -> None:
    rows: list[tuple[str, Cell]] = [
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
    headers = ("NAME", "STATE", "RUNNING", "CAPACITY", "ALLOCATED", "TYPES", "LAST SEEN", "VERSION")
    rows = [
        (
            node.name,
            _state(NODE_STATE.name(node.state)),
            str(len(node.running)),
            fmt_map(node.capacity),
            fmt_map(node.allocated),
            ",".join(node.task_types) or "-",
            fmt_age(node.last_seen, now),
            node.version or "-",
        )
        for node in nodes
    ]
    _print_table(
        console, headers, rows, drop=("VERSION", "LAST SEEN", "TYPES", "ALLOCATED", "RUNNING", "CAPACITY")
    )


def node_detail(console: Console, node: types_pb2.Node) -> None:
    running = ", ".join(f"{r.task_id}#{r.attempt}" for r in node.running)
    rows: list[tuple[str, Cell]] = [
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
