"""Jobs and tasks as the engine holds them in memory.

Definitions (what the user asked for) are frozen dataclasses; runtime state (what happened) lives
in small `__slots__` objects. A job array keeps its template once: tasks that never left their
initial status are not materialized — they are counted under the job's `rest_status` — so a
million-task array costs a few hundred bytes until its tasks start (DESIGN §3). Every status
change goes through `Job.set_task_status`, which checks the transition table and keeps the per-status
counters exact; the engine persists the tasks it is told were touched.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobqd.domain.errors import InvalidArgument
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus, check_task

JsonValue = Any


@dataclass(frozen=True, slots=True)
class CommandDef:
    type: str
    #: JSON-like parameters (see proto Command for the built-in types).
    params: Mapping[str, JsonValue]


@dataclass(frozen=True, slots=True)
class TaskDef:
    name: str
    type: str
    commands: tuple[CommandDef, ...]
    depends_on: tuple[str, ...] = ()


def _substitute(value: JsonValue, index: str) -> JsonValue:
    if isinstance(value, str):
        return value.replace("{index}", index)
    if isinstance(value, list):
        return [_substitute(v, index) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, index) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class ArrayDef:
    """Tasks `start, start+step, … ≤ end` from one template; "{index}" is replaced per task."""

    template: TaskDef
    start: int
    end: int
    step: int = 1

    @property
    def count(self) -> int:
        return (self.end - self.start) // self.step + 1

    def index_of(self, pos: int) -> int:
        return self.start + pos * self.step

    def pos_of(self, index: int) -> int | None:
        off = index - self.start
        if off < 0 or off % self.step or off // self.step >= self.count:
            return None
        return off // self.step

    def expand(self, pos: int) -> TaskDef:
        idx = str(self.index_of(pos))
        t = self.template
        return TaskDef(
            name=t.name.replace("{index}", idx) if t.name else idx,
            type=t.type,
            commands=tuple(CommandDef(c.type, _substitute(dict(c.params), idx)) for c in t.commands),
        )


class DependencyCondition(StrEnum):
    AFTEROK = "afterok"
    AFTERANY = "afterany"
    AFTERNOTOK = "afternotok"


@dataclass(frozen=True, slots=True)
class Dependency:
    job_id: str
    condition: DependencyCondition


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    max_attempts: int = 3
    blocklist_threshold: int = 3
    fail_fraction: float = 0.1
    max_interruptions: int = 5
    retry_on_exit_codes: tuple[int, ...] = ()
    fail_fast_exit_codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class JobDef:
    """A validated job specification."""

    name: str
    queue: str = "default"
    priority: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Explicit tasks (None for an array).
    tasks: tuple[TaskDef, ...] | None = ()
    array: ArrayDef | None = None
    #: Per-task requests in milli-units, and their text form.
    resources: Mapping[str, int] = field(default_factory=dict)
    resources_text: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    parallelism: int = 0
    policy: FailurePolicy = field(default_factory=FailurePolicy)
    depends_on: tuple[Dependency, ...] = ()
    priority_class: str = ""

    @property
    def task_count(self) -> int:
        if self.array is not None:
            return self.array.count
        return len(self.tasks or ())

    def task_def(self, pos: int) -> TaskDef:
        if self.array is not None:
            return self.array.expand(pos)
        assert self.tasks is not None
        return self.tasks[pos]

    def index_of(self, pos: int) -> int:
        return self.array.index_of(pos) if self.array is not None else pos

    def pos_of(self, index: int) -> int | None:
        if self.array is not None:
            return self.array.pos_of(index)
        return index if 0 <= index < len(self.tasks or ()) else None

    def task_types(self) -> frozenset[str]:
        """Command types a node must support to run this job's tasks."""
        if self.array is not None:
            return frozenset(c.type for c in self.array.template.commands)
        return frozenset(c.type for t in self.tasks or () for c in t.commands)


class Task:
    """Runtime state of one materialized task."""

    __slots__ = (
        "attempt",
        "exit_code",
        "failed_by",
        "finish_ts",
        "interruptions",
        "message",
        "node",
        "pos",
        "progress",
        "start_ts",
        "status",
        "waiting_on",
    )

    def __init__(self, pos: int, status: TaskStatus = TaskStatus.QUEUED) -> None:
        self.pos = pos
        self.status = status
        self.attempt = 0
        self.node = ""
        self.failed_by: tuple[str, ...] = ()
        self.interruptions = 0
        self.progress = 0
        self.exit_code: int | None = None
        self.message = ""
        self.start_ts = 0.0
        self.finish_ts = 0.0
        #: Intra-job dependencies not yet completed (positions); runnable only when empty.
        self.waiting_on: frozenset[int] = frozenset()


