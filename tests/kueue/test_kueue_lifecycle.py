"""Pause, resume, cancel and requeue in kueue mode: what jobqd does to the job's Workload."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from jobq.v1 import job_service_pb2 as js
from jobq.v1 import types_pb2 as pb

from tests.kueue.conftest import KueueFarm, kcondition
from tests.support.commands import gated

Farm = Callable[..., Awaitable[KueueFarm]]


async def test_pause_deactivates_and_releases_quota_resume_reactivates(
    kueue_farm: Farm, tmp_path: Path
) -> None:
    farm = await kueue_farm()
    d = farm.jobqd()
    farm.node(d.address, "n1", "--cpu", "8", slots=1)
    await farm.until(lambda: farm.online(d) == 1, what="node online")
    first, rest = tmp_path / "first", tmp_path / "rest"
    job = farm.submit(
        d,
        pb.JobSpec(
            name="p",
            queue=farm.q.local_queue,
            resources={"cpu": "1"},
            parallelism=1,
            tasks=[gated(first), gated(rest)],
        ),
    )
    wl_name = f"jobq-{job.id}-1"
    await farm.until(lambda: farm.job(d, job.id).task_counts.active == 1, what="first task running")
    d.jobs.PauseJobs(js.JobActionRequest(job_ids=[job.id]))
    assert farm.job(d, job.id).status == pb.JOB_STATUS_PAUSE_REQUESTED
    assert farm.workload(wl_name)["spec"]["active"] is True  # type: ignore[index]  # tasks still run
    first.touch()  # the running task finishes; the job is paused then
    await farm.until(lambda: farm.job(d, job.id).status == pb.JOB_STATUS_PAUSED, what="paused")

    def released() -> dict | None:
        wl = farm.workload(wl_name)
        qr = kcondition(wl, "QuotaReserved")
        return wl if wl and wl["spec"]["active"] is False and qr and qr["status"] == "False" else None

    wl = await farm.until(released, what="Workload inactive and its quota released")
    assert kcondition(wl, "Requeued")["status"] == "False"  # type: ignore[index]
    await farm.until(lambda: set(farm.cq_usage().values()) <= {"0"}, what="usage zero while paused")
    assert farm.job(d, job.id).task_counts.completed == 1

    d.jobs.ResumeJobs(js.JobActionRequest(job_ids=[job.id]))
    await farm.until(lambda: farm.workload(wl_name)["spec"]["active"] is True, what="reactivated")  # type: ignore[index]
    rest.touch()
    await farm.until(lambda: farm.job(d, job.id).status == pb.JOB_STATUS_COMPLETED, what="completed")
    assert [w["metadata"]["name"] for w in farm.workloads()] == [wl_name]


async def test_cancel_finishes_the_workload_and_requeue_starts_a_new_one(
    kueue_farm: Farm, tmp_path: Path
) -> None:
    farm = await kueue_farm()
    d = farm.jobqd()
    farm.node(d.address, "n1", "--cpu", "8")
    await farm.until(lambda: farm.online(d) == 1, what="node online")
    gate = tmp_path / "gate"
    job = farm.submit(
        d, pb.JobSpec(name="c", queue=farm.q.local_queue, resources={"cpu": "1"}, tasks=[gated(gate)])
    )
    await farm.until(lambda: farm.job(d, job.id).task_counts.active == 1, what="running")
    d.jobs.CancelJobs(js.JobActionRequest(job_ids=[job.id]))
    await farm.until(lambda: farm.job(d, job.id).status == pb.JOB_STATUS_CANCELED, what="canceled")

    def finished(name: str, reason: str) -> dict | None:
        wl = farm.workload(name)
        c = kcondition(wl, "Finished")
        return wl if c and c["status"] == "True" and c["reason"] == reason else None

    wl = await farm.until(lambda: finished(f"jobq-{job.id}-1", "Failed"), what="Finished=True Failed")
    assert wl["spec"]["active"] is False
    assert kcondition(wl, "Finished")["message"].startswith("job canceled")  # type: ignore[index]
    await farm.until(lambda: set(farm.cq_usage().values()) <= {"0"}, what="usage zero")

    gate.touch()
    d.jobs.RequeueJobs(js.JobActionRequest(job_ids=[job.id]))
    await farm.until(
        lambda: farm.job(d, job.id).status == pb.JOB_STATUS_COMPLETED, what="requeued job completed"
    )
    assert farm.job(d, job.id).generation == 2
    await farm.until(lambda: finished(f"jobq-{job.id}-2", "Succeeded"), what="generation 2 Finished")
    # the earlier cycle's Workload is gone: one Workload per job
    await farm.until(
        lambda: [w["metadata"]["name"] for w in farm.workloads()] == [f"jobq-{job.id}-2"],
        what="old one deleted",
    )
