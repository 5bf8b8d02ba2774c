"""Embedded admission math (DESIGN §4.3): what one queue admits, keeps waiting, and preempts.

Quantities are milli-units: 2 cpu is 2000.
"""

from __future__ import annotations

import pytest

from jobqd.domain.admission import (
    Candidate,
    Preemption,
    QueueDef,
    QueueState,
    Strategy,
    job_request,
    plan_queue,
)

CPU = 1000
GI = 2**30 * 1000


def waiting(job_id: str, cpu: int, *, priority: int = 0, seq: int) -> Candidate:
    return Candidate(job_id, priority, seq, {"cpu": cpu * CPU}, admitted=False)


def running(job_id: str, cpu: int, *, priority: int = 0, seq: int) -> Candidate:
    return Candidate(job_id, priority, seq, {"cpu": cpu * CPU}, admitted=True)


def queue(
    cpu: int | None = 4,
    *,
    strategy: Strategy = Strategy.BEST_EFFORT_FIFO,
    preemption: Preemption = Preemption.NEVER,
    state: QueueState = QueueState.ACTIVE,
) -> QueueDef:
    quotas = {} if cpu is None else {"cpu": cpu * CPU}
    return QueueDef("q", quotas, strategy, preemption, state)


# -- quota -----------------------------------------------------------------------------------------


def test_quota_admits_what_fits_and_says_what_is_missing() -> None:
    plan = plan_queue(queue(4), [waiting("a", 2, seq=1), waiting("b", 2, seq=2), waiting("c", 2, seq=3)])
    assert plan.admit == ["a", "b"]
    assert list(plan.waiting) == ["c"]
    assert plan.waiting["c"] == "couldn't admit to queue q: insufficient unused quota for cpu, 2 more needed"
    assert plan.evict == [] and plan.inadmissible == {}


@pytest.mark.parametrize(
    ("quota_milli", "held", "want", "missing"),
    [
        (4000, 3000, 2000, "1 more needed"),
        (2500, 2000, 1000, "500m more needed"),
        (4000, 0, 5000, "1 more needed"),  # bigger than the whole quota: waits, never admitted
    ],
)
def test_the_shortfall_is_quota_minus_usage(quota_milli: int, held: int, want: int, missing: str) -> None:
    jobs = [Candidate("w", 0, 2, {"cpu": want}, admitted=False)]
    if held:
        jobs.append(Candidate("h", 0, 1, {"cpu": held}, admitted=True))
    plan = plan_queue(QueueDef("q", {"cpu": quota_milli}), jobs)
    assert plan.admit == []
    assert plan.waiting["w"].endswith(f"insufficient unused quota for cpu, {missing}")


def test_admitted_jobs_count_against_the_quota() -> None:
    plan = plan_queue(queue(4), [running("r", 3, seq=1), waiting("a", 1, seq=2), waiting("b", 1, seq=3)])
    assert plan.admit == ["a"]
    assert "1 more needed" in plan.waiting["b"]


def test_a_resource_without_quota_is_unlimited() -> None:
    big = Candidate("big", 0, 1, {"cpu": 1 * CPU, "memory": 10_000 * GI, "gpu": 64 * CPU}, admitted=False)
    plan = plan_queue(queue(4), [big])
    assert plan.admit == ["big"]
    plan = plan_queue(queue(None), [waiting(f"j{i}", 1000, seq=i) for i in range(50)])
    assert plan.admit == [f"j{i}" for i in range(50)]
    assert plan.waiting == {}


def test_only_a_limited_resource_blocks() -> None:
    q = QueueDef("q", {"memory": 4 * GI})
    jobs = [
        Candidate("a", 0, 1, {"cpu": 100 * CPU, "memory": 3 * GI}, admitted=False),
        Candidate("b", 0, 2, {"cpu": 1 * CPU, "memory": 2 * GI}, admitted=False),
    ]
    plan = plan_queue(q, jobs)
    assert plan.admit == ["a"]
    assert "insufficient unused quota for memory" in plan.waiting["b"]


# -- order -----------------------------------------------------------------------------------------


