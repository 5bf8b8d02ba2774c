"""Status names and the legal transitions of jobs, tasks and admission cycles.

Names and the "seed" edges come from the two source documents (Flamenco's job/task statuses and
the Kueue-based job lifecycle, in shared/seeds); the extensions are DESIGN §4's. Each table is the
single source of truth: the engine asks `check_*` before it changes a status, and the unit tests
walk every pair of statuses against these tables.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from jobqd.domain.errors import InvalidTransition


class JobStatus(StrEnum):
    UNDER_CONSTRUCTION = "under-construction"
    QUEUED = "queued"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCEL_REQUESTED = "cancel-requested"
    CANCELED = "canceled"
    REQUEUEING = "requeueing"
    PAUSE_REQUESTED = "pause-requested"
    PAUSED = "paused"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    ACTIVE = "active"
    COMPLETED = "completed"
    SOFT_FAILED = "soft-failed"
    FAILED = "failed"
    CANCELED = "canceled"
    PAUSED = "paused"


class AdmissionPhase(StrEnum):
    SUBMITTED = "submitted"
    INADMISSIBLE = "inadmissible"
    PENDING = "pending"
    ADMITTED = "admitted"
    FINISHED = "finished"


J = JobStatus
T = TaskStatus
A = AdmissionPhase

#: Seed edges (flamenco-jobs-tasks-commands.md, "Possible next status").
JOB_SEED: dict[JobStatus, frozenset[JobStatus]] = {
    J.UNDER_CONSTRUCTION: frozenset({J.QUEUED, J.ACTIVE}),
    J.QUEUED: frozenset({J.ACTIVE, J.CANCELED}),
    J.ACTIVE: frozenset({J.COMPLETED, J.CANCELED, J.FAILED}),
    J.COMPLETED: frozenset({J.QUEUED}),
    J.FAILED: frozenset({J.QUEUED, J.CANCELED}),
    J.CANCEL_REQUESTED: frozenset({J.CANCELED}),
    J.CANCELED: frozenset({J.QUEUED}),
    J.REQUEUEING: frozenset({J.QUEUED}),
    J.PAUSE_REQUESTED: frozenset(),
    J.PAUSED: frozenset(),
}

#: DESIGN §4.1 extensions, each with the reason it exists.
JOB_EXTENSIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # pause before start; a dependency that can never be satisfied fails the job before it starts
    J.QUEUED: frozenset({J.PAUSED, J.FAILED}),
    # tasks still run on nodes; eviction from admission sends an active job back to queued.
    # → paused: pause-requested exists only "while tasks still run on nodes" (DESIGN §4.1); an
    # admitted job with no task running right now pauses at once, as cancel goes straight to
    # canceled (plan_job_action returns paused for it, which the engine then checks here).
    J.ACTIVE: frozenset({J.CANCEL_REQUESTED, J.PAUSE_REQUESTED, J.QUEUED, J.PAUSED}),
    # requeueing is the transient status a requeue passes through (seed: "via requeueing")
    J.COMPLETED: frozenset({J.REQUEUEING}),
    J.FAILED: frozenset({J.REQUEUEING}),
    J.CANCELED: frozenset({J.REQUEUEING}),
    # active tasks finish; resume undoes the request; cancel wins over pause
    J.PAUSE_REQUESTED: frozenset({J.PAUSED, J.ACTIVE, J.CANCEL_REQUESTED, J.CANCELED, J.FAILED, J.COMPLETED}),
    J.PAUSED: frozenset({J.QUEUED, J.CANCELED}),
}

TASK_SEED: dict[TaskStatus, frozenset[TaskStatus]] = {
    T.QUEUED: frozenset({T.ACTIVE, T.CANCELED}),
    T.ACTIVE: frozenset({T.COMPLETED, T.CANCELED, T.FAILED, T.SOFT_FAILED}),
    T.COMPLETED: frozenset({T.QUEUED}),
    T.SOFT_FAILED: frozenset({T.QUEUED, T.COMPLETED, T.FAILED, T.CANCELED}),
    T.FAILED: frozenset({T.QUEUED, T.CANCELED}),
    T.CANCELED: frozenset({T.QUEUED}),
    T.PAUSED: frozenset(),
}

TASK_EXTENSIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    T.QUEUED: frozenset({T.PAUSED}),
    # interrupted (eviction, node lost, drain --stop): back to queued, not a failure
    T.ACTIVE: frozenset({T.QUEUED}),
    # a soft-failed task is "same as queued": it is dispatched again (DESIGN §5), or paused
    T.SOFT_FAILED: frozenset({T.ACTIVE, T.PAUSED}),
    T.PAUSED: frozenset({T.QUEUED, T.CANCELED}),
}

ADMISSION_SEED: dict[AdmissionPhase, frozenset[AdmissionPhase]] = {
    A.SUBMITTED: frozenset({A.PENDING, A.INADMISSIBLE}),
    A.INADMISSIBLE: frozenset({A.SUBMITTED}),
    A.PENDING: frozenset({A.ADMITTED}),
    A.ADMITTED: frozenset({A.FINISHED, A.SUBMITTED, A.PENDING}),
    A.FINISHED: frozenset(),
}

ADMISSION_EXTENSIONS: dict[AdmissionPhase, frozenset[AdmissionPhase]] = {
    # a job may end (cancel, dependency failure) before it was ever admitted
    A.SUBMITTED: frozenset({A.FINISHED}),
    A.INADMISSIBLE: frozenset({A.FINISHED}),
    # the reservation can be lost before admission checks pass (DESIGN §4.3)
    A.PENDING: frozenset({A.SUBMITTED, A.FINISHED}),
    # a requeued finished job starts a new cycle (generation + 1)
    A.FINISHED: frozenset({A.SUBMITTED}),
}


K = TypeVar("K")


def _merge(a: dict[K, frozenset[K]], b: dict[K, frozenset[K]]) -> dict[K, frozenset[K]]:
    return {k: a.get(k, frozenset()) | b.get(k, frozenset()) for k in a.keys() | b.keys()}


JOB_TRANSITIONS = _merge(JOB_SEED, JOB_EXTENSIONS)
TASK_TRANSITIONS = _merge(TASK_SEED, TASK_EXTENSIONS)
ADMISSION_TRANSITIONS = _merge(ADMISSION_SEED, ADMISSION_EXTENSIONS)

TERMINAL_JOB = frozenset({J.COMPLETED, J.FAILED, J.CANCELED})
#: Statuses in which a job still holds (or competes for) an admission.
LIVE_JOB = frozenset({J.QUEUED, J.ACTIVE, J.CANCEL_REQUESTED, J.PAUSE_REQUESTED})
TERMINAL_TASK = frozenset({T.COMPLETED, T.FAILED, T.CANCELED})
#: Task statuses a dispatcher may pick.
RUNNABLE_TASK = frozenset({T.QUEUED, T.SOFT_FAILED})


def job_can(current: JobStatus, new: JobStatus) -> bool:
    return new in JOB_TRANSITIONS[current]


def task_can(current: TaskStatus, new: TaskStatus) -> bool:
    return new in TASK_TRANSITIONS[current]


def admission_can(current: AdmissionPhase, new: AdmissionPhase) -> bool:
    return new in ADMISSION_TRANSITIONS[current]


def check_job(job_id: str, current: JobStatus, new: JobStatus, action: str) -> None:
    if new not in JOB_TRANSITIONS[current]:
        raise InvalidTransition(kind="job", ident=job_id, current=current.value, action=action)


def check_task(task_id: str, current: TaskStatus, new: TaskStatus, action: str) -> None:
    if new not in TASK_TRANSITIONS[current]:
        raise InvalidTransition(kind="task", ident=task_id, current=current.value, action=action)
