"""Kueue objects ↔ jobq concepts, as pure functions (DESIGN §8.1, §8.2).

Everything here takes plain JSON-like dicts as the Kubernetes API returns them and returns plain
values, so it is unit-tested against real Workload shapes recorded from Kueue v0.19 (tests/unit/kueue)
without any Kubernetes. The backend (`backend.py`) and the reconciler (`reconcile.py`) only move
objects between the API and these functions.

* `workload_name`, `workload_body`: the one Workload per job admission cycle that jobqd owns.
* `observe`: a Workload's conditions → what Kueue decided (`Observed`), the admission phase.
* `engine_steps`: what the engine must do about that, given the job's own view.
* `clear_patch`, `finish_patch`: the owner's `/status` writes (JSON merge patches with the full
  conditions list, as `notes/kueue-testenv-facts.md` proves works).
* `queue_view`: LocalQueue + ClusterQueue → the `QueueDef` and usage that QueueService shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from jobqd.domain import admission as amath
from jobqd.domain.model import Job
from jobqd.domain.quantity import parse_milli
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus

Obj = Mapping[str, Any]

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "jobqd"
JOB_ID_LABEL = "jobq.dev/job-id"
#: Set by jobqd when *it* deactivated the Workload (pause, cancel), so that it reactivates only
#: what it deactivated itself and never fights Kueue's own deactivations (e.g. maximum execution time).
DEACTIVATED_BY_ANNOTATION = "jobq.dev/deactivated"
MANAGED_SELECTOR = f"{MANAGED_BY}={MANAGER}"

POD_SET = "tasks"
CONTAINER = "task"
#: Never pulled nor run: tasks run on jobq-node processes, not in pods (DESIGN §8.4).
PLACEHOLDER_IMAGE = "jobq/task"

#: QuotaReserved=False reasons that mean "cannot be admitted until something is fixed" (DESIGN §8.2).
INADMISSIBLE_REASONS = frozenset({"Inadmissible", "Misconfigured", "Suspended"})
#: Eviction reasons after which the owner asks Kueue to requeue (as Kueue's own job framework does).
REQUEUE_REASONS = frozenset({"Preempted", "NodeFailures"})

_NAME = re.compile(r"^jobq-([0-9a-z]+)-([0-9]+)$")
_PREEMPTOR_UID = re.compile(r"\(UID: ([0-9a-f-]+)")

A = AdmissionPhase
J = JobStatus


# -- names and the Workload jobqd creates --------------------------------------------------------


def workload_name(job_id: str, generation: int) -> str:
    return f"jobq-{job_id}-{generation}"


def parse_workload_name(name: str) -> tuple[str, int] | None:
    """(job id, generation) of a jobqd Workload name, or None."""
    m = _NAME.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def unfinished_tasks(job: Job) -> int:
    c = job.counts
    return job.total - c[TaskStatus.COMPLETED] - c[TaskStatus.FAILED] - c[TaskStatus.CANCELED]


def pod_count(job: Job) -> int:
    """min(parallelism, unfinished tasks), at least 1 — what the job can use at once."""
    n = unfinished_tasks(job)
    if job.defn.parallelism > 0:
        n = min(n, job.defn.parallelism)
    return max(1, n)


def workload_body(job: Job, *, namespace: str, priority: int) -> dict[str, Any]:
    """The Workload of the job's current admission cycle (DESIGN §8.1).

    `priority` is the WorkloadPriorityClass value when the job names a class (Kueue does not fill
    `spec.priority` for plain Workloads, and its CEL rules require it next to the reference), else
    the job's own priority.
    """
    d = job.defn
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": CONTAINER,
                "image": PLACEHOLDER_IMAGE,
                "resources": {"requests": dict(sorted(d.resources_text.items()))},
            }
        ],
    }
    if d.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(d.node_selector.items()))
    spec: dict[str, Any] = {
        "queueName": d.queue,
        "active": True,
        "podSets": [{"name": POD_SET, "count": pod_count(job), "template": {"spec": pod_spec}}],
        "priority": priority,
    }
    if d.priority_class:
        spec["priorityClassRef"] = {"group": GROUP, "kind": "WorkloadPriorityClass", "name": d.priority_class}
    return {
        "apiVersion": API_VERSION,
        "kind": "Workload",
        "metadata": {
            "name": workload_name(job.id, job.generation),
            "namespace": namespace,
            # never kueue.x-k8s.io/job-uid: Kueue would finish the Workload as an orphan
            "labels": {MANAGED_BY: MANAGER, JOB_ID_LABEL: job.id},
        },
        "spec": spec,
    }


# -- reading objects -----------------------------------------------------------------------------


def meta(obj: Obj) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def rv_of(obj: Obj) -> str:
    return str(meta(obj).get("resourceVersion", ""))


def job_id_of(wl: Obj) -> str:
    labels = meta(wl).get("labels") or {}
    return str(labels.get(JOB_ID_LABEL, ""))


def conditions(obj: Obj) -> list[dict[str, Any]]:
    status = obj.get("status") or {}
    return [dict(c) for c in status.get("conditions") or [] if isinstance(c, Mapping)]


def condition(obj: Obj, type_: str) -> Mapping[str, Any] | None:
    for c in conditions(obj):
        if c.get("type") == type_:
            return c
    return None


def is_true(obj: Obj, type_: str) -> bool:
    c = condition(obj, type_)
    return c is not None and c.get("status") == "True"


def is_active(wl: Obj) -> bool:
    return (wl.get("spec") or {}).get("active", True) is not False


def spec_priority(wl: Obj) -> int | None:
    """The Workload's `spec.priority` (None when unset or not a number)."""
    value = (wl.get("spec") or {}).get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def deactivated_by_jobqd(wl: Obj) -> bool:
    return bool((meta(wl).get("annotations") or {}).get(DEACTIVATED_BY_ANNOTATION))


