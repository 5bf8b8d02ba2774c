"""jobqd's writes as the owner of its Workloads (DESIGN §8.3): carry out one planned action.

The plan (`reconcile.plan`) decides; this module only talks to the API and decides which answers
mean "done" — a create that finds the Workload already there (409), a delete or patch of one that
is gone (404) — and which mean "try again later" (everything transient, including a 409 Conflict
on a status write whose resourceVersion went stale: the watch brings the new version and the
next pass plans again from it).

Status writes are JSON merge patches on `/status` with `metadata.resourceVersion` and the full
conditions list — not server-side apply: SSA with `admission: null` stores `admission: {}`, which
Kueue's webhook rejects (notes/kueue-testenv-facts.md).
"""

from __future__ import annotations

from typing import Any

import structlog

from jobqd.admission.kueue import mapping as m
from jobqd.admission.kueue.kubeapi import KubeApi, KubeError
from jobqd.admission.kueue.reconcile import (
    Action,
    ClearReservation,
    Create,
    Delete,
    Finish,
    SetActive,
    SetPriority,
)

log = structlog.get_logger("jobqd.kueue.owner")

WORKLOADS = "workloads"


class Stale(Exception):
    """A status write lost its optimistic lock: wait for the watch to bring the newer object."""


async def carry_out(api: KubeApi, namespace: str, action: Action, *, job_id: str) -> dict[str, Any] | None:
    """Perform `action`; the object the server returned, or None when there is nothing to report.

    Raises KubeError/KubeUnavailable for what should be retried, `Stale` for a lost lock.
    """
    if isinstance(action, Create):
        name = m.name_of(action.body)
        try:
            obj = await api.create(namespace, WORKLOADS, action.body)
        except KubeError as err:
            if err.status == 409 and err.reason == "AlreadyExists":
                return None
            raise
        spec = action.body["spec"]
        log.info(
            "Workload created",
            job_id=job_id,
            workload=name,
            queue=spec["queueName"],
            count=spec["podSets"][0]["count"],
            priority=spec["priority"],
        )
        return obj
    if isinstance(action, Delete):
        try:
            await api.delete(namespace, WORKLOADS, action.name, uid=action.uid)
        except KubeError as err:
            if err.status in (404, 409):  # gone already, or a newer object took the name
                return None
            raise
        log.info("Workload deleted", job_id=job_id, workload=action.name, why=action.why)
        return None
    if isinstance(action, SetActive):
        try:
            obj = await api.merge_patch(
                namespace, WORKLOADS, action.name, m.active_patch(action.active, why=action.why)
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        log.info(
            "Workload active set", job_id=job_id, workload=action.name, active=action.active, why=action.why
        )
        return obj
    if isinstance(action, SetPriority):
        try:
            obj = await api.merge_patch(namespace, WORKLOADS, action.name, m.priority_patch(action.priority))
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        log.info("Workload priority set", job_id=job_id, workload=action.name, priority=action.priority)
        return obj
    if isinstance(action, ClearReservation | Finish):
        try:
            obj = await api.merge_patch_status(namespace, WORKLOADS, action.name, action.patch)
        except KubeError as err:
            if err.status == 404:
                return None
            if err.status == 409:
                raise Stale(str(err)) from err
            raise
        if isinstance(action, ClearReservation):
            requeued = m.condition(obj, "Requeued") or {}
            log.info(
                "Workload reservation cleared after eviction",
                job_id=job_id,
                workload=action.name,
                requeued=requeued.get("status"),
                reason=requeued.get("reason"),
            )
        else:
            finished = m.condition(obj, "Finished") or {}
            log.info("Workload finished", job_id=job_id, workload=action.name, reason=finished.get("reason"))
        return obj
    raise TypeError(f"not a Kubernetes action: {action!r}")
