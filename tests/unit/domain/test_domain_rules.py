"""The outcome rules of `jobqd.domain.rules` as tables: job actions, job outcome, settling a
request, the failure policy (DESIGN §4.2: counted exactly) and interruptions."""

from __future__ import annotations

import itertools

import pytest

from jobqd.domain.errors import InvalidTransition
from jobqd.domain.model import FailurePolicy
from jobqd.domain.rules import (
    JobAction,
    blocklisted,
    decide_failure,
    decide_interruption,
    fail_threshold,
    job_outcome,
    plan_job_action,
    requeue_all_tasks,
    settle_requested,
)
from jobqd.domain.states import JobStatus, TaskStatus, check_job

J = JobStatus
T = TaskStatus
Act = JobAction

# -- user actions on a job ---------------------------------------------------------------------

#: The statuses each action starts from (DESIGN §4.1 / docs/states.md "Actions").
NEEDS: dict[JobAction, set[JobStatus]] = {
    Act.CANCEL: {J.QUEUED, J.ACTIVE, J.FAILED, J.PAUSE_REQUESTED, J.PAUSED},
    Act.REQUEUE: {J.COMPLETED, J.FAILED, J.CANCELED},
    Act.PAUSE: {J.QUEUED, J.ACTIVE},
    Act.RESUME: {J.PAUSED, J.PAUSE_REQUESTED},
}

#: (status, action) → (target with no task on a node, target with tasks still on nodes).
#: Cancel and pause wait for running tasks (…-requested); requeue ends in queued (via requeueing);
#: resume queues a paused job again and simply withdraws a pause that has not completed.
PLAN: dict[tuple[JobStatus, JobAction], tuple[JobStatus, JobStatus]] = {
    (J.QUEUED, Act.CANCEL): (J.CANCELED, J.CANCEL_REQUESTED),
    (J.ACTIVE, Act.CANCEL): (J.CANCELED, J.CANCEL_REQUESTED),
    (J.FAILED, Act.CANCEL): (J.CANCELED, J.CANCEL_REQUESTED),
    (J.PAUSE_REQUESTED, Act.CANCEL): (J.CANCELED, J.CANCEL_REQUESTED),
    (J.PAUSED, Act.CANCEL): (J.CANCELED, J.CANCEL_REQUESTED),
    (J.COMPLETED, Act.REQUEUE): (J.QUEUED, J.QUEUED),
    (J.FAILED, Act.REQUEUE): (J.QUEUED, J.QUEUED),
    (J.CANCELED, Act.REQUEUE): (J.QUEUED, J.QUEUED),
    (J.QUEUED, Act.PAUSE): (J.PAUSED, J.PAUSE_REQUESTED),
    (J.ACTIVE, Act.PAUSE): (J.PAUSED, J.PAUSE_REQUESTED),
    (J.PAUSED, Act.RESUME): (J.QUEUED, J.QUEUED),
    (J.PAUSE_REQUESTED, Act.RESUME): (J.ACTIVE, J.ACTIVE),
}

#: Only these statuses can have tasks running on nodes: eviction interrupts them before a job goes
#: back to queued, an outcome cancels the rest, and a pause settles only once none runs.
CAN_RUN_TASKS = {J.ACTIVE, J.PAUSE_REQUESTED, J.CANCEL_REQUESTED}


def test_the_plan_table_agrees_with_the_needs_table() -> None:
    assert set(PLAN) == {(s, a) for a, ss in NEEDS.items() for s in ss}


@pytest.mark.parametrize(
    ("status", "action", "active_tasks"),
    [
        pytest.param(s, a, n, id=f"{s.value}:{a.value}:{'busy' if n else 'idle'}")
        for s, a, n in itertools.product(J, Act, (0, 2))
    ],
)
def test_plan_job_action(status: JobStatus, action: JobAction, active_tasks: int) -> None:
    row = PLAN.get((status, action))
    if row is not None:
        expected = row[1] if active_tasks else row[0]
        assert plan_job_action(job_id="j-1", status=status, action=action, active_tasks=active_tasks) is (
            expected
        )
        return
    with pytest.raises(InvalidTransition) as err:
        plan_job_action(job_id="j-1", status=status, action=action, active_tasks=active_tasks)
    message = str(err.value)
    assert err.value.current == status.value
    assert message.startswith(f"cannot {action.value} job j-1: it is {status.value};")
    needed = message.split(f"{action.value} needs ", 1)[1]
    assert set(needed.split(", ")) == {s.value for s in NEEDS[action]}


