"""jobqd keeps its Workloads right through faults: an API server outage, a watch whose
resourceVersion has expired (410 Gone), and a jobqd restart with Workloads changed behind its back."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from jobq.v1 import queue_service_pb2 as qs
from jobq.v1 import types_pb2 as pb

from tests.kueue.conftest import KueueFarm, kcondition
from tests.support.commands import gated, sh

Farm = Callable[..., Awaitable[KueueFarm]]


def log_events(farm: KueueFarm, event: str) -> list[dict]:
    return [rec for d in farm.jobqds for rec in d.log_records(event)]


def finished_ok(wl: dict | None) -> bool:
    c = kcondition(wl, "Finished")
    return bool(c and c["status"] == "True" and c["reason"] == "Succeeded")


async def test_api_server_outage_keeps_jobs_running_and_reconciles_on_return(
    kueue_farm: Farm, tmp_path: Path
) -> None:
    farm = await kueue_farm(quota={"cpu": "4", "memory": "8Gi"})
    d = farm.jobqd()
    farm.node(d.address, "n1", "--cpu", "8", slots=3)
    await farm.until(lambda: farm.online(d) == 1, what="node online")
    gate_a, gate_b = tmp_path / "a", tmp_path / "b"
    lq = farm.q.local_queue
    a = farm.submit(d, pb.JobSpec(name="a", queue=lq, resources={"cpu": "2"}, tasks=[gated(gate_a)]))
    await farm.until(lambda: farm.job(d, a.id).task_counts.active == 1, what="a running")
    b = farm.submit(d, pb.JobSpec(name="b", queue=lq, resources={"cpu": "4"}, tasks=[gated(gate_b)]))
    await farm.until(lambda: "insufficient" in farm.job(d, b.id).status_reason, what="b waiting for quota")

    await asyncio.to_thread(farm.env.stop_apiserver)
    try:
        # jobqd keeps serving; the admitted job runs to completion; a new job is accepted
        gate_a.touch()
        await farm.until(lambda: farm.job(d, a.id).status == pb.JOB_STATUS_COMPLETED, what="a completed")
        # c runs to completion on its own: if Kueue admits it before a's Finished frees the quota
        # (a race the test cannot order), b waits for c, so c must not wait for b's gate
        c = farm.submit(
            d,
            pb.JobSpec(
                name="c", queue=lq, resources={"cpu": "1"}, tasks=[pb.TaskSpec(commands=[sh("true")])]
            ),
        )
        assert farm.job(d, c.id).admission == pb.ADMISSION_PHASE_SUBMITTED
        assert farm.job(d, b.id).admission == pb.ADMISSION_PHASE_SUBMITTED  # nothing is admitted blind
        assert d.queues.GetQueue(qs.GetQueueRequest(name=lq)).queue.name == lq
    finally:
        await asyncio.to_thread(farm.env.start_apiserver)  # Kueue restarted with it

    # back: a's Workload gets Finished (it was written during the outage), b is admitted and runs
    await farm.until(lambda: finished_ok(farm.workload(f"jobq-{a.id}-1")), timeout=60, what="a Finished")
    await farm.until(
        lambda: farm.job(d, b.id).task_counts.active == 1, timeout=60, what="b admitted, running"
    )
    gate_b.touch()
    for j in (b, c):
        await farm.until(
            lambda j=j: finished_ok(farm.workload(f"jobq-{j.id}-1")),
            timeout=60,
            what=f"{j.spec.name} Finished",
        )
        assert farm.job(d, j.id).status == pb.JOB_STATUS_COMPLETED
    assert sorted(w["metadata"]["name"] for w in farm.workloads()) == sorted(
        f"jobq-{j.id}-1" for j in (a, b, c)
    )
    await farm.until(lambda: set(farm.cq_usage().values()) <= {"0"}, what="usage zero")
    assert log_events(farm, "watch broke; resuming")
    assert d.proc is not None and d.proc.poll() is None


async def test_expired_resource_version_relists_without_losing_an_update(kueue_farm: Farm) -> None:
    """While jobqd cannot watch (stopped with SIGSTOP), Kueue admits its Workload and the API server
    restarts with a fresh watch cache: jobqd's resourceVersion is gone (410), it relists and so
    still sees the admission."""
    farm = await kueue_farm()
    d = farm.jobqd()
    farm.node(d.address, "n1", "--cpu", "8")
    await farm.until(lambda: farm.online(d) == 1, what="node online")
    job = farm.submit(
        d,
        pb.JobSpec(
            name="x", queue="lq-later", resources={"cpu": "1"}, tasks=[pb.TaskSpec(commands=[sh("true")])]
        ),
    )
    await farm.until(
        lambda: farm.job(d, job.id).admission == pb.ADMISSION_PHASE_INADMISSIBLE, what="inadmissible"
    )
    assert d.proc is not None
    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        farm.create_local_queue("lq-later")
        await farm.until(
            lambda: kcondition(farm.workload(f"jobq-{job.id}-1"), "Admitted"),
            what="Kueue admits the Workload",
        )
        await asyncio.to_thread(farm.env.restart_apiserver)
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    await farm.until(
        lambda: farm.job(d, job.id).status == pb.JOB_STATUS_COMPLETED, timeout=60, what="completed"
    )
    gone = [
        e
        for e in log_events(farm, "watch expired (410 Gone); relisting")
        if e.get("resource", "").startswith("workloads")
    ]
    assert gone, "the Workload watch did not relist after 410"
    await farm.until(lambda: finished_ok(farm.workload(f"jobq-{job.id}-1")), what="Finished")


async def test_restarted_jobqd_adopts_workloads_deletes_orphans_and_creates_missing(
    kueue_farm: Farm, tmp_path: Path
) -> None:
    farm = await kueue_farm(quota={"cpu": "4", "memory": "8Gi"})
    d = farm.jobqd()
    farm.node(d.address, "n1", "--cpu", "8", slots=3)
    await farm.until(lambda: farm.online(d) == 1, what="node online")
    gate_a, gate_b = tmp_path / "a", tmp_path / "b"
    lq = farm.q.local_queue
    a = farm.submit(d, pb.JobSpec(name="a", queue=lq, resources={"cpu": "2"}, tasks=[gated(gate_a)]))
    await farm.until(lambda: farm.job(d, a.id).task_counts.active == 1, what="a running")
    b = farm.submit(d, pb.JobSpec(name="b", queue=lq, resources={"cpu": "4"}, tasks=[gated(gate_b)]))
    await farm.until(lambda: farm.workload(f"jobq-{b.id}-1"), what="b's Workload")
    uid_a = farm.workload(f"jobq-{a.id}-1")["metadata"]["uid"]  # type: ignore[index]
    uid_b = farm.workload(f"jobq-{b.id}-1")["metadata"]["uid"]  # type: ignore[index]

    d.kill()
    farm.delete_workload(f"jobq-{b.id}-1")
    orphan = "jobq-0000000000000-1"
    farm.create_workload(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "Workload",
            "metadata": {
                "name": orphan,
                "labels": {"app.kubernetes.io/managed-by": "jobqd", "jobq.dev/job-id": "0000000000000"},
            },
            "spec": {
                "queueName": lq,
                "podSets": [
                    {
                        "name": "tasks",
                        "count": 1,
                        "template": {"spec": {"containers": [{"name": "task", "image": "jobq/task"}]}},
                    }
                ],
            },
        }
    )
    d.start()

    def reconciled() -> bool:
        names = {w["metadata"]["name"]: w["metadata"]["uid"] for w in farm.workloads()}
        return set(names) == {f"jobq-{a.id}-1", f"jobq-{b.id}-1"} and names[f"jobq-{b.id}-1"] != uid_b

    await farm.until(reconciled, what="orphan deleted, missing Workload created")
    assert farm.workload(f"jobq-{a.id}-1")["metadata"]["uid"] == uid_a  # type: ignore[index]  # adopted
    [task_a] = farm.tasks(d, a.id)
    assert task_a.status == pb.TASK_STATUS_ACTIVE and task_a.attempt == 1  # kept running throughout
    gate_a.touch()
    await farm.until(lambda: farm.job(d, b.id).task_counts.active == 1, what="b admitted after a finished")
    gate_b.touch()
    for j in (a, b):
        await farm.until(
            lambda j=j: finished_ok(farm.workload(f"jobq-{j.id}-1")), what=f"{j.spec.name} Finished"
        )
    assert len(farm.workloads()) == 2
    assert {e.get("workload") for e in log_events(farm, "Workload deleted")} == {orphan}
