"""reconcile.plan: what jobqd writes for one job, as a table over job states and real Workloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jobqd.admission.kueue import mapping as m
from jobqd.admission.kueue.reconcile import (
    Blocked,
    ClearReservation,
    Create,
    Delete,
    Finish,
    SetActive,
    SetPriority,
    plan,
)
from jobqd.domain.model import Job, JobDef, TaskDef
from jobqd.domain.states import AdmissionPhase, JobStatus

Shape = Callable[[str], dict[str, Any]]
A = AdmissionPhase
J = JobStatus
JOB_ID = "01abcdefghjkm"
PRIORITIES = {"low": 100, "high": 1000}


def job(
    status: JobStatus = J.QUEUED, admission: AdmissionPhase = A.SUBMITTED, *, gen: int = 1, **defn: Any
) -> Job:
    tasks = (TaskDef(name="0", type="exec", commands=()),)
    j = Job(
        job_id=JOB_ID, seq=1, defn=JobDef(name="j", queue="lq", tasks=tasks, **defn), owner="", submit_ts=0.0
    )
    j.status, j.admission, j.generation = status, admission, gen
    return j


def named(wl: dict[str, Any], gen: int = 1, job_id: str = JOB_ID) -> dict[str, Any]:
    wl["metadata"]["name"] = m.workload_name(job_id, gen)
    wl["metadata"]["labels"] = {m.MANAGED_BY: m.MANAGER, m.JOB_ID_LABEL: job_id}
    return wl


def run(j: Job | None, *wls: dict[str, Any], running: int = 0, deps_met: bool = True) -> list[Any]:
    return plan(
        j,
        list(wls),
        namespace="ns",
        deps_met=deps_met,
        running=running,
        priority_of=PRIORITIES.get,
        now=1_800_000_000.0,
    )


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


# -- start-up reconciliation: adopt, delete orphans, create missing ---------------------------------


def test_a_competing_job_without_a_workload_gets_one() -> None:
    [create] = run(job(priority_class="high"))
    assert isinstance(create, Create)
    assert create.body["metadata"]["name"] == f"jobq-{JOB_ID}-1"
    assert create.body["spec"]["priority"] == 1000


def test_a_job_waiting_for_a_dependency_or_under_construction_gets_none() -> None:
    assert run(job(), deps_met=False) == []
    assert run(job(J.UNDER_CONSTRUCTION)) == []
    assert run(job(J.PAUSED)) == []
    assert run(job(J.COMPLETED, A.FINISHED)) == []  # never had one: nothing to finish


def test_a_known_jobs_workload_is_adopted(shape: Shape) -> None:
    assert run(job(J.ACTIVE, A.ADMITTED), named(shape("admitted"))) == []
    assert run(job(J.QUEUED, A.SUBMITTED), named(shape("pending_insufficient_quota"))) == []


def test_orphans_and_earlier_cycles_are_deleted(shape: Shape) -> None:
    orphan = named(shape("admitted"), job_id="0000000000000")
    [delete] = run(None, orphan)
    assert delete == Delete(
        orphan["metadata"]["name"], orphan["metadata"]["uid"], "orphan: its job does not exist"
    )
    old, cur = named(shape("finished_succeeded"), gen=1), named(shape("admitted"), gen=2)
    actions = run(job(J.ACTIVE, A.ADMITTED, gen=2), old, cur)
    assert kinds(actions) == ["Delete"] and actions[0].name == f"jobq-{JOB_ID}-1"


def test_a_workload_being_deleted_is_left_alone(shape: Shape) -> None:
    wl = named(shape("admitted"))
    wl["metadata"]["deletionTimestamp"] = "2026-11-23T10:00:00Z"
    assert run(None, wl) == []
    assert run(job(J.ACTIVE, A.ADMITTED), wl) == []  # recreated once it is gone


def test_an_unknown_priority_class_blocks_the_workload() -> None:
    assert run(job(priority_class="gold")) == [Blocked('WorkloadPriorityClass "gold" doesn\'t exist')]


# -- evictions: clear only once the engine stopped the job and no attempt runs -----------------------


def test_evicted_workload_is_cleared_once_no_attempt_runs(shape: Shape) -> None:
    wl = named(shape("evicted_preempted_waiting_for_owner"))
    assert run(job(J.ACTIVE, A.ADMITTED), wl) == []  # the engine has not evicted the job yet
    assert run(job(J.QUEUED, A.SUBMITTED), wl, running=2) == []  # attempts still stopping
    [clear] = run(job(J.QUEUED, A.SUBMITTED), wl, running=0)
    assert isinstance(clear, ClearReservation) and clear.patch == m.clear_patch(wl, now=1_800_000_000.0)


def test_cleared_workload_is_not_cleared_again(shape: Shape) -> None:
    assert run(job(J.QUEUED, A.SUBMITTED), named(shape("after_owner_clear"))) == []


# -- pause, resume, cancel, finish ------------------------------------------------------------------


def test_pause_deactivates_then_clears_the_deactivation_eviction(shape: Shape) -> None:
    assert run(job(J.PAUSED), named(shape("admitted"))) == [SetActive(f"jobq-{JOB_ID}-1", False, "paused")]
    wl = named(shape("evicted_deactivated_waiting_for_owner"))
    wl["spec"]["active"] = False
    assert kinds(run(job(J.PAUSED), wl, running=0)) == ["ClearReservation"]
    assert run(job(J.PAUSE_REQUESTED, A.ADMITTED), named(shape("admitted"))) == []  # tasks still finish


def test_resume_reactivates_only_what_jobqd_deactivated(shape: Shape) -> None:
    wl = named(shape("deactivated_after_owner_clear"))
    wl["spec"]["active"] = False
    assert run(job(J.QUEUED), wl) == []  # Kueue's own deactivation: not ours to undo
    wl["metadata"]["annotations"] = {m.DEACTIVATED_BY_ANNOTATION: "paused"}
    assert run(job(J.QUEUED), wl) == [SetActive(f"jobq-{JOB_ID}-1", True, "resumed")]


def test_kueue_deactivation_of_a_running_job_is_cleared_but_not_undone(shape: Shape) -> None:
    wl = named(shape("evicted_deactivated_due_to_max_exec_time"))
    wl["spec"]["active"] = False
    assert kinds(run(job(J.QUEUED, A.SUBMITTED), wl)) == ["ClearReservation"]


def test_cancel_deactivates_then_finishes(shape: Shape) -> None:
    wl = named(shape("admitted"))
    assert run(job(J.CANCEL_REQUESTED, A.ADMITTED), wl, running=1) == [
        SetActive(f"jobq-{JOB_ID}-1", False, "canceled")
    ]
    canceled = job(J.CANCELED, A.FINISHED)
    canceled.reason = "cancel by user"
    actions = run(canceled, wl)
    assert kinds(actions) == ["SetActive", "Finish"]
    finished = m.condition({"status": actions[1].patch["status"]}, "Finished")
    assert finished is not None and finished["reason"] == "Failed"
    assert finished["message"] == "job canceled: cancel by user"


@pytest.mark.parametrize(("status", "reason"), [(J.COMPLETED, "Succeeded"), (J.FAILED, "Failed")])
def test_terminal_job_finishes_its_workload_once(shape: Shape, status: JobStatus, reason: str) -> None:
    [finish] = run(job(status, A.FINISHED), named(shape("admitted")))
    assert isinstance(finish, Finish)
    assert m.condition({"status": finish.patch["status"]}, "Finished")["reason"] == reason  # type: ignore[index]
    assert run(job(status, A.FINISHED), named(shape(f"finished_{reason.lower()}"))) == []


def test_a_workload_finished_behind_jobqds_back_is_replaced(shape: Shape) -> None:
    wl = named(shape("finished_failed"))
    assert run(job(J.QUEUED), wl) == [
        Delete(wl["metadata"]["name"], wl["metadata"]["uid"], "finished while its job is not")
    ]


# -- priority changes (jobqctl priority) -------------------------------------------------------------


def classless(wl: dict[str, Any], priority: int) -> dict[str, Any]:
    """The Workload of a job without a WorkloadPriorityClass: no reference, its own priority."""
    wl["spec"].pop("priorityClassRef", None)
    wl["spec"]["priority"] = priority
    return named(wl)


@pytest.mark.parametrize(
    ("status", "admission", "shape_name"),
    [
        (J.QUEUED, A.SUBMITTED, "pending_insufficient_quota"),
        (J.ACTIVE, A.ADMITTED, "admitted"),
    ],
)
def test_a_changed_priority_is_written_to_a_classless_workload(
    shape: Shape, status: JobStatus, admission: AdmissionPhase, shape_name: str
) -> None:
    wl = classless(shape(shape_name), 0)
    assert run(job(status, admission, priority=0), wl) == []
    assert run(job(status, admission, priority=7), wl) == [SetPriority(f"jobq-{JOB_ID}-1", 7)]


def test_priority_is_left_alone_with_a_priority_class_or_once_finished(shape: Shape) -> None:
    # the class decides (its value was resolved at creation); the job's own number does not apply
    assert run(job(J.ACTIVE, A.ADMITTED, priority=7, priority_class="low"), named(shape("admitted"))) == []
    assert run(job(J.ACTIVE, A.ADMITTED, priority=7), named(shape("admitted"))) == []  # referenced class
    wl = classless(shape("finished_succeeded"), 0)
    assert run(job(J.COMPLETED, A.FINISHED, priority=7), wl) == []