@pytest.mark.parametrize(
    ("status", "action", "active_tasks"),
    [
        pytest.param(s, a, n, id=f"{s.value}:{a.value}:{'busy' if n else 'idle'}")
        for (s, a), n in itertools.product(PLAN, (0, 2))
        if n == 0 or s in CAN_RUN_TASKS
    ],
)
def test_every_planned_target_passes_the_transition_check(
    status: JobStatus, action: JobAction, active_tasks: int
) -> None:
    """The engine checks the planned move against the table; a plan the table refuses would turn a
    legal user action into an error (e.g. pausing an admitted job between two dispatches)."""
    target = plan_job_action(job_id="j-1", status=status, action=action, active_tasks=active_tasks)
    if action is Act.REQUEUE:
        check_job("j-1", status, J.REQUEUEING, action.value)
        check_job("j-1", J.REQUEUEING, target, action.value)
    else:
        check_job("j-1", status, target, action.value)


@pytest.mark.parametrize(
    ("status", "all_tasks"),
    [
        (J.COMPLETED, True),  # seed note: a completed job requeues all its tasks
        (J.FAILED, False),  # … otherwise only the non-completed ones
        (J.CANCELED, False),
    ],
)
def test_requeue_all_tasks(status: JobStatus, all_tasks: bool) -> None:
    assert requeue_all_tasks(status) is all_tasks


# -- job outcome ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "fraction", "threshold"),
    [
        (10, 0.1, 1),
        (11, 0.1, 2),  # ceil(1.1)
        (3, 0.5, 2),  # ceil(1.5)
        (9, 0.1, 1),
        (20, 0.1, 2),
        (1, 0.1, 1),
        (0, 0.1, 1),  # at least 1
        (10, 0.0, 1),  # at least 1
        (10, 1.0, 10),
        (100, 0.07, 7),  # 0.07 × 100 is 7.000000000000001 in floats: still 7
        (100, 0.14, 14),
        (1_000_000, 0.1, 100_000),
    ],
)
def test_fail_threshold(total: int, fraction: float, threshold: int) -> None:
    assert fail_threshold(total, fraction) == threshold


def counts(**by_status: int) -> dict[TaskStatus, int]:
    c = dict.fromkeys(T, 0)
    for name, n in by_status.items():
        c[T(name.replace("_", "-"))] = n
    return c


OUTCOMES = [
    # (label, job status, task counts, fail_fraction, outcome)
    ("all completed", J.ACTIVE, counts(completed=10), 0.1, J.COMPLETED),
    ("threshold reached, tasks left", J.ACTIVE, counts(failed=1, queued=5, active=4), 0.1, J.FAILED),
    ("below threshold, tasks left", J.ACTIVE, counts(failed=1, queued=6, active=4), 0.1, None),
    ("below threshold, nothing left", J.ACTIVE, counts(failed=1, completed=19), 0.1, J.FAILED),
    ("below threshold, rest canceled", J.ACTIVE, counts(failed=1, completed=9, canceled=10), 0.1, J.FAILED),
    ("soft-failed can still run", J.ACTIVE, counts(failed=1, soft_failed=1, completed=18), 0.1, None),
    ("paused can still run", J.ACTIVE, counts(failed=1, paused=1, completed=18), 0.1, None),
    ("queued can still run", J.ACTIVE, counts(failed=1, queued=1, completed=18), 0.1, None),
    ("half may fail: 4 of 10", J.ACTIVE, counts(failed=4, active=6), 0.5, None),
    ("half may fail: 5 of 10", J.ACTIVE, counts(failed=5, active=5), 0.5, J.FAILED),
    ("completed and canceled", J.ACTIVE, counts(completed=8, canceled=2), 0.1, J.CANCELED),
    ("all canceled", J.ACTIVE, counts(canceled=10), 0.1, J.CANCELED),
    ("still running", J.ACTIVE, counts(completed=5, active=5), 0.1, None),
    ("nothing started", J.ACTIVE, counts(queued=10), 0.1, None),
    ("queued job over threshold", J.QUEUED, counts(failed=1, queued=9), 0.1, J.FAILED),
    ("queued job, tasks waiting", J.QUEUED, counts(queued=9, completed=1), 0.1, None),
    # a job being paused or canceled is settled by settle_requested, not by the outcome rules
    ("pause-requested", J.PAUSE_REQUESTED, counts(completed=10), 0.1, None),
    ("cancel-requested", J.CANCEL_REQUESTED, counts(failed=10), 0.1, None),
    ("paused", J.PAUSED, counts(failed=1, paused=9), 0.1, None),
    ("already completed", J.COMPLETED, counts(completed=10), 0.1, None),
    ("already failed", J.FAILED, counts(failed=10), 0.1, None),
]


