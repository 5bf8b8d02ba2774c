"""KueueAdmission with a real engine (and an in-memory writer): real Workload shapes arriving from
the watch move the job's admission as DESIGN §8.2 says; queue names, queue views, flavor labels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from jobqd.admission.kueue import mapping as m
from jobqd.admission.kueue.backend import UNKNOWN_FLAVOR_LABEL, KueueAdmission
from jobqd.admission.kueue.kubeapi import KubeError
from jobqd.domain.errors import InvalidArgument, NotFound
from jobqd.domain.model import CommandDef, Job, JobDef, TaskDef
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus
from jobqd.engine import Engine, SubmitItem
from jobqd.settings import AdmissionSettings
from jobqd.store.writer import WriteSet

Shape = Callable[[str], dict[str, Any]]
A = AdmissionPhase


class MemoryWriter:
    def __init__(self) -> None:
        self.sets: list[WriteSet] = []

    def submit(self, ws: WriteSet) -> asyncio.Future[None]:
        self.sets.append(ws)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class Farm:
    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.kueue = KueueAdmission(
            AdmissionSettings(mode="kueue", namespace="ns"), running_attempts=lambda j: self.running.get(j, 0)
        )
        self.engine = Engine(writer=MemoryWriter(), admission=self.kueue)

    async def submit(self, **defn: Any) -> Job:
        tasks = tuple(
            TaskDef(name=str(i), type="noop", commands=(CommandDef("noop", {}),))
            for i in range(defn.pop("n", 2))
        )
        [(job, _)] = await self.engine.submit(
            [SubmitItem(JobDef(name="j", queue="lq", tasks=tasks, **defn), request_id="", digest="")]
        )
        return job

    def event(self, job: Job, wl: dict[str, Any], type_: str = "MODIFIED") -> None:
        wl["metadata"]["name"] = m.workload_name(job.id, job.generation)
        wl["metadata"]["labels"] = {m.MANAGED_BY: m.MANAGER, m.JOB_ID_LABEL: job.id}
        self.kueue.workloads.apply(type_, wl)


def start_task(farm: Farm, job: Job, pos: int) -> None:
    """What dispatch does, minus the node."""
    ws = WriteSet()
    task = job.task(pos)
    task.attempt += 1
    job.running += 1
    farm.engine._set_task(ws, job, task, TaskStatus.ACTIVE, action="dispatch")
    farm.engine.settle(ws, job)
    farm.running[job.id] = farm.running.get(job.id, 0) + 1


async def test_admitted_then_preempted_then_readmitted(shape: Shape) -> None:
    farm = Farm()
    job = await farm.submit()
    assert job.id in farm.kueue._queued  # to be planned: its Workload is created
    farm.event(job, shape("pending_insufficient_quota"), "ADDED")
    assert job.admission is A.SUBMITTED and "insufficient unused quota" in job.reason

    farm.event(job, shape("admitted"))
    assert job.admission is A.ADMITTED and job.flavor == "rf-cap-8cb780" and job.reason == ""
    start_task(farm, job, 0)
    assert job.status is JobStatus.ACTIVE

    # the preemptor is one of ours: the victim's reason names its job
    other = await farm.submit()
    preemptor = shape("preemptor_pending_preemption")
    preemptor["metadata"]["uid"] = "f683cd84-3826-4142-b33e-071f9519e609"
    farm.event(other, preemptor, "ADDED")
    farm.event(job, shape("evicted_preempted_waiting_for_owner"))
    assert job.admission is A.SUBMITTED and job.status is JobStatus.QUEUED
    assert job.reason.startswith("Preempted to accommodate a workload")
    assert job.reason.endswith(f"(preempted by job {other.id})")
    task = job.task(0)
    assert task.status is TaskStatus.QUEUED and task.interruptions == 1 and not task.failed_by
    assert job.id in farm.kueue._evicted

    farm.kueue._queued.clear()
    watcher = asyncio.create_task(farm.kueue._watch_evictions())
    poll = farm.kueue.timing.eviction_poll_s
    try:
        await asyncio.sleep(5 * poll)  # several polls: a negative needs a window
        assert job.id not in farm.kueue._queued  # the aborted attempt still runs: nothing to clear yet
        farm.running[job.id] = 0
        deadline = asyncio.get_running_loop().time() + 2.0
        while job.id not in farm.kueue._queued:  # now the reconciler is asked to clear the reservation
            assert asyncio.get_running_loop().time() < deadline, (
                "evicted job not planned after its attempts ended"
            )
            await asyncio.sleep(poll)
    finally:
        watcher.cancel()

    farm.event(job, shape("after_owner_clear"))
    assert job.admission is A.SUBMITTED and job.id not in farm.kueue._evicted
    farm.event(job, shape("readmitted_after_preemption"))
    assert job.admission is A.ADMITTED


async def test_inadmissible_then_admitted(shape: Shape) -> None:
    farm = Farm()
    job = await farm.submit()
    farm.event(job, shape("inadmissible_missing_localqueue"), "ADDED")
    assert job.admission is A.INADMISSIBLE and job.reason == "LocalQueue lq-missing doesn't exist"
    farm.event(job, shape("admitted"))
    assert job.admission is A.ADMITTED


async def test_workload_deleted_under_an_admitted_job_evicts_it(shape: Shape) -> None:
    farm = Farm()
    job = await farm.submit()
    farm.event(job, shape("admitted"), "ADDED")
    start_task(farm, job, 0)
    farm.event(job, shape("admitted"), "DELETED")
    assert job.admission is A.SUBMITTED and job.task(0).status is TaskStatus.QUEUED
    assert "was deleted" in job.reason


async def test_events_of_an_earlier_cycle_or_unknown_job_do_not_touch_jobs(shape: Shape) -> None:
    farm = Farm()
    job = await farm.submit()
    wl = shape("admitted")
    wl["metadata"]["name"] = m.workload_name(job.id, 7)
    wl["metadata"]["labels"] = {m.MANAGED_BY: m.MANAGER, m.JOB_ID_LABEL: job.id}
    farm.kueue.workloads.apply("ADDED", wl)
    assert job.admission is A.SUBMITTED
    orphan = shape("admitted")
    orphan["metadata"]["labels"] = {m.MANAGED_BY: m.MANAGER, m.JOB_ID_LABEL: "0000000000000"}
    farm.kueue.workloads.apply("ADDED", orphan)
    assert "0000000000000" in farm.kueue._queued  # planned: it is deleted


def test_any_valid_local_queue_name_is_accepted() -> None:
    kueue = KueueAdmission(AdmissionSettings(mode="kueue"), running_attempts=lambda j: 0)
    kueue.check_queue("a-queue-that-does-not-exist-yet")
    with pytest.raises(InvalidArgument):
        kueue.check_queue("Not_A_Name")


def test_flavor_labels_come_from_the_admitted_resource_flavor(shape: Shape) -> None:
    kueue = KueueAdmission(AdmissionSettings(mode="kueue"), running_attempts=lambda j: 0)
    job = Job(job_id="01abcdefghjkm", seq=1, defn=JobDef(name="j"), owner="", submit_ts=0.0)
    assert kueue.flavor_labels(job) == {}  # not admitted through a flavor
    job.flavor = "rf-cap-73e45e"
    assert kueue.flavor_labels(job) == {UNKNOWN_FLAVOR_LABEL: "rf-cap-73e45e"}  # not known yet: run nowhere
    kueue.flavors.apply("ADDED", shape("resourceflavor_labels"))
    assert kueue.flavor_labels(job) == {"pool": "b", "zone": "z1"}


def test_queues_are_the_namespaces_local_queues(shape: Shape) -> None:
    kueue = KueueAdmission(
        AdmissionSettings(mode="kueue", namespace="cap-73e45e"), running_attempts=lambda j: 0
    )
    kueue.local_queues.apply("ADDED", shape("localqueue_busy"))
    kueue.cluster_queues.apply("ADDED", shape("clusterqueue_busy"))
    [(d, usage)] = kueue.queues()
    assert d.name == "lq" and usage["admitted"] == 1 and usage["cluster_queue"] == "cq-cap-73e45e"
    assert kueue.queue("lq")[0] == d
    with pytest.raises(NotFound):
        kueue.queue("missing")


class PatchApi:
    """Only merge patches, answered from `answers` (an exception to raise, or the patched object)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.patches: list[tuple[str, dict[str, Any]]] = []

    async def merge_patch(self, namespace: str, plural: str, name: str, patch: dict[str, Any]) -> Any:
        self.patches.append((name, patch))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_set_priority_patches_the_workload_and_a_refusal_is_not_retried(shape: Shape) -> None:
    farm = Farm()
    job = await farm.submit()
    wl = shape("pending_insufficient_quota")
    wl["spec"].pop("priorityClassRef")
    wl["spec"]["priority"] = 0
    farm.event(job, wl, "ADDED")
    name = m.workload_name(job.id, job.generation)
    refused = KubeError(422, "Invalid", "spec.priority: Forbidden")
    api = PatchApi(refused, {"metadata": {"name": name, "resourceVersion": "9"}})
    farm.kueue._api = api  # type: ignore[assignment]

    farm.kueue._queued.clear()
    await farm.engine.set_priority(job.id, 5)
    assert job.id in farm.kueue._queued  # job_changed: planned again
    await farm.kueue._reconcile_job(job.id)  # refused: logged, not raised (no retry loop)
    assert api.patches == [(name, {"spec": {"priority": 5}})]
    await farm.kueue._reconcile_job(job.id)
    assert len(api.patches) == 1  # the same refused value is not asked again

    await farm.engine.set_priority(job.id, 6)  # a newer change is tried
    await farm.kueue._reconcile_job(job.id)
    assert api.patches[1:] == [(name, {"spec": {"priority": 6}})]


async def test_set_priority_retries_a_transient_failure(shape: Shape) -> None:
    farm = Farm()
    job = await farm.submit()
    wl = shape("admitted")
    wl["spec"].pop("priorityClassRef")
    farm.event(job, wl, "ADDED")
    farm.kueue._api = PatchApi(KubeError(500, "InternalError", "webhook down"))  # type: ignore[assignment]
    await farm.engine.set_priority(job.id, 1)
    with pytest.raises(KubeError):  # the worker schedules a retry for it
        await farm.kueue._reconcile_job(job.id)
