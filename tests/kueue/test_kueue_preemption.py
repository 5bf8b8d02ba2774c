"""Kueue preempts a running low-priority job for a high-priority one; jobqd, as the owner of the
victim's Workload, stops its tasks (an interruption, not a failure), clears the reservation, and
runs the job again once Kueue re-admits it — never on two nodes at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from jobq.v1 import types_pb2 as pb

from tests.kueue.conftest import KueueFarm, kcondition
from tests.support.commands import sh

Farm = Callable[..., Awaitable[KueueFarm]]


def exclusive_until(gate: Path, runs: Path) -> pb.TaskSpec:
    """Runs until `gate` exists. A directory per task index is the witness that no two attempts of
    one task ever run at the same time (mkdir is atomic); each start is logged."""
    script = (
        f'D={runs}/running-{{index}}; mkdir "$D" 2>/dev/null || {{ echo {{index}} >> {runs}/overlaps; exit 3; }}; '
        f"trap 'rmdir \"$D\"; exit 143' TERM; "
        f"echo start >> {runs}/starts-{{index}}; "
        f"while [ ! -e {gate} ]; do sleep 0.05; done; "
        f'rmdir "$D"'
    )
    return pb.TaskSpec(commands=[sh(script)])


async def test_high_priority_job_preempts_low_one_which_is_requeued_and_completes(
    kueue_farm: Farm, tmp_path: Path
) -> None:
    farm = await kueue_farm(
        quota={"cpu": "4", "memory": "8Gi"}, preemption={"withinClusterQueue": "LowerPriority"}
    )
    d = farm.jobqd()
    farm.node(d.address, "n1", "--cpu", "8")
    farm.node(d.address, "n2", "--cpu", "8")
    await farm.until(lambda: farm.online(d) == 2, what="nodes online")
    runs = tmp_path / "runs"
    runs.mkdir()
    low_gate, high_gate = tmp_path / "low-gate", tmp_path / "high-gate"

    low = farm.submit(
        d,
        pb.JobSpec(
            name="low",
            queue=farm.q.local_queue,
            priority_class="low",
            resources={"cpu": "2"},
            parallelism=2,
            array=pb.ArraySpec(template=exclusive_until(low_gate, runs), start=0, end=1),
        ),
    )
    low_wl = f"jobq-{low.id}-1"
    await farm.until(lambda: farm.job(d, low.id).task_counts.active == 2, what="low job's two tasks running")
    wl = farm.workload(low_wl)
    assert wl is not None and wl["spec"]["priority"] == 100
    assert wl["spec"]["priorityClassRef"] == {
        "group": "kueue.x-k8s.io",
        "kind": "WorkloadPriorityClass",
        "name": "low",
    }

    high = farm.submit(
        d,
        pb.JobSpec(
            name="high",
            queue=farm.q.local_queue,
            priority_class="high",
            resources={"cpu": "2"},
            tasks=[pb.TaskSpec(commands=[sh(f"while [ ! -e {high_gate} ]; do sleep 0.05; done")])],
        ),
    )
    await farm.until(lambda: farm.job(d, high.id).task_counts.active == 1, what="high job running")

    victim = farm.job(d, low.id)
    assert victim.admission == pb.ADMISSION_PHASE_SUBMITTED and victim.status == pb.JOB_STATUS_QUEUED
    assert victim.task_counts.active == 0 and victim.task_counts.failed == 0
    evictions = [
        e
        for e in farm.events(d, low.id)
        if e.type == pb.EVENT_TYPE_JOB_ADMISSION_CHANGED and e.admission == pb.ADMISSION_PHASE_SUBMITTED
    ]
    assert evictions, "the low job never left admitted"
    assert evictions[0].reason.startswith("Preempted to accommodate a workload")
    assert evictions[0].reason.endswith(f"(preempted by job {high.id})")
    wl = farm.workload(low_wl)
    assert wl is not None and not (wl.get("status") or {}).get("admission")  # cleared by jobqd
    assert kcondition(wl, "QuotaReserved")["status"] == "False"  # type: ignore[index]
    requeued = kcondition(wl, "Requeued")
    assert requeued is not None and requeued["status"] == "True" and requeued["reason"] == "Preempted"
    assert farm.workload(f"jobq-{high.id}-1")["spec"]["priority"] == 1000  # type: ignore[index]

    high_gate.touch()
    await farm.until(lambda: farm.job(d, high.id).status == pb.JOB_STATUS_COMPLETED, what="high completed")
    await farm.until(
        lambda: farm.job(d, low.id).task_counts.active == 2, what="low job re-admitted and running again"
    )
    low_gate.touch()
    done = await farm.until(
        lambda: (j := farm.job(d, low.id)).status == pb.JOB_STATUS_COMPLETED and j, what="low completed"
    )
    assert done.task_counts.completed == 2 and done.task_counts.failed == 0
    for t in farm.tasks(d, low.id):
        assert t.interruptions == 1 and not t.failed_by and t.attempt == 2, t
        assert (runs / f"starts-{t.index}").read_text().count("start") == 2
    assert not (runs / "overlaps").exists(), "an attempt started while another attempt of its task ran"
    # and as jobqd recorded it: each task active, interrupted (queued), active again, completed
    history: dict[str, list[tuple[int, int]]] = {}
    for e in farm.events(d, low.id):
        if e.type == pb.EVENT_TYPE_TASK_STATUS_CHANGED:
            history.setdefault(e.task_id, []).append((e.task_status, e.attempt))
    assert {t: [s for s, _ in h] for t, h in history.items()} == {
        f"{low.id}.{i}": [
            pb.TASK_STATUS_ACTIVE,
            pb.TASK_STATUS_QUEUED,
            pb.TASK_STATUS_ACTIVE,
            pb.TASK_STATUS_COMPLETED,
        ]
        for i in (0, 1)
    }
    wl = await farm.until(
        lambda: kcondition(w := farm.workload(low_wl), "Finished") and w, what="low Finished"
    )
    assert kcondition(wl, "Finished")["reason"] == "Succeeded"  # type: ignore[index]
    await farm.until(lambda: set(farm.cq_usage().values()) <= {"0"}, what="usage back to zero")
