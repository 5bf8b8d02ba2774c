"""What jobqd must write to Kubernetes for one job: a pure, level-triggered plan.

`plan` compares what the job needs (from the engine's in-memory state) with the Workloads the
watch has seen for it, and returns the writes that close the gap. It is the same function at
start-up (adopt Workloads of known jobs, delete orphans, create missing ones), after a relist,
after a failed write, and on every change of the job — so a missed trigger or a write lost to an
outage is repaired by the next pass, and a pass repeated on stale information is harmless: a
second create gets 409, a second delete 404, and a status write based on an old object fails its
resourceVersion precondition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jobqd.admission.kueue import mapping as m
from jobqd.domain.model import Job
from jobqd.domain.states import TERMINAL_JOB, AdmissionPhase, JobStatus

J = JobStatus
A = AdmissionPhase


@dataclass(frozen=True, slots=True)
class Create:
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    name: str
    uid: str
    why: str


@dataclass(frozen=True, slots=True)
class SetActive:
    name: str
    active: bool
    why: str = ""


@dataclass(frozen=True, slots=True)
class SetPriority:
    """The job's priority changed (`jobqctl priority`) and it names no WorkloadPriorityClass: carry
    the new value to `spec.priority`, which Kueue uses for ordering and preemption."""

    name: str
    priority: int


@dataclass(frozen=True, slots=True)
class ClearReservation:
    """Evicted and no task runs any more: give the quota back so Kueue requeues the Workload."""

    name: str
    patch: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finish:
    name: str
    patch: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Blocked:
    """The Workload cannot be built yet (its WorkloadPriorityClass does not exist): the job is
    inadmissible with this reason until it does."""

    reason: str


Action = Create | Delete | SetActive | SetPriority | ClearReservation | Finish | Blocked

#: Statuses in which a job competes for (or holds) admission and so needs a Workload.
_NEEDS_WORKLOAD = frozenset({J.QUEUED, J.ACTIVE, J.PAUSE_REQUESTED})
#: Statuses in which jobqd keeps the Workload inactive (spec.active=false).
_INACTIVE = {J.PAUSED: "paused", J.CANCEL_REQUESTED: "canceled", J.CANCELED: "canceled"}


def plan(
    job: Job | None,
    workloads: Sequence[m.Obj],
    *,
    namespace: str,
    deps_met: bool,
    running: int,
    priority_of: Callable[[str], int | None],
    now: float,
) -> list[Action]:
    """The writes that make Kubernetes match `job` (None: the job no longer exists in jobqd).

    `workloads` are the managed Workloads labelled with the job's id; `running` is the number of
    the job's attempts still running (or being stopped) on nodes.
    """
    current = m.workload_name(job.id, job.generation) if job is not None else ""
    actions: list[Action] = []
    wl: m.Obj | None = None
    for obj in workloads:
        name = m.name_of(obj)
        if name == current:
            wl = obj
        elif not m.is_terminating(obj):
            why = "orphan: its job does not exist" if job is None else "an earlier admission cycle of its job"
            actions.append(Delete(name, str(m.meta(obj).get("uid", "")), why))
    if job is None:
        return actions
    st = job.status
    if wl is None or m.is_terminating(wl):
        if wl is None and st in _NEEDS_WORKLOAD and (st is not J.QUEUED or deps_met):
            actions.append(_create(job, namespace, priority_of))
        return actions
    obs = m.observe(wl)
    inactive_why = _INACTIVE.get(st)
    if inactive_why and m.is_active(wl):
        actions.append(SetActive(current, False, inactive_why))
    if st in TERMINAL_JOB:
        if obs.phase is not m.Phase.FINISHED:
            ok, message = m.finish_message(job)
            actions.append(Finish(current, m.finish_patch(wl, succeeded=ok, message=message, now=now)))
        return actions
    if obs.phase is m.Phase.FINISHED:
        # finished behind jobqd's back while the job lives on: start the cycle over
        actions.append(Delete(current, str(m.meta(wl).get("uid", "")), "finished while its job is not"))
        return actions
    if not inactive_why and not m.is_active(wl) and m.deactivated_by_jobqd(wl):
        actions.append(SetActive(current, True, "resumed"))
    if (
        obs.phase is m.Phase.EVICTED
        and running == 0
        and st is not J.CANCEL_REQUESTED
        and (st not in _NEEDS_WORKLOAD or job.admission not in (A.ADMITTED, A.PENDING))
    ):
        actions.append(ClearReservation(current, m.clear_patch(wl, now=now)))
    if (
        not job.defn.priority_class
        and not (wl.get("spec") or {}).get("priorityClassRef")
        and m.spec_priority(wl) != job.defn.priority
    ):
        actions.append(SetPriority(current, job.defn.priority))
    return actions


def _create(job: Job, namespace: str, priority_of: Callable[[str], int | None]) -> Action:
    pc = job.defn.priority_class
    priority = job.defn.priority
    if pc:
        value = priority_of(pc)
        if value is None:
            return Blocked(f'WorkloadPriorityClass "{pc}" doesn\'t exist')
        priority = value
    return Create(m.workload_body(job, namespace=namespace, priority=priority))


__all__ = [
    "Action",
    "Blocked",
    "ClearReservation",
    "Create",
    "Delete",
    "Finish",
    "SetActive",
    "SetPriority",
    "plan",
]
