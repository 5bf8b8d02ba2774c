"""Workload conditions → admission phase, and the owner's writes, on real Kueue Workload shapes.

The table covers every condition/reason combination DESIGN §8.2 lists. Shapes come from the real
Kueue v0.19.2 (shapes/README.md); the few that the test environment cannot produce (admission
checks, misconfiguration) are a recorded shape with one condition changed, as Kueue would write it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jobqd.admission.kueue import mapping as m
from jobqd.admission.kueue.mapping import Phase
from jobqd.domain import admission as amath
from jobqd.domain.model import Job, JobDef, TaskDef
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus

Shape = Callable[[str], dict[str, Any]]
A = AdmissionPhase
J = JobStatus

NOW = 1_800_000_000.0


def with_condition(
    wl: dict[str, Any], type_: str, status: str, reason: str, message: str = ""
) -> dict[str, Any]:
    m.set_condition(
        wl.setdefault("status", {}).setdefault("conditions", []),
        type_=type_,
        status=status,
        reason=reason,
        message=message,
        generation=1,
        now=NOW,
    )
    return wl


# -- observe: the table ----------------------------------------------------------------------------

REAL = [
    # (shape, phase, reason, message fragment)
    ("created_no_status", Phase.SUBMITTED, "", ""),
    ("pending_insufficient_quota", Phase.SUBMITTED, "Pending", "insufficient unused quota for cpu"),
    ("preemptor_pending_preemption", Phase.SUBMITTED, "Pending", "Pending the preemption of 1 workload(s)"),
    (
        "inadmissible_missing_localqueue",
        Phase.INADMISSIBLE,
        "Inadmissible",
        "LocalQueue lq-missing doesn't exist",
    ),
    ("inadmissible_localqueue_held", Phase.INADMISSIBLE, "Inadmissible", "LocalQueue lq-held is inactive"),
    ("cq_stopped", Phase.INADMISSIBLE, "Inadmissible", "is inactive"),  # a stale Evicted=True does not count
    ("admitted", Phase.ADMITTED, "Admitted", "Quota reserved in ClusterQueue"),
    ("preemptor_admitted", Phase.ADMITTED, "Admitted", "Quota reserved in ClusterQueue"),
    (
        "readmitted_after_preemption",
        Phase.ADMITTED,
        "Admitted",
        "Quota reserved",
    ),  # Evicted=False "Previously: …"
    (
        "evicted_preempted_waiting_for_owner",
        Phase.EVICTED,
        "Preempted",
        "Preempted to accommodate a workload",
    ),
    ("evicted_deactivated_waiting_for_owner", Phase.EVICTED, "Deactivated", "The workload is deactivated"),
    (
        "evicted_deactivated_due_to_max_exec_time",
        Phase.EVICTED,
        "DeactivatedDueToMaximumExecutionTimeExceeded",
        "due to exceeding the maximum execution time",
    ),
    ("evicted_cluster_queue_stopped", Phase.EVICTED, "ClusterQueueStopped", "The ClusterQueue is stopped"),
    # after the owner's clear Kueue keeps Evicted=True until it admits again: waiting, not evicted
    ("after_owner_clear", Phase.SUBMITTED, "Pending", "Preempted to accommodate"),
    ("evicted_cleared_waiting", Phase.SUBMITTED, "Pending", "insufficient unused quota"),  # Kueue's next word
    ("deactivated_after_owner_clear", Phase.SUBMITTED, "Pending", "The workload is deactivated"),
    ("reactivated_waiting", Phase.SUBMITTED, "Pending", ""),
    ("finished_succeeded", Phase.FINISHED, "Succeeded", "job completed"),
    ("finished_failed", Phase.FINISHED, "Failed", "1 of 3 tasks failed"),
]


@pytest.mark.parametrize(("name", "phase", "reason", "fragment"), REAL, ids=[r[0] for r in REAL])
def test_observe_real_workloads(shape: Shape, name: str, phase: Phase, reason: str, fragment: str) -> None:
    obs = m.observe(shape(name))
    assert (obs.phase, obs.reason) == (phase, reason)
    assert fragment in obs.message


def test_admitted_workload_carries_its_flavor(shape: Shape) -> None:
    assert m.observe(shape("admitted")).flavors == ("rf-cap-8cb780",)
    assert m.observe(shape("evicted_preempted_waiting_for_owner")).flavors == ("rf-cap-8cb780",)


@pytest.mark.parametrize("reason", ["Misconfigured", "Suspended", "Inadmissible"])
def test_quota_not_reserved_for_a_queue_problem_is_inadmissible(shape: Shape, reason: str) -> None:
    wl = with_condition(
        shape("created_no_status"), "QuotaReserved", "False", reason, "ClusterQueue cq doesn't exist"
    )
    assert m.observe(wl) == m.Observed(Phase.INADMISSIBLE, reason, "ClusterQueue cq doesn't exist")


@pytest.mark.parametrize(
    "reason", ["Pending", "WaitingForQuota", "PendingEvaluation", "NoMatchingFlavor", "OnHold"]
)
def test_quota_not_reserved_for_any_other_reason_is_submitted(shape: Shape, reason: str) -> None:
    wl = with_condition(shape("created_no_status"), "QuotaReserved", "False", reason, "waiting")
    assert m.observe(wl).phase is Phase.SUBMITTED


def test_quota_reserved_but_not_admitted_is_pending(shape: Shape) -> None:
    # what Kueue writes while admission checks are not ready yet
    wl = with_condition(
        shape("admitted"), "Admitted", "False", "UnsatisfiedChecks", "The workload has not all checks ready"
    )
    obs = m.observe(wl)
    assert (obs.phase, obs.reason, obs.flavors) == (Phase.PENDING, "QuotaReserved", ("rf-cap-8cb780",))


@pytest.mark.parametrize("status", [{}, {"conditions": None}, {"conditions": []}, None])
def test_empty_status_is_submitted(shape: Shape, status: Any) -> None:
    wl = shape("created_no_status")
    wl["status"] = status
    assert m.observe(wl) == m.Observed(Phase.SUBMITTED)


def test_finished_wins_over_everything(shape: Shape) -> None:
    wl = with_condition(
        shape("evicted_preempted_waiting_for_owner"), "Finished", "True", "Failed", "job canceled"
    )
    assert m.observe(wl).phase is Phase.FINISHED


@pytest.mark.parametrize(
    ("reason", "base"),
    [
        ("Preempted", "Preempted"),
        ("DeactivatedDueToMaximumExecutionTimeExceeded", "Deactivated"),
        ("DeactivatedDueToRequeuingLimitExceeded", "Deactivated"),
        ("DeactivatedDueToAdmissionCheck", "Deactivated"),
        ("PodsReadyTimeout", "PodsReadyTimeout"),
    ],
)
def test_reason_due_to_cause(reason: str, base: str) -> None:
    assert m.base_reason(reason) == base


def test_preemptor_uid_from_kueue_message(shape: Shape) -> None:
    msg = m.observe(shape("evicted_preempted_waiting_for_owner")).message
    assert m.preemptor_uid(msg) == "f683cd84-3826-4142-b33e-071f9519e609"
    assert m.preemptor_uid("The ClusterQueue is stopped") == ""


# -- the owner's writes ----------------------------------------------------------------------------


def by_type(conds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conds}


@pytest.mark.parametrize(
    ("name", "requeued"),
    [
        ("evicted_preempted_waiting_for_owner", "True"),
        ("evicted_deactivated_waiting_for_owner", "False"),
        ("evicted_deactivated_due_to_max_exec_time", "False"),
        ("evicted_cluster_queue_stopped", "False"),
    ],
)
def test_clear_patch_releases_the_reservation_with_the_full_conditions(
    shape: Shape, name: str, requeued: str
) -> None:
    wl = shape(name)
    before = by_type(wl["status"]["conditions"])
    patch = m.clear_patch(wl, now=NOW)
    assert patch["metadata"] == {"resourceVersion": wl["metadata"]["resourceVersion"]}
    assert patch["status"]["admission"] is None and set(patch["status"]) == {"conditions", "admission"}
    after = by_type(patch["status"]["conditions"])
    assert after["Evicted"] == before["Evicted"]  # kept as it was
    if "Preempted" in before:
        assert after["Preempted"] == before["Preempted"]
    assert set(before) <= set(after)  # a merge patch replaces the list: nothing may be dropped
    ev = before["Evicted"]
    assert after["QuotaReserved"]["status"] == "False" and after["QuotaReserved"]["reason"] == "Pending"
    assert after["QuotaReserved"]["message"] == ev["message"]
    assert after["Admitted"]["status"] == "False" and after["Admitted"]["reason"] == "NoReservation"
    assert after["Requeued"]["status"] == requeued and after["Requeued"]["reason"] == ev["reason"]
    assert after["QuotaReserved"]["lastTransitionTime"] == "2027-01-15T08:00:00Z"  # status changed: now
    assert m.observe({**wl, "status": patch["status"]}).phase is Phase.SUBMITTED


def test_clear_patch_keeps_transition_times_of_unchanged_conditions(shape: Shape) -> None:
    wl = shape("readmitted_after_preemption")  # Requeued=True already
    wl = with_condition(wl, "Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: x)")
    old = by_type(wl["status"]["conditions"])["Requeued"]["lastTransitionTime"]
    after = by_type(m.clear_patch(wl, now=NOW)["status"]["conditions"])
    assert after["Requeued"]["lastTransitionTime"] == old


@pytest.mark.parametrize(("ok", "reason"), [(True, "Succeeded"), (False, "Failed")])
def test_finish_patch(shape: Shape, ok: bool, reason: str) -> None:
    wl = shape("admitted")
    patch = m.finish_patch(wl, succeeded=ok, message="job done", now=NOW)
    assert patch["metadata"] == {"resourceVersion": wl["metadata"]["resourceVersion"]}
    assert "admission" not in patch["status"]  # Kueue keeps the admission as a record
    after = by_type(patch["status"]["conditions"])
    assert after["Finished"]["status"] == "True" and after["Finished"]["reason"] == reason
    assert after["Admitted"] == by_type(wl["status"]["conditions"])["Admitted"]
    assert m.observe({**wl, "status": patch["status"]}).phase is Phase.FINISHED


def test_active_patch_marks_who_deactivated() -> None:
    assert m.active_patch(False, why="paused") == {
        "metadata": {"annotations": {m.DEACTIVATED_BY_ANNOTATION: "paused"}},
        "spec": {"active": False},
    }
    assert m.active_patch(True)["metadata"]["annotations"] == {m.DEACTIVATED_BY_ANNOTATION: None}


# -- the Workload jobqd builds ---------------------------------------------------------------------


def make_job(**defn: Any) -> Job:
    tasks = tuple(TaskDef(name=str(i), type="exec", commands=()) for i in range(defn.pop("ntasks", 3)))
    return Job(
        job_id="01abcdefghjkm", seq=1, defn=JobDef(name="j", tasks=tasks, **defn), owner="", submit_ts=0.0
    )


def test_workload_body_for_a_job_with_a_priority_class() -> None:
    job = make_job(
        queue="lq",
        priority=5,
        priority_class="high",
        resources={"cpu": 2000},
        resources_text={"cpu": "2", "memory": "1Gi"},
        node_selector={"pool": "b"},
        parallelism=2,
    )
    job.generation = 3
    body = m.workload_body(job, namespace="ns1", priority=1000)
    assert body["apiVersion"] == "kueue.x-k8s.io/v1beta2" and body["kind"] == "Workload"
    assert body["metadata"] == {
        "name": "jobq-01abcdefghjkm-3",
        "namespace": "ns1",
        "labels": {"app.kubernetes.io/managed-by": "jobqd", "jobq.dev/job-id": "01abcdefghjkm"},
    }
    spec = body["spec"]
    assert spec["queueName"] == "lq" and spec["active"] is True
    assert spec["priorityClassRef"] == {
        "group": "kueue.x-k8s.io",
        "kind": "WorkloadPriorityClass",
        "name": "high",
    }
    assert spec["priority"] == 1000
    [ps] = spec["podSets"]
    assert ps["name"] == "tasks" and ps["count"] == 2
    pod = ps["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "b"}
    assert pod["containers"] == [
        {"name": "task", "image": "jobq/task", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}
    ]
    assert "kueue.x-k8s.io/job-uid" not in body["metadata"]["labels"]


def test_workload_body_without_a_class_uses_the_job_priority() -> None:
    body = m.workload_body(make_job(priority=-3), namespace="ns1", priority=-3)
    assert "priorityClassRef" not in body["spec"] and body["spec"]["priority"] == -3
    assert "nodeSelector" not in body["spec"]["podSets"][0]["template"]["spec"]


@pytest.mark.parametrize(
    ("ntasks", "parallelism", "done", "count"),
    [(3, 0, 0, 3), (3, 2, 0, 2), (3, 2, 2, 1), (3, 0, 3, 1), (10, 4, 7, 3)],
)
def test_pod_count_is_min_of_parallelism_and_unfinished_tasks(
    ntasks: int, parallelism: int, done: int, count: int
) -> None:
    job = make_job(ntasks=ntasks, parallelism=parallelism)
    for pos in range(done):
        t = job.task(pos)
        job.set_task_status(t, TaskStatus.ACTIVE, action="t")
        job.set_task_status(t, TaskStatus.COMPLETED, action="t")
    assert m.pod_count(job) == count


def test_workload_names_round_trip() -> None:
    assert m.parse_workload_name(m.workload_name("01abcdefghjkm", 12)) == ("01abcdefghjkm", 12)
    assert m.parse_workload_name("someone-else") is None


# -- what the engine does about a phase ------------------------------------------------------------

S = m.Step
E = m.EngineStep
PREEMPTED = m.Observed(Phase.EVICTED, "Preempted", "Preempted to accommodate a workload (UID: u)")
ADMITTED = m.Observed(Phase.ADMITTED, "Admitted", "Quota reserved in ClusterQueue cq", ("rf-b",))
QUOTA = m.Observed(Phase.SUBMITTED, "Pending", "couldn't assign flavors: insufficient unused quota")
MISSING = m.Observed(Phase.INADMISSIBLE, "Inadmissible", "LocalQueue lq doesn't exist")

STEPS = [
    # (job status, job admission, its reason, observed, steps)
    (J.QUEUED, A.SUBMITTED, "", ADMITTED, [E(S.SET_PHASE, A.PENDING, ADMITTED.message), E(S.ADMIT, A.ADMITTED, "", "rf-b")]),
    (J.QUEUED, A.PENDING, "x", ADMITTED, [E(S.ADMIT, A.ADMITTED, "", "rf-b")]),
    (J.ACTIVE, A.ADMITTED, "", ADMITTED, []),
    (J.QUEUED, A.SUBMITTED, "", m.Observed(Phase.PENDING, "QuotaReserved", "Quota reserved in ClusterQueue cq"),
     [E(S.SET_PHASE, A.PENDING, "Quota reserved in ClusterQueue cq")]),
    (J.ACTIVE, A.ADMITTED, "", m.Observed(Phase.PENDING, "QuotaReserved", "Quota reserved"),
     [E(S.EVICT, A.PENDING, "Quota reserved")]),
    (J.ACTIVE, A.ADMITTED, "", PREEMPTED, [E(S.EVICT, A.SUBMITTED, PREEMPTED.message)]),
    (J.PAUSE_REQUESTED, A.ADMITTED, "", PREEMPTED, [E(S.EVICT, A.SUBMITTED, PREEMPTED.message), E(S.SETTLE)]),
    (J.QUEUED, A.SUBMITTED, "", PREEMPTED, []),  # already evicted: waiting for its attempts to stop
    (J.QUEUED, A.SUBMITTED, "", QUOTA, [E(S.SET_PHASE, A.SUBMITTED, QUOTA.message)]),
    (J.QUEUED, A.SUBMITTED, QUOTA.message, QUOTA, []),
    (J.QUEUED, A.SUBMITTED, "old", m.Observed(Phase.SUBMITTED), []),  # empty status: nothing to say
    (J.QUEUED, A.INADMISSIBLE, MISSING.message, m.Observed(Phase.SUBMITTED),
     [E(S.SET_PHASE, A.SUBMITTED, "")]),
    (J.QUEUED, A.SUBMITTED, "", MISSING, [E(S.SET_PHASE, A.INADMISSIBLE, MISSING.message)]),
    (J.ACTIVE, A.ADMITTED, "", MISSING,
     [E(S.EVICT, A.SUBMITTED, MISSING.message), E(S.SET_PHASE, A.INADMISSIBLE, MISSING.message)]),
    (J.ACTIVE, A.ADMITTED, "", QUOTA, [E(S.EVICT, A.SUBMITTED, QUOTA.message)]),
    (J.ACTIVE, A.ADMITTED, "", m.Observed(Phase.FINISHED, "Failed", ""),
     [E(S.EVICT, A.SUBMITTED, "Workload finished outside jobqd (Failed)")]),
    # jobs that no longer compete: owner duties only
    (J.PAUSED, A.SUBMITTED, "paused", ADMITTED, []),
    (J.CANCEL_REQUESTED, A.ADMITTED, "", PREEMPTED, []),
    (J.COMPLETED, A.FINISHED, "", m.Observed(Phase.FINISHED, "Succeeded", "job completed"), []),
    (J.UNDER_CONSTRUCTION, A.SUBMITTED, "", ADMITTED, []),
]  # fmt: skip


@pytest.mark.parametrize(("status", "admission", "reason", "obs", "steps"), STEPS)
def test_engine_steps(
    status: JobStatus, admission: AdmissionPhase, reason: str, obs: m.Observed, steps: list[m.EngineStep]
) -> None:
    assert m.engine_steps(status=status, admission=admission, reason=reason, obs=obs) == steps


def test_finish_message() -> None:
    job = make_job()
    job.status = J.COMPLETED
    assert m.finish_message(job) == (True, "job completed")
    job.status, job.reason = J.FAILED, "2 of 3 tasks failed"
    assert m.finish_message(job) == (False, "job failed: 2 of 3 tasks failed")
    job.status, job.reason = J.CANCELED, "cancel by user"
    assert m.finish_message(job) == (False, "job canceled: cancel by user")


# -- queues and flavors ----------------------------------------------------------------------------


def test_queue_view_from_real_local_and_cluster_queue(shape: Shape) -> None:
    d, usage = m.queue_view(shape("localqueue_busy"), shape("clusterqueue_busy"))
    assert d == amath.QueueDef(
        "lq",
        {"cpu": 4000, "memory": 8 * 2**30 * 1000},
        amath.Strategy.STRICT_FIFO,
        amath.Preemption.LOWER_PRIORITY,
        amath.QueueState.ACTIVE,
    )
    assert usage == {
        "pending": 1,
        "admitted": 1,
        "inadmissible": 0,
        "usage": {"cpu": 2500, "memory": 0},
        "cluster_queue": "cq-cap-73e45e",
    }


def test_queue_view_counts_inadmissible_apart_and_shows_stop_policies(shape: Shape) -> None:
    lq, cq = shape("localqueue_busy"), shape("clusterqueue_busy")
    lq["spec"]["stopPolicy"] = "Hold"
    d, usage = m.queue_view(lq, cq, inadmissible=1)
    assert d.state is amath.QueueState.HELD and usage["pending"] == 0 and usage["inadmissible"] == 1
    lq["spec"]["stopPolicy"] = "None"
    cq["spec"]["stopPolicy"] = "HoldAndDrain"
    assert m.queue_view(lq, cq)[0].state is amath.QueueState.DRAINING
    # a LocalQueue whose ClusterQueue is not known (yet)
    d, usage = m.queue_view(lq, None)
    assert d.quotas == {} and usage["cluster_queue"] == "cq-cap-73e45e"


def test_flavor_labels_and_priority_values(shape: Shape) -> None:
    assert m.flavor_node_labels(shape("resourceflavor_labels")) == {"pool": "b", "zone": "z1"}
    assert m.priority_value(shape("workloadpriorityclass")) == 1000
    assert m.priority_value(None) is None