@pytest.mark.parametrize(
    ("status", "task_counts", "fraction", "outcome"),
    [pytest.param(*row[1:], id=row[0]) for row in OUTCOMES],
)
def test_job_outcome(
    status: JobStatus, task_counts: dict[TaskStatus, int], fraction: float, outcome: JobStatus | None
) -> None:
    total = sum(task_counts.values())
    policy = FailurePolicy(fail_fraction=fraction)
    assert job_outcome(status=status, counts=task_counts, total=total, policy=policy) is outcome
    if outcome is not None:
        check_job("j-1", status, outcome, "finish")  # and the table lets the job get there


@pytest.mark.parametrize(
    ("status", "active_tasks", "settled"),
    [
        (J.CANCEL_REQUESTED, 0, J.CANCELED),
        (J.CANCEL_REQUESTED, 1, None),
        (J.PAUSE_REQUESTED, 0, J.PAUSED),
        (J.PAUSE_REQUESTED, 3, None),
        *((s, 0, None) for s in J if s not in (J.CANCEL_REQUESTED, J.PAUSE_REQUESTED)),
    ],
)
def test_settle_requested(status: JobStatus, active_tasks: int, settled: JobStatus | None) -> None:
    assert settle_requested(status, active_tasks) is settled


# -- task failure policy ---------------------------------------------------------------------------

DEFAULT = FailurePolicy()
FAIL_FAST_2 = FailurePolicy(fail_fast_exit_codes=(2,))
RETRY_ON_1 = FailurePolicy(retry_on_exit_codes=(1, 137))
BOTH = FailurePolicy(retry_on_exit_codes=(1, 2), fail_fast_exit_codes=(2,))

