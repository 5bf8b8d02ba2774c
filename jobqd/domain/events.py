"""State-change events: what WatchEvents streams and the events table stores."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventType(StrEnum):
    JOB_SUBMITTED = "job-submitted"
    JOB_STATUS_CHANGED = "job-status-changed"
    JOB_ADMISSION_CHANGED = "job-admission-changed"
    JOB_PRIORITY_CHANGED = "job-priority-changed"
    JOB_DELETED = "job-deleted"
    TASK_STATUS_CHANGED = "task-status-changed"
    QUEUE_CHANGED = "queue-changed"
    NODE_CHANGED = "node-changed"
    JOB_TASKS_ADDED = "job-tasks-added"


# Not frozen, though never changed once emitted: a frozen dataclass sets each of its 14 fields
# through object.__setattr__, which made building one 2.5 times dearer (three per submit).
@dataclass(slots=True)
class Event:
    seq: int
    ts: float
    type: EventType
    job_id: str = ""
    task_id: str = ""
    job_status: str = ""
    task_status: str = ""
    admission: str = ""
    reason: str = ""
    node: str = ""
    attempt: int = 0
    queue: str = ""
    priority: int = 0
    count: int = 0

    def row(self) -> tuple[object, ...]:
        return (
            self.seq,
            self.ts,
            self.type,  # a StrEnum member is its text for SQLite
            self.job_id,
            self.task_id,
            self.job_status,
            self.task_status,
            self.admission,
            self.reason,
            self.node,
            self.attempt,
            self.queue,
            self.priority,
            self.count,
        )

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> Event:
        seq, ts, typ, job_id, task_id, js, ts_, adm, reason, node, attempt, queue, prio, count = row
        return cls(
            seq=int(seq),  # type: ignore[call-overload]
            ts=float(ts),  # type: ignore[arg-type]
            type=EventType(str(typ)),
            job_id=str(job_id),
            task_id=str(task_id),
            job_status=str(js),
            task_status=str(ts_),
            admission=str(adm),
            reason=str(reason),
            node=str(node),
            attempt=int(attempt),  # type: ignore[call-overload]
            queue=str(queue),
            priority=int(prio),  # type: ignore[call-overload]
            count=int(count),  # type: ignore[call-overload]
        )