#: a job's task counts before it has any (copied: iterating the enum each time was a seventh of a
#: 100,000-job start-up)
_NO_COUNTS: dict[TaskStatus, int] = dict.fromkeys(TaskStatus, 0)


class Job:
    """Runtime state of one job; the only place task counters change."""

    __slots__ = (
        "admission",
        "admit_ts",
        "counts",
        "cursor",
        "defn",
        "dep_children",
        "finish_ts",
        "flavor",
        "generation",
        "id",
        "owner",
        "ready",
        "reason",
        "request_id",
        "rest_status",
        "running",
        "seq",
        "start_ts",
        "status",
        "submit_ts",
        "tasks",
        "total",
    )

    def __init__(
        self,
        *,
        job_id: str,
        seq: int,
        defn: JobDef,
        owner: str,
        submit_ts: float,
        status: JobStatus = JobStatus.QUEUED,
        request_id: str = "",
    ) -> None:
        self.id = job_id
        self.seq = seq
        self.defn = defn
        self.owner = owner
        self.request_id = request_id
        self.status = status
        self.admission = AdmissionPhase.SUBMITTED
        self.reason = ""
        self.generation = 1
        self.submit_ts = submit_ts
        self.admit_ts = 0.0
        self.start_ts = 0.0
        self.finish_ts = 0.0
        self.flavor = ""
        self.total = defn.task_count
        self.tasks: dict[int, Task] = {}
        #: Status of every task not in `tasks`.
        self.rest_status = TaskStatus.QUEUED
        self.counts: dict[TaskStatus, int] = _NO_COUNTS.copy()
        self.counts[TaskStatus.QUEUED] = self.total
        #: Lowest position that may still be unmaterialized.
        self.cursor = 0
        #: Materialized runnable tasks (queued/soft-failed, dependencies done), by position.
        self.ready: list[int] = []
        #: Attempts of this job that are running (or being stopped) on nodes.
        self.running = 0
        #: position -> positions that depend on it (only for jobs with intra-job dependencies).
        self.dep_children: dict[int, tuple[int, ...]] = {}

    # -- tasks -------------------------------------------------------------------------------

    @property
    def unmaterialized(self) -> int:
        return self.total - len(self.tasks)

    def task(self, pos: int) -> Task:
        """The task at `pos`, materializing it (in the job's rest status) if needed."""
        t = self.tasks.get(pos)
        if t is None:
            t = Task(pos, self.rest_status)
            self.tasks[pos] = t
        return t

    def peek(self, pos: int) -> Task | None:
        return self.tasks.get(pos)

    def status_of(self, pos: int) -> TaskStatus:
        t = self.tasks.get(pos)
        return t.status if t is not None else self.rest_status

    def set_task_status(self, task: Task, new: TaskStatus, *, action: str) -> TaskStatus:
        """Move one materialized task to `new` (checked against the table); returns the old status."""
        old = task.status
        check_task(self.task_id(task.pos), old, new, action)
        task.status = new
        self.counts[old] -= 1
        self.counts[new] += 1
        if new in (TaskStatus.QUEUED, TaskStatus.SOFT_FAILED) and not task.waiting_on:
            heapq.heappush(self.ready, task.pos)
        return old

    def set_rest_status(self, new: TaskStatus) -> None:
        """Move every unmaterialized task at once (pause/cancel/resume of a big array)."""
        n = self.unmaterialized
        if n and new != self.rest_status:
            check_task(f"{self.id}.*", self.rest_status, new, "change")
            self.counts[self.rest_status] -= n
            self.counts[new] += n
        self.rest_status = new

    def iter_positions(self) -> Iterator[int]:
        return iter(range(self.total))

    def task_id(self, pos: int) -> str:
        return f"{self.id}.{self.defn.index_of(pos)}"

    def next_unmaterialized(self) -> int | None:
        """Lowest position not yet materialized, advancing the cursor past materialized ones."""
        c = self.cursor
        while c < self.total and c in self.tasks:
            c += 1
        self.cursor = c
        return c if c < self.total else None

    @property
    def active_tasks(self) -> int:
        return self.counts[TaskStatus.ACTIVE]


def parse_task_ref(job: Job, ref: str) -> int:
    """Position of a task given as "<job>.<index>" or "<index>"; raises InvalidArgument."""
    _, _, idx = ref.rpartition(".")
    try:
        index = int(idx)
    except ValueError:
        raise InvalidArgument("task_id", f"{ref!r} is not <job id>.<index>") from None
    pos = job.defn.pos_of(index)
    if pos is None:
        raise InvalidArgument("task_id", f"job {job.id} has no task with index {index}")
    return pos