def test_priority_first_then_submission_order() -> None:
    jobs = [
        waiting("low-old", 1, priority=0, seq=1),
        waiting("high-new", 1, priority=5, seq=4),
        waiting("mid", 1, priority=3, seq=2),
        waiting("high-old", 1, priority=5, seq=3),
        waiting("low-new", 1, priority=0, seq=5),
    ]
    plan = plan_queue(queue(3), jobs)
    assert plan.admit == ["high-old", "high-new", "mid"]
    assert set(plan.waiting) == {"low-old", "low-new"}


def test_fifo_within_a_priority_whatever_the_input_order() -> None:
    jobs = [waiting(f"j{s}", 1, seq=s) for s in (7, 3, 9, 1, 5)]
    assert plan_queue(queue(3), jobs).admit == ["j1", "j3", "j5"]


@pytest.mark.parametrize(
    ("strategy", "admitted", "waits"),
    [
        # the 4-cpu head does not fit; StrictFIFO keeps the small job behind it
        (Strategy.STRICT_FIFO, [], {"head", "small"}),
        # BestEffortFIFO lets the smaller, later job through
        (Strategy.BEST_EFFORT_FIFO, ["small"], {"head"}),
    ],
)
def test_strict_fifo_blocks_behind_the_head(strategy: Strategy, admitted: list[str], waits: set[str]) -> None:
    jobs = [running("r", 2, seq=0), waiting("head", 4, seq=1), waiting("small", 1, seq=2)]
    plan = plan_queue(queue(4, strategy=strategy), jobs)
    assert plan.admit == admitted
    assert set(plan.waiting) == waits
    assert "2 more needed" in plan.waiting["head"]
    if strategy is Strategy.STRICT_FIFO:
        assert plan.waiting["small"] == "waiting behind job head in queue q (StrictFIFO)"


def test_strict_fifo_admits_in_order_until_the_first_that_does_not_fit() -> None:
    jobs = [waiting("a", 1, seq=1), waiting("b", 2, seq=2), waiting("c", 2, seq=3), waiting("d", 1, seq=4)]
    plan = plan_queue(queue(4, strategy=Strategy.STRICT_FIFO), jobs)
    assert plan.admit == ["a", "b"]
    assert "insufficient unused quota" in plan.waiting["c"]
    assert "waiting behind job c" in plan.waiting["d"]


# -- preemption ------------------------------------------------------------------------------------

#: 4 cpu in use: two low-priority jobs (the newer one is seq 3) and one of middle priority.
HOLDERS = [
    running("low-old", 1, priority=0, seq=1),
    running("mid", 2, priority=1, seq=2),
    running("low-new", 1, priority=0, seq=3),
]


@pytest.mark.parametrize(
    ("need", "priority", "victims"),
    [
        (1, 5, ["low-new"]),  # the newest of the lowest priority, and only it
        (2, 5, ["low-new", "low-old"]),
        (3, 5, ["low-new", "mid"]),  # mid was needed; then low-old, taken before it, is not
        (4, 5, ["low-new", "low-old", "mid"]),
        (1, 1, ["low-new"]),  # priority 1 may evict priority 0 …
        (2, 1, ["low-new", "low-old"]),
        (3, 1, []),  # … but not its equal, so it does not fit: nobody is evicted
        (1, 0, []),  # equal priority is never preempted
        (5, 5, []),  # more than the quota: evicting everyone would not help
    ],
)
def test_lower_priority_preemption(need: int, priority: int, victims: list[str]) -> None:
    plan = plan_queue(
        queue(4, preemption=Preemption.LOWER_PRIORITY),
        [*HOLDERS, waiting("new", need, priority=priority, seq=10)],
    )
    assert [v for v, _ in plan.evict] == victims
    assert all(reason == "preempted by job new in queue q" for _, reason in plan.evict)
    if victims:
        assert plan.admit == ["new"] and plan.waiting == {}
    else:
        assert plan.admit == []
        assert "insufficient unused quota for cpu" in plan.waiting["new"]