def is_terminating(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def has_reservation(wl: Obj) -> bool:
    return is_true(wl, "QuotaReserved")


def assigned_flavors(wl: Obj) -> tuple[str, ...]:
    """ResourceFlavors of `status.admission.podSetAssignments`, sorted, without duplicates."""
    admission = (wl.get("status") or {}).get("admission") or {}
    names: set[str] = set()
    for psa in admission.get("podSetAssignments") or []:
        for flavor in (psa.get("flavors") or {}).values():
            if flavor:
                names.add(str(flavor))
    return tuple(sorted(names))


def base_reason(reason: str) -> str:
    """Kueue writes `<Reason>DueTo<Cause>` (e.g. DeactivatedDueToMaximumExecutionTimeExceeded)."""
    return reason.split("DueTo", 1)[0]


def preemptor_uid(message: str) -> str:
    """The preemptor's UID in Kueue's "Preempted to accommodate a workload (UID: …" message."""
    m = _PREEMPTOR_UID.search(message)
    return m.group(1) if m else ""


# -- condition → phase (DESIGN §8.2) -------------------------------------------------------------


class Phase(StrEnum):
    """What Kueue says about a Workload. `EVICTED` = evicted and still holding quota: Kueue waits for
    the owner to stop the work and clear the reservation."""

    SUBMITTED = "submitted"
    INADMISSIBLE = "inadmissible"
    PENDING = "pending"
    ADMITTED = "admitted"
    EVICTED = "evicted"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class Observed:
    phase: Phase
    #: the deciding condition's reason (e.g. "Preempted", "Inadmissible", "Succeeded")
    reason: str = ""
    #: its message — becomes the job's status_reason
    message: str = ""
    #: ResourceFlavors assigned at admission
    flavors: tuple[str, ...] = ()


def observe(wl: Obj) -> Observed:
    """The admission phase of a Workload from its conditions.

    Finished=True → finished; Evicted=True while quota is still reserved → evicted (waiting for the
    owner); Admitted=True → admitted; QuotaReserved=True → pending; QuotaReserved=False with reason
    Inadmissible/Misconfigured/Suspended → inadmissible; anything else → submitted, including an
    empty status (Kueue can park a Workload without writing any condition). An Evicted=True left
    over after the owner cleared the reservation does not count: Kueue resets it only at the next
    admission.
    """
    finished = condition(wl, "Finished")
    if finished is not None and finished.get("status") == "True":
        return Observed(Phase.FINISHED, str(finished.get("reason", "")), str(finished.get("message", "")))
    reserved = has_reservation(wl)
    evicted = condition(wl, "Evicted")
    if reserved and evicted is not None and evicted.get("status") == "True":
        return Observed(
            Phase.EVICTED,
            str(evicted.get("reason", "")),
            str(evicted.get("message", "")),
            assigned_flavors(wl),
        )
    qr = condition(wl, "QuotaReserved")
    if is_true(wl, "Admitted"):
        qr_message = str(qr.get("message", "")) if qr is not None else ""
        return Observed(Phase.ADMITTED, "Admitted", qr_message, assigned_flavors(wl))
    if reserved and qr is not None:
        return Observed(
            Phase.PENDING, str(qr.get("reason", "")), str(qr.get("message", "")), assigned_flavors(wl)
        )
    if qr is not None and qr.get("status") == "False":
        reason, message = str(qr.get("reason", "")), str(qr.get("message", ""))
        if reason in INADMISSIBLE_REASONS:
            return Observed(Phase.INADMISSIBLE, reason, message)
        return Observed(Phase.SUBMITTED, reason, message)
    return Observed(Phase.SUBMITTED)


# -- what the engine does about it ---------------------------------------------------------------


class Step(StrEnum):
    SET_PHASE = "set-phase"
    ADMIT = "admit"
    EVICT = "evict"
    #: after evicting a pause-requested job: with no task left running it is paused now
    SETTLE = "settle"


@dataclass(frozen=True, slots=True)
class EngineStep:
    step: Step
    phase: AdmissionPhase = A.SUBMITTED
    reason: str = ""
    flavor: str = ""


#: Job statuses whose admission follows the Workload. Paused, cancel-requested and terminal jobs
#: no longer compete: jobqd only does its owner duties for their Workloads.
FOLLOWING = frozenset({J.QUEUED, J.ACTIVE, J.PAUSE_REQUESTED})


def engine_steps(
    *, status: JobStatus, admission: AdmissionPhase, reason: str, obs: Observed
) -> list[EngineStep]:
    """What the engine must do so that the job's admission matches the Workload's phase.

    Mirrors the embedded backend: admitted jobs pass through pending (quota reserved) on their way
    to admitted; losing admission for any reason interrupts the job's tasks (an eviction, not a
    failure) and the reason is Kueue's own message.
    """
    if status not in FOLLOWING:
        return []
    held = admission in (A.ADMITTED, A.PENDING)
    msg = obs.message
    steps: list[EngineStep] = []
    if obs.phase in (Phase.FINISHED, Phase.EVICTED):
        if held:
            why = msg or (
                f"Workload finished outside jobqd ({obs.reason})"
                if obs.phase is Phase.FINISHED
                else "evicted"
            )
            steps.append(EngineStep(Step.EVICT, A.SUBMITTED, why))
            if status is J.PAUSE_REQUESTED:
                steps.append(EngineStep(Step.SETTLE))
        return steps
    if obs.phase is Phase.ADMITTED:
        if admission is A.ADMITTED:
            return []
        if admission is not A.PENDING:
            steps.append(EngineStep(Step.SET_PHASE, A.PENDING, msg or "quota reserved"))
        steps.append(EngineStep(Step.ADMIT, A.ADMITTED, "", ",".join(obs.flavors)))
        return steps
    if obs.phase is Phase.PENDING:
        if admission is A.ADMITTED:
            return [EngineStep(Step.EVICT, A.PENDING, msg or "admission withdrawn; quota still reserved")]
        if admission is A.PENDING and (not msg or msg == reason):
            return []
        return [EngineStep(Step.SET_PHASE, A.PENDING, msg)]
    target = A.INADMISSIBLE if obs.phase is Phase.INADMISSIBLE else A.SUBMITTED
    if held:
        steps.append(EngineStep(Step.EVICT, A.SUBMITTED, msg or "quota reservation lost"))
        if target is A.SUBMITTED:
            return steps
    elif admission is target and (not msg or msg == reason):
        return []
    steps.append(EngineStep(Step.SET_PHASE, target, msg))
    return steps


# -- owner writes (DESIGN §8.3) ------------------------------------------------------------------


def _now_text(now: float) -> str:
    return datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conds: list[dict[str, Any]],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: float,
) -> None:
    """Kubernetes' meta.SetStatusCondition: lastTransitionTime moves only when status changes."""
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") != status or not c.get("lastTransitionTime"):
                c["lastTransitionTime"] = _now_text(now)
            c.update(status=status, reason=reason, message=message[:32768], observedGeneration=generation)
            return
    conds.append(
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message[:32768],
            "observedGeneration": generation,
            "lastTransitionTime": _now_text(now),
        }
    )