FAILURES = [
    # (label, failed_by, node, exit code, policy, status, failed_by after, words in the reason)
    ("1st distinct node", (), "a", 1, DEFAULT, T.SOFT_FAILED, ("a",), "will retry on another node"),
    ("2nd distinct node", ("a",), "b", 1, DEFAULT, T.SOFT_FAILED, ("a", "b"), "failed on b"),
    ("3rd distinct node is the last", ("a", "b"), "c", 1, DEFAULT, T.FAILED, ("a", "b", "c"), "3 distinct"),
    ("same node twice counts once", ("a",), "a", 1, DEFAULT, T.SOFT_FAILED, ("a",), "will retry"),
    ("same node again, 2 distinct", ("a", "b"), "a", 1, DEFAULT, T.SOFT_FAILED, ("a", "b"), "will retry"),
    ("no exit code (killed)", ("a",), "b", None, DEFAULT, T.SOFT_FAILED, ("a", "b"), "will retry"),
    ("max_attempts=1", (), "a", 1, FailurePolicy(max_attempts=1), T.FAILED, ("a",), "1 distinct"),
    ("max_attempts=5, 4th", ("a", "b", "c"), "d", 1, FailurePolicy(max_attempts=5), T.SOFT_FAILED, ("a", "b", "c", "d"), "retry"),
    ("fail-fast code at once", (), "a", 2, FAIL_FAST_2, T.FAILED, ("a",), "exit code 2 is fail-fast"),
    ("other code retries", (), "a", 1, FAIL_FAST_2, T.SOFT_FAILED, ("a",), "will retry"),
    ("retryable code", (), "a", 137, RETRY_ON_1, T.SOFT_FAILED, ("a",), "will retry"),
    ("code not in retry_on", (), "a", 3, RETRY_ON_1, T.FAILED, ("a",), "exit code 3 is not retryable"),
    ("retry_on still counts nodes", ("a", "b"), "c", 1, RETRY_ON_1, T.FAILED, ("a", "b", "c"), "3 distinct"),
    ("no exit code with retry_on", (), "a", None, RETRY_ON_1, T.SOFT_FAILED, ("a",), "will retry"),
    ("fail-fast beats retry_on", (), "a", 2, BOTH, T.FAILED, ("a",), "fail-fast"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("failed_by", "node", "exit_code", "policy", "status", "after", "words"),
    [pytest.param(*row[1:], id=row[0]) for row in FAILURES],
)
def test_decide_failure(
    failed_by: tuple[str, ...],
    node: str,
    exit_code: int | None,
    policy: FailurePolicy,
    status: TaskStatus,
    after: tuple[str, ...],
    words: str,
) -> None:
    d = decide_failure(failed_by=failed_by, node=node, exit_code=exit_code, policy=policy, message="boom")
    assert (d.status, d.failed_by) == (status, after)
    assert words in d.reason
    assert "boom" in d.reason


def test_a_task_fails_on_exactly_the_third_distinct_node() -> None:
    failed_by: tuple[str, ...] = ()
    seen = []
    for node in ["n1", "n1", "n2", "n2", "n1", "n3"]:
        d = decide_failure(failed_by=failed_by, node=node, exit_code=1, policy=DEFAULT, message="x")
        failed_by = d.failed_by
        seen.append(d.status)
    assert seen == [T.SOFT_FAILED] * 5 + [T.FAILED]
    assert failed_by == ("n1", "n2", "n3")


@pytest.mark.parametrize(
    ("interruptions", "max_interruptions", "status", "count"),
    [
        (0, 5, T.QUEUED, 1),
        (3, 5, T.QUEUED, 4),
        (4, 5, T.FAILED, 5),  # the 5th interruption is the last
        (0, 1, T.FAILED, 1),
        (1, 3, T.QUEUED, 2),
        (2, 3, T.FAILED, 3),
    ],
)
def test_decide_interruption(
    interruptions: int, max_interruptions: int, status: TaskStatus, count: int
) -> None:
    new, n, message = decide_interruption(
        interruptions=interruptions, max_interruptions=max_interruptions, reason="node n1 lost"
    )
    assert (new, n) == (status, count)
    assert "node n1 lost" in message
    if status is T.FAILED:
        assert f"interrupted {count} times" in message


def test_default_policy_fails_a_task_on_its_fifth_interruption() -> None:
    n, seen = 0, []
    for _ in range(5):
        status, n, _msg = decide_interruption(
            interruptions=n, max_interruptions=DEFAULT.max_interruptions, reason="evicted"
        )
        seen.append(status)
    assert seen == [T.QUEUED] * 4 + [T.FAILED]


@pytest.mark.parametrize(
    ("failures", "threshold", "blocked"),
    [(0, 3, False), (2, 3, False), (3, 3, True), (4, 3, True), (0, 1, False), (1, 1, True)],
)
def test_blocklisted(failures: int, threshold: int, blocked: bool) -> None:
    assert blocklisted(failures, threshold) is blocked


def test_failure_policy_defaults_are_designs() -> None:
    p = FailurePolicy()
    assert (p.max_attempts, p.blocklist_threshold, p.fail_fraction, p.max_interruptions) == (3, 3, 0.1, 5)
    assert p.retry_on_exit_codes == () and p.fail_fast_exit_codes == ()