def test_victims_made_unnecessary_by_a_later_one_are_kept() -> None:
    holders = [
        running("big-old", 3, priority=0, seq=1),
        running("small-a", 1, priority=0, seq=2),
        running("small-b", 1, priority=0, seq=3),
    ]
    # greedy, newest first: small-b, small-a, then big-old — after which both small ones fit again
    plan = plan_queue(
        queue(5, preemption=Preemption.LOWER_PRIORITY), [*holders, waiting("new", 3, priority=1, seq=9)]
    )
    assert [v for v, _ in plan.evict] == ["big-old"]
    assert plan.admit == ["new"]
    # needing 4: big-old and the newest small one; small-a (taken before big-old) is kept
    plan = plan_queue(
        queue(5, preemption=Preemption.LOWER_PRIORITY), [*holders, waiting("new", 4, priority=1, seq=9)]
    )
    assert [v for v, _ in plan.evict] == ["small-b", "big-old"]


def test_a_free_quota_needs_no_preemption() -> None:
    plan = plan_queue(
        queue(5, preemption=Preemption.LOWER_PRIORITY), [*HOLDERS, waiting("new", 1, priority=9, seq=10)]
    )
    assert plan.evict == [] and plan.admit == ["new"]


def test_a_job_admitted_by_preemption_is_not_preempted_by_a_later_one_of_its_priority() -> None:
    plan = plan_queue(
        queue(4, preemption=Preemption.LOWER_PRIORITY),
        [*HOLDERS, waiting("hi-1", 2, priority=5, seq=10), waiting("hi-2", 3, priority=5, seq=11)],
    )
    # hi-1 evicts the two low jobs; hi-2 could fit only by evicting mid *and* hi-1, its equal
    assert plan.admit == ["hi-1"]
    assert plan.evict == [
        ("low-new", "preempted by job hi-1 in queue q"),
        ("low-old", "preempted by job hi-1 in queue q"),
    ]
    assert "3 more needed" in plan.waiting["hi-2"]


def test_successive_preemptions_name_their_own_preemptor() -> None:
    plan = plan_queue(
        queue(4, preemption=Preemption.LOWER_PRIORITY),
        [*HOLDERS, waiting("hi-1", 2, priority=5, seq=10), waiting("hi-2", 2, priority=5, seq=11)],
    )
    assert plan.admit == ["hi-1", "hi-2"]
    assert plan.evict == [
        ("low-new", "preempted by job hi-1 in queue q"),
        ("low-old", "preempted by job hi-1 in queue q"),
        ("mid", "preempted by job hi-2 in queue q"),
    ]


def test_never_policy_never_evicts() -> None:
    plan = plan_queue(
        queue(4, preemption=Preemption.NEVER), [*HOLDERS, waiting("new", 1, priority=99, seq=10)]
    )
    assert plan.evict == []
    assert plan.admit == []
    assert "1 more needed" in plan.waiting["new"]


# -- queue state -----------------------------------------------------------------------------------


def test_a_held_queue_admits_nothing_and_keeps_what_it_admitted() -> None:
    plan = plan_queue(
        queue(None, state=QueueState.HELD), [*HOLDERS, waiting("a", 1, seq=8), waiting("b", 1, seq=9)]
    )
    assert plan.admit == [] and plan.evict == [] and plan.waiting == {}
    assert plan.inadmissible == {"a": "queue q is held", "b": "queue q is held"}


def test_a_draining_queue_also_evicts() -> None:
    plan = plan_queue(queue(None, state=QueueState.DRAINING), [*HOLDERS, waiting("a", 1, seq=8)])
    assert plan.admit == []
    assert plan.inadmissible == {"a": "queue q is draining"}
    assert sorted(v for v, _ in plan.evict) == ["low-new", "low-old", "mid"]
    assert all("queue q is draining" in reason for _, reason in plan.evict)


# -- a job's request -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parallelism", "unfinished", "tasks"),
    [
        (4, 10, 4),  # parallelism caps it
        (4, 2, 2),  # fewer tasks left than the cap
        (0, 10, 10),  # 0 = no cap: every unfinished task
        (1, 1_000_000, 1),
    ],
)
def test_job_request(parallelism: int, unfinished: int, tasks: int) -> None:
    per_task = {"cpu": 500, "memory": 1 * GI}
    assert job_request(per_task, parallelism=parallelism, unfinished=unfinished) == {
        "cpu": 500 * tasks,
        "memory": GI * tasks,
    }


def test_job_request_of_a_job_without_resources_is_empty() -> None:
    assert job_request({}, parallelism=3, unfinished=10) == {}