def _generation(wl: Obj) -> int:
    return int(meta(wl).get("generation") or 1)


def clear_patch(wl: Obj, *, now: float) -> dict[str, Any]:
    """The owner's answer to an eviction once no task runs any more: release the reservation.

    One JSON merge patch on `/status`, optimistically locked by `metadata.resourceVersion`, with the
    *full* conditions list (a merge patch replaces lists): Evicted/Preempted kept,
    QuotaReserved=False Pending, Admitted=False NoReservation, Requeued=True for a preemption (False
    for any other eviction, as Kueue's own job framework does), and `admission: null`. Kueue then
    requeues it.
    """
    conds = conditions(wl)
    gen = _generation(wl)
    ev = condition(wl, "Evicted") or {}
    reason, message = str(ev.get("reason", "")), str(ev.get("message", ""))
    set_condition(
        conds,
        type_="QuotaReserved",
        status="False",
        reason="Pending",
        message=message,
        generation=gen,
        now=now,
    )
    set_condition(
        conds,
        type_="Admitted",
        status="False",
        reason="NoReservation",
        message="The workload has no reservation",
        generation=gen,
        now=now,
    )
    set_condition(
        conds,
        type_="Requeued",
        status="True" if base_reason(reason) in REQUEUE_REASONS else "False",
        reason=reason or "Evicted",
        message=message,
        generation=gen,
        now=now,
    )
    return {"metadata": {"resourceVersion": rv_of(wl)}, "status": {"conditions": conds, "admission": None}}


