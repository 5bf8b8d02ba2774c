"""jobqd --admission kueue against real Kueue: Workloads, quota, inadmissible queues, flavors.

Every test runs a real jobqd subprocess in kueue mode and real jobq-node processes; Kueue is the
real controller (tools/kube-testenv). Tasks wait on gate files rather than sleeping, so what a test
sees at each step does not depend on timing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from jobq.v1 import queue_service_pb2 as qs
from jobq.v1 import types_pb2 as pb

from tests.kueue.conftest import KueueFarm, kcondition
from tests.support.commands import gated, sh
from tests.support.procs import BIN

Farm = Callable[..., Awaitable[KueueFarm]]


def is_true(obj: dict | None, type_: str) -> bool:
    c = kcondition(obj, type_)
    return bool(c and c["status"] == "True")


async def test_job_from_jobqctl_runs_through_kueue_and_releases_its_quota(kueue_farm: Farm) -> None:
    farm = await kueue_farm()
    d = farm.jobqd()
    farm.node(d.address, "n1", "--cpu", "8")
    await farm.until(lambda: farm.online(d) == 1, what="node online")
    out = subprocess.run(
        [str(BIN / "jobqctl"), "-s", d.address, "-o", "json", "submit", "-q", farm.q.local_queue,
         "--resources", "cpu=1,memory=1Gi", "--array", "0-2", "--parallelism", "2", "--", "echo", "frame {index}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    job_id = json.loads(out.stdout)["id"]
    wl_name = f"jobq-{job_id}-1"
    wl = await farm.until(lambda: farm.workload(wl_name), what="the job's Workload")
    labels = wl["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/managed-by": "jobqd", "jobq.dev/job-id": job_id}
    pod_set = wl["spec"]["podSets"][0]
    assert wl["spec"]["queueName"] == farm.q.local_queue
    assert pod_set["name"] == "tasks" and pod_set["count"] == 2  # min(parallelism, tasks)
    assert pod_set["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "1",
        "memory": "1Gi",
    }

    done = await farm.until(
        lambda: (j := farm.job(d, job_id)).status == pb.JOB_STATUS_COMPLETED and j, what="job completed"
    )
    assert done.task_counts.completed == 3 and done.flavor == farm.q.flavors[0]
    wl = await farm.until(lambda: is_true(w := farm.workload(wl_name), "Finished") and w, what="Finished")
    assert kcondition(wl, "Finished")["reason"] == "Succeeded"  # type: ignore[index]
    await farm.until(lambda: set(farm.cq_usage().values()) <= {"0"}, what="ClusterQueue usage back to zero")
    assert len(farm.workloads()) == 1


async def test_quota_admits_two_of_three_and_the_third_when_one_finishes(
    kueue_farm: Farm, tmp_path: Path
) -> None:
    farm = await kueue_farm(quota={"cpu": "4", "memory": "8Gi"})
    d = farm.jobqd()
    for n in ("n1", "n2", "n3"):
        farm.node(d.address, n, "--cpu", "8", slots=1)
    await farm.until(lambda: farm.online(d) == 3, what="nodes online")
    gates = [tmp_path / f"gate-{i}" for i in range(3)]
    jobs = [
        farm.submit(
            d,
            pb.JobSpec(
                name=f"j{i}", queue=farm.q.local_queue, resources={"cpu": "2"}, tasks=[gated(gates[i])]
            ),
        )
        for i in range(3)
    ]

    def two_admitted_one_waiting() -> pb.Job | None:
        now = [farm.job(d, j.id) for j in jobs]
        waiting = [j for j in now if j.admission != pb.ADMISSION_PHASE_ADMITTED]
        if len(waiting) == 1 and waiting[0].status_reason:
            return waiting[0]
        return None

    waiting = await farm.until(two_admitted_one_waiting, what="two admitted, one waiting with a reason")
    assert waiting.admission == pb.ADMISSION_PHASE_SUBMITTED and waiting.status == pb.JOB_STATUS_QUEUED
    assert "insufficient unused quota for cpu" in waiting.status_reason

    queue = d.queues.GetQueue(qs.GetQueueRequest(name=farm.q.local_queue)).queue
    assert queue.cluster_queue == farm.q.cluster_queue and queue.quotas["cpu"] == "4"
    await farm.until(
        lambda: (
            (q := d.queues.GetQueue(qs.GetQueueRequest(name=farm.q.local_queue)).queue).status.admitted_jobs
            == 2
            and q.status.pending_jobs == 1
            and q.status.usage.get("cpu") == "4"
        ),
        what="queue usage as Kueue reports it",
    )
    assert [q.name for q in d.queues.ListQueues(qs.ListQueuesRequest()).queues] == [farm.q.local_queue]
    with pytest.raises(grpc.RpcError) as err:
        d.queues.CreateQueue(qs.CreateQueueRequest(queue=pb.Queue(name="mine")))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "Kueue" in err.value.details()

    first = next(i for i, j in enumerate(jobs) if j.id != waiting.id)
    gates[first].touch()
    await farm.until(
        lambda: farm.job(d, waiting.id).admission == pb.ADMISSION_PHASE_ADMITTED, what="third admitted"
    )
    for g in gates:
        g.touch()
    for j in jobs:
        await farm.until(
            lambda j=j: farm.job(d, j.id).status == pb.JOB_STATUS_COMPLETED, what=f"{j.id} completed"
        )
    await farm.until(lambda: set(farm.cq_usage().values()) <= {"0"}, what="usage zero")


async def test_missing_local_queue_is_inadmissible_until_created(kueue_farm: Farm) -> None:
    farm = await kueue_farm()
    d = farm.jobqd()
    farm.node(d.address, "n1", "--cpu", "8")
    job = farm.submit(
        d,
        pb.JobSpec(
            name="early", queue="lq-later", resources={"cpu": "1"}, tasks=[pb.TaskSpec(commands=[sh("true")])]
        ),
    )
    j = await farm.until(
        lambda: (x := farm.job(d, job.id)).admission == pb.ADMISSION_PHASE_INADMISSIBLE and x,
        what="inadmissible",
    )
    assert j.status_reason == "LocalQueue lq-later doesn't exist"
    farm.create_local_queue("lq-later")
    await farm.until(
        lambda: farm.job(d, job.id).status == pb.JOB_STATUS_COMPLETED, what="admitted and completed"
    )


async def test_job_admitted_on_flavor_b_runs_only_on_nodes_labelled_for_b(kueue_farm: Farm) -> None:
    farm = await kueue_farm(
        flavors=[
            {"name": "pool-a", "nodeLabels": {"pool": "a"}, "quota": {"cpu": "1"}},
            {"name": "pool-b", "nodeLabels": {"pool": "b"}, "quota": {"cpu": "8"}},
        ]
    )
    d = farm.jobqd()
    farm.node(d.address, "node-a", "--labels", "pool=a", "--cpu", "8", slots=4)
    farm.node(d.address, "node-b", "--labels", "pool=b", "--cpu", "8", slots=1)
    await farm.until(lambda: farm.online(d) == 2, what="nodes online")
    job = farm.submit(
        d,
        pb.JobSpec(
            name="on-b",
            queue=farm.q.local_queue,
            resources={"cpu": "2"},  # 2 × 2 cpu: more than flavor a's quota, so Kueue assigns b
            parallelism=2,
            array=pb.ArraySpec(template=pb.TaskSpec(commands=[sh("true")]), start=0, end=5),
        ),
    )
    done = await farm.until(
        lambda: (j := farm.job(d, job.id)).status == pb.JOB_STATUS_COMPLETED and j, what="job completed"
    )
    assert done.flavor == farm.q.flavors[1]
    assert {t.node for t in farm.tasks(d, job.id)} == {"node-b"}
