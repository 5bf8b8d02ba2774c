"""Embedded admission math: which waiting jobs a queue admits, and whom it preempts.

Pure and deterministic: given the queues and the jobs competing in them, `plan_queue` returns the
decisions; the local admission backend applies them. Phases and reasons mirror what Kueue writes
(DESIGN §4.3), so a client cannot tell the two backends apart except by queue names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from jobqd.domain.quantity import format_milli


class Strategy(StrEnum):
    BEST_EFFORT_FIFO = "best-effort-fifo"
    STRICT_FIFO = "strict-fifo"


class Preemption(StrEnum):
    NEVER = "never"
    LOWER_PRIORITY = "lower-priority"


class QueueState(StrEnum):
    ACTIVE = "active"
    HELD = "held"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class QueueDef:
    name: str
    #: resource → quota in milli-units; a resource not listed is unlimited.
    quotas: Mapping[str, int] = field(default_factory=dict)
    strategy: Strategy = Strategy.BEST_EFFORT_FIFO
    preemption: Preemption = Preemption.NEVER
    state: QueueState = QueueState.ACTIVE


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job competing in a queue (waiting) or holding quota in it (admitted)."""

    job_id: str
    priority: int
    #: submission order; lower is older
    seq: int
    #: total request in milli-units: min(parallelism, unfinished tasks) × per-task resources
    request: Mapping[str, int]
    admitted: bool


@dataclass(slots=True)
class QueuePlan:
    admit: list[str] = field(default_factory=list)
    #: (victim job id, reason)
    evict: list[tuple[str, str]] = field(default_factory=list)
    #: waiting job id → reason it waits (phase stays submitted)
    waiting: dict[str, str] = field(default_factory=dict)
    #: job id → reason it is inadmissible (held / draining queue)
    inadmissible: dict[str, str] = field(default_factory=dict)


def job_request(per_task: Mapping[str, int], *, parallelism: int, unfinished: int) -> dict[str, int]:
    """What a job reserves: min(parallelism, unfinished tasks) × per-task resources."""
    n = unfinished if parallelism <= 0 else min(parallelism, unfinished)
    n = max(n, 1)
    return {r: v * n for r, v in per_task.items()}


def _shortfall(
    quotas: Mapping[str, int], usage: Mapping[str, int], request: Mapping[str, int]
) -> tuple[str, int] | None:
    for res, amount in sorted(request.items()):
        quota = quotas.get(res)
        if quota is None or amount == 0:
            continue
        free = quota - usage.get(res, 0)
        if amount > free:
            return res, amount - free
    return None


def add_usage(usage: dict[str, int], request: Mapping[str, int], sign: int = 1) -> None:
    """Add (sign 1) or take back (sign -1) a request's amounts to a usage total, in place."""
    for res, amount in request.items():
        usage[res] = usage.get(res, 0) + sign * amount


def plan_queue(queue: QueueDef, jobs: Iterable[Candidate]) -> QueuePlan:
    """Decide one queue. Order: priority (high first), then submission (old first)."""
    plan = QueuePlan()
    jobs = list(jobs)
    admitted = [j for j in jobs if j.admitted]
    waiting = sorted((j for j in jobs if not j.admitted), key=lambda j: (-j.priority, j.seq))
    if queue.state is not QueueState.ACTIVE:
        why = f"queue {queue.name} is {queue.state.value}"
        for j in waiting:
            plan.inadmissible[j.job_id] = why
        if queue.state is QueueState.DRAINING:
            plan.evict.extend((j.job_id, f"evicted: {why}") for j in admitted)
        return plan
    usage: dict[str, int] = {}
    for j in admitted:
        add_usage(usage, j.request)
    # victims are taken newest-first among the lowest priorities (Kueue's LowerPriority order)
    holders = sorted(admitted, key=lambda j: (j.priority, -j.seq))
    blocked_by: str | None = None
    for cand in waiting:
        if blocked_by is not None:
            plan.waiting[cand.job_id] = f"waiting behind job {blocked_by} in queue {queue.name} (StrictFIFO)"
            continue
        short = _shortfall(queue.quotas, usage, cand.request)
        if short is None:
            add_usage(usage, cand.request)
            plan.admit.append(cand.job_id)
            holders.append(cand)
            holders.sort(key=lambda j: (j.priority, -j.seq))
            continue
        if queue.preemption is Preemption.LOWER_PRIORITY:
            victims = _pick_victims(queue, usage, cand, holders)
            if victims is not None:
                for v in victims:
                    add_usage(usage, v.request, -1)
                    holders.remove(v)
                    plan.evict.append((v.job_id, f"preempted by job {cand.job_id} in queue {queue.name}"))
                add_usage(usage, cand.request)
                plan.admit.append(cand.job_id)
                holders.append(cand)
                holders.sort(key=lambda j: (j.priority, -j.seq))
                continue
        res, more = short
        plan.waiting[cand.job_id] = (
            f"couldn't admit to queue {queue.name}: insufficient unused quota for {res}, "
            f"{format_milli(more)} more needed"
        )
        if queue.strategy is Strategy.STRICT_FIFO:
            blocked_by = cand.job_id
    return plan


def _pick_victims(
    queue: QueueDef, usage: Mapping[str, int], cand: Candidate, holders: Sequence[Candidate]
) -> list[Candidate] | None:
    """Lower-priority admitted jobs whose eviction lets `cand` fit (None: no such set).

    As Kueue does: take the lowest priorities, newest first, until `cand` fits; then, going back
    from the last but one taken, keep every victim `cand` can fit beside — a big old job evicted
    late can make the small new ones taken before it unnecessary."""
    trial = dict(usage)
    victims: list[Candidate] = []
    for h in holders:
        if h.priority >= cand.priority:
            break
        victims.append(h)
        add_usage(trial, h.request, -1)
        if _shortfall(queue.quotas, trial, cand.request) is None:
            break
    else:
        return None
    if not victims or _shortfall(queue.quotas, trial, cand.request) is not None:
        return None
    for v in reversed(victims[:-1]):
        add_usage(trial, v.request)
        if _shortfall(queue.quotas, trial, cand.request) is None:
            victims.remove(v)  # not needed after all
        else:
            add_usage(trial, v.request, -1)
    return victims
