"""JobDef and task rows to and from their SQLite form (compact JSON text)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobqd import fastjson
from jobqd.domain.model import (
    ArrayDef,
    CommandDef,
    Dependency,
    DependencyCondition,
    FailurePolicy,
    Job,
    JobDef,
    Task,
    TaskDef,
)
from jobqd.domain.states import TaskStatus

_STATUSES = tuple(TaskStatus)
_dumps = fastjson.dumps


def _task_to(t: TaskDef) -> list[Any]:
    return [t.name, t.type, [[c.type, c.params] for c in t.commands], list(t.depends_on)]


def _task_from(v: list[Any]) -> TaskDef:
    name, typ, cmds, deps = v
    return TaskDef(
        name=name, type=typ, commands=tuple(CommandDef(c[0], c[1]) for c in cmds), depends_on=tuple(deps)
    )


def dump_defn(d: JobDef) -> str:
    """Everything but the explicit task list, which goes to task_chunks."""
    p = d.policy
    doc: dict[str, Any] = {
        "name": d.name,
        "queue": d.queue,
        "priority": d.priority,
        "labels": dict(d.labels),
        "resources": dict(d.resources),
        "resources_text": dict(d.resources_text),
        "node_selector": dict(d.node_selector),
        "parallelism": d.parallelism,
        "policy": [
            p.max_attempts,
            p.blocklist_threshold,
            p.fail_fraction,
            p.max_interruptions,
            list(p.retry_on_exit_codes),
            list(p.fail_fast_exit_codes),
        ],
        "depends_on": [[x.job_id, x.condition.value] for x in d.depends_on],
        "priority_class": d.priority_class,
    }
    if d.array is not None:
        a = d.array
        doc["array"] = [_task_to(a.template), a.start, a.end, a.step]
    return _dumps(doc)


def dump_tasks(tasks: Sequence[TaskDef]) -> str:
    return _dumps([_task_to(t) for t in tasks])


def load_defn(text: str, chunks: Sequence[str]) -> JobDef:
    doc = fastjson.loads(text)
    p = doc["policy"]
    array = None
    tasks: tuple[TaskDef, ...] | None = None
    if "array" in doc:
        tmpl, start, end, step = doc["array"]
        array = ArrayDef(template=_task_from(tmpl), start=start, end=end, step=step)
    else:
        tasks = tuple(_task_from(v) for chunk in chunks for v in fastjson.loads(chunk))
    return JobDef(
        name=doc["name"],
        queue=doc["queue"],
        priority=doc["priority"],
        labels=doc["labels"],
        tasks=tasks,
        array=array,
        resources=doc["resources"],
        resources_text=doc["resources_text"],
        node_selector=doc["node_selector"],
        parallelism=doc["parallelism"],
        policy=FailurePolicy(p[0], p[1], p[2], p[3], tuple(p[4]), tuple(p[5])),
        depends_on=tuple(Dependency(j, DependencyCondition(c)) for j, c in doc["depends_on"]),
        priority_class=doc["priority_class"],
    )


def job_row(job: Job, *, with_defn: bool) -> tuple[object, ...]:
    d = job.defn
    c = job.counts
    counts = ",".join([str(c[s]) for s in _STATUSES])
    return (
        job.id,
        job.seq,
        job.request_id,
        job.owner,
        d.name,
        d.queue,
        d.priority,
        dump_defn(d) if with_defn else "",
        job.status,  # StrEnum members are str: SQLite stores their text, without .value's lookup
        job.admission,
        job.reason,
        job.generation,
        job.submit_ts,
        job.admit_ts,
        job.start_ts,
        job.finish_ts,
        job.flavor,
        job.rest_status,
        job.total,
        counts,
    )


def task_row(job_id: str, t: Task) -> tuple[object, ...]:
    return (
        job_id,
        t.pos,
        t.status,
        t.attempt,
        t.node,
        ",".join(t.failed_by),
        t.interruptions,
        t.progress,
        t.exit_code,
        t.message,
        t.start_ts,
        t.finish_ts,
    )


def task_from_row(row: Sequence[Any]) -> Task:
    _, pos, status, attempt, node, failed_by, interruptions, progress, exit_code, message, s_ts, f_ts = row
    t = Task(pos, TaskStatus(status))
    t.attempt = attempt
    t.node = node
    t.failed_by = tuple(failed_by.split(",")) if failed_by else ()
    t.interruptions = interruptions
    t.progress = progress
    t.exit_code = exit_code
    t.message = message
    t.start_ts = s_ts
    t.finish_ts = f_ts
    return t