def finish_patch(wl: Obj, *, succeeded: bool, message: str, now: float) -> dict[str, Any]:
    """Finished=True (Succeeded/Failed): Kueue releases the quota and keeps the Workload as a record."""
    conds = conditions(wl)
    set_condition(
        conds,
        type_="Finished",
        status="True",
        reason="Succeeded" if succeeded else "Failed",
        message=message,
        generation=_generation(wl),
        now=now,
    )
    return {"metadata": {"resourceVersion": rv_of(wl)}, "status": {"conditions": conds}}


def active_patch(active: bool, *, why: str = "") -> dict[str, Any]:
    """spec.active, with the annotation that says jobqd (not Kueue) deactivated it."""
    return {
        "metadata": {"annotations": {DEACTIVATED_BY_ANNOTATION: None if active else (why or "jobqd")}},
        "spec": {"active": active},
    }


def priority_patch(priority: int) -> dict[str, Any]:
    """spec.priority of a Workload without a priorityClassRef (Kueue lets the owner change it)."""
    return {"spec": {"priority": priority}}


def finish_message(job: Job) -> tuple[bool, str]:
    """(succeeded, message) for the Finished condition of a terminal job."""
    if job.status is J.COMPLETED:
        return True, "job completed"
    if job.status is J.CANCELED:
        return False, f"job canceled: {job.reason}" if job.reason else "job canceled"
    return False, f"job failed: {job.reason}" if job.reason else "job failed"


# -- queues (QueueService in kueue mode) ---------------------------------------------------------

_STOP = {"Hold": amath.QueueState.HELD, "HoldAndDrain": amath.QueueState.DRAINING}


def _milli(text: object) -> int:
    try:
        return parse_milli(str(text))
    except ValueError:
        return 0


def _sum_flavor_resources(entries: Sequence[Mapping[str, Any]] | None, key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for flavor in entries or []:
        for res in flavor.get("resources") or []:
            name = str(res.get("name", ""))
            if name:
                out[name] = out.get(name, 0) + _milli(res.get(key, "0"))
    return out


def queue_view(lq: Obj, cq: Obj | None, *, inadmissible: int = 0) -> tuple[amath.QueueDef, dict[str, object]]:
    """A LocalQueue (with its ClusterQueue) as QueueService shows it.

    Quotas are the ClusterQueue's nominal quotas summed over its flavors; usage and the counts are
    the LocalQueue's own status as Kueue reports it. `inadmissible` is jobqd's count of this queue's
    inadmissible jobs (Kueue counts them among the pending ones).
    """
    lq_spec = lq.get("spec") or {}
    lq_status = lq.get("status") or {}
    cq_spec = (cq or {}).get("spec") or {}
    quotas: dict[str, int] = {}
    for group in cq_spec.get("resourceGroups") or []:
        for res, amount in _sum_flavor_resources(group.get("flavors"), "nominalQuota").items():
            quotas[res] = quotas.get(res, 0) + amount
    strategy = (
        amath.Strategy.STRICT_FIFO
        if cq_spec.get("queueingStrategy") == "StrictFIFO"
        else amath.Strategy.BEST_EFFORT_FIFO
    )
    within = ((cq_spec.get("preemption") or {}).get("withinClusterQueue")) or "Never"
    preemption = amath.Preemption.NEVER if within == "Never" else amath.Preemption.LOWER_PRIORITY
    state = _STOP.get(str(lq_spec.get("stopPolicy", "")), amath.QueueState.ACTIVE)
    if state is amath.QueueState.ACTIVE:
        state = _STOP.get(str(cq_spec.get("stopPolicy", "")), amath.QueueState.ACTIVE)
    pending = int(lq_status.get("pendingWorkloads") or 0)
    usage: dict[str, object] = {
        "pending": max(0, pending - inadmissible),
        "admitted": int(lq_status.get("admittedWorkloads") or 0),
        "inadmissible": inadmissible,
        "usage": _sum_flavor_resources(lq_status.get("flavorsUsage"), "total"),
        "cluster_queue": str(lq_spec.get("clusterQueue", "")),
    }
    return amath.QueueDef(name_of(lq), quotas, strategy, preemption, state), usage


def priority_value(wpc: Obj | None) -> int | None:
    """A WorkloadPriorityClass's `value` (None when the class is unknown)."""
    if wpc is None:
        return None
    try:
        return int(wpc.get("value", 0))
    except (TypeError, ValueError):
        return 0


def flavor_node_labels(rf: Obj) -> dict[str, str]:
    labels = (rf.get("spec") or {}).get("nodeLabels") or {}
    return {str(k): str(v) for k, v in labels.items()}


__all__ = [
    "API_VERSION",
    "GROUP",
    "JOB_ID_LABEL",
    "MANAGED_SELECTOR",
    "VERSION",
    "EngineStep",
    "Observed",
    "Phase",
    "Step",
    "active_patch",
    "clear_patch",
    "engine_steps",
    "finish_message",
    "finish_patch",
    "observe",
    "queue_view",
    "workload_body",
    "workload_name",
]
