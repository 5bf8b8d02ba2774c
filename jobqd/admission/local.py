"""Embedded admission (`--admission local`): queues with quotas, priorities and preemption.

Keeps, per queue, the jobs waiting for admission and the jobs holding quota, so deciding a queue
costs the size of that queue, not of the whole farm; an unlimited active queue (like `default`)
admits on the spot without sorting anything. The decisions themselves are the pure
`jobqd.domain.admission.plan_queue`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from jobqd.domain import admission as math
from jobqd.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from jobqd.domain.events import EventType
from jobqd.domain.model import Job
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus
from jobqd.store import statements as sql
from jobqd.store.writer import WriteSet

if TYPE_CHECKING:
    from jobqd.engine import Engine

A = AdmissionPhase
J = JobStatus
DEFAULT_QUEUE = "default"


class _QueueState:
    __slots__ = ("_holding", "defn", "usage", "waiting")

    def __init__(self, defn: math.QueueDef) -> None:
        self.defn = defn
        #: job id → job, competing for admission
        self.waiting: dict[str, Job] = {}
        #: job id → (job, reserved request); changed only through hold() and release()
        self._holding: dict[str, tuple[Job, Mapping[str, int]]] = {}
        #: sum of the reserved requests, kept as they change: reading it (ListQueues, GetQueue)
        #: must not cost a walk over every admitted job of a large farm
        self.usage: dict[str, int] = {}

    @property
    def holding(self) -> Mapping[str, tuple[Job, Mapping[str, int]]]:
        return self._holding

    def hold(self, job: Job, request: Mapping[str, int]) -> None:
        self.release(job.id)
        self._holding[job.id] = (job, request)
        math.add_usage(self.usage, request, 1)

    def release(self, job_id: str) -> tuple[Job, Mapping[str, int]] | None:
        held = self._holding.pop(job_id, None)
        if held is not None:
            math.add_usage(self.usage, held[1], -1)
        return held


def _unfinished(job: Job) -> int:
    c = job.counts
    return job.total - c[TaskStatus.COMPLETED] - c[TaskStatus.FAILED] - c[TaskStatus.CANCELED]


class LocalAdmission:
    """The default admission backend; also the owner of local queue definitions."""

    def __init__(self, queues: Mapping[str, math.QueueDef] | None = None) -> None:
        self._queues: dict[str, _QueueState] = {n: _QueueState(q) for n, q in (queues or {}).items()}
        self._dirty: set[str] = set()
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "attach() first"
        return self._engine

    def attach(self, engine: Engine) -> None:
        self._engine = engine

    # -- Admission protocol ------------------------------------------------------------------

    def check_queue(self, name: str) -> None:
        if name not in self._queues:
            raise InvalidArgument(
                "", f"queue {name!r} does not exist (create it with `jobqctl queue create {name}`)"
            )

    def job_changed(self, job: Job) -> None:
        q = self._queues.get(job.defn.queue)
        if q is None:
            return
        # wherever the job was, take it out; then put it where it belongs now
        q.waiting.pop(job.id, None)
        held = q.release(job.id)
        alive = job.id in self.engine.jobs and job.status not in (J.COMPLETED, J.FAILED, J.CANCELED, J.PAUSED)
        if alive and job.admission is A.ADMITTED:
            q.hold(job, held[1] if held else self._request(job))
        elif (
            alive
            and job.status is J.QUEUED
            and job.admission is not A.FINISHED
            and self.engine.dependencies_met(job)
        ):
            q.waiting[job.id] = job
        self._dirty.add(job.defn.queue)

    def flush(self, ws: WriteSet) -> None:
        while self._dirty:
            name = self._dirty.pop()
            q = self._queues.get(name)
            if q is not None:
                self._decide(ws, q)

    # -- deciding --------------------------------------------------------------------------------

    @staticmethod
    def _request(job: Job) -> Mapping[str, int]:
        return math.job_request(
            job.defn.resources, parallelism=job.defn.parallelism, unfinished=max(1, _unfinished(job))
        )

    def _decide(self, ws: WriteSet, q: _QueueState) -> None:
        engine = self.engine
        d = q.defn
        if not d.quotas and d.state is math.QueueState.ACTIVE:
            # unlimited: everyone waiting fits, nobody is preempted
            for job in sorted(q.waiting.values(), key=lambda j: (-j.defn.priority, j.seq)):
                self._admit(ws, q, job)
            return
        cands = [
            math.Candidate(job.id, job.defn.priority, job.seq, self._request(job), admitted=False)
            for job in q.waiting.values()
        ] + [
            math.Candidate(job.id, job.defn.priority, job.seq, req, admitted=True)
            for job, req in q.holding.values()
        ]
        plan = math.plan_queue(d, cands)
        for victim, reason in plan.evict:
            held = q.release(victim)
            assert held is not None
            job = held[0]
            engine.evict(ws, job, reason)
            self.job_changed(job)
            self._dirty.discard(d.name)
        for job_id in plan.admit:
            self._admit(ws, q, q.waiting[job_id])
        for job_id, reason in plan.waiting.items():
            engine.set_admission(ws, q.waiting[job_id], A.SUBMITTED, reason)
        for job_id, reason in plan.inadmissible.items():
            engine.set_admission(ws, q.waiting[job_id], A.INADMISSIBLE, reason)

    def _admit(self, ws: WriteSet, q: _QueueState, job: Job) -> None:
        del q.waiting[job.id]
        q.hold(job, self._request(job))
        # pending is transient here: quota reserved and admitted in one step (DESIGN §4.3)
        self.engine.set_admission(ws, job, A.PENDING, f"quota reserved in queue {q.defn.name}")
        self.engine.admit(ws, job)

    # -- queues (local mode owns them) ---------------------------------------------------------

    def queues(self) -> list[tuple[math.QueueDef, dict[str, object]]]:
        return [(q.defn, self._usage(q)) for q in sorted(self._queues.values(), key=lambda q: q.defn.name)]

    def queue(self, name: str) -> tuple[math.QueueDef, dict[str, object]]:
        q = self._queues.get(name)
        if q is None:
            raise NotFound("queue", name)
        return q.defn, self._usage(q)

    def _usage(self, q: _QueueState) -> dict[str, object]:
        usage = {r: v for r, v in q.usage.items() if v}
        inadmissible = sum(1 for j in q.waiting.values() if j.admission is A.INADMISSIBLE)
        return {
            "pending": len(q.waiting) - inadmissible,
            "admitted": len(q.holding),
            "inadmissible": inadmissible,
            "usage": usage,
        }

    def _save(self, ws: WriteSet, d: math.QueueDef) -> None:
        ws.add(
            sql.UPSERT_QUEUE,
            (d.name, json.dumps(dict(d.quotas)), d.strategy.value, d.preemption.value, d.state.value),
        )
        self.engine.emit(ws, EventType.QUEUE_CHANGED, queue=d.name, reason=d.state.value)

    def create(self, ws: WriteSet, d: math.QueueDef) -> None:
        if d.name in self._queues:
            raise FailedPrecondition(f"queue {d.name!r} already exists")
        self._queues[d.name] = _QueueState(d)
        self._save(ws, d)

    def update(self, ws: WriteSet, d: math.QueueDef) -> None:
        q = self._queues.get(d.name)
        if q is None:
            raise NotFound("queue", d.name)
        q.defn = math.QueueDef(d.name, d.quotas, d.strategy, d.preemption, q.defn.state)
        self._save(ws, q.defn)
        self._dirty.add(d.name)

    def set_state(self, ws: WriteSet, name: str, state: math.QueueState) -> None:
        q = self._queues.get(name)
        if q is None:
            raise NotFound("queue", name)
        d = q.defn
        q.defn = math.QueueDef(d.name, d.quotas, d.strategy, d.preemption, state)
        self._save(ws, q.defn)
        if state is math.QueueState.ACTIVE:
            for job in q.waiting.values():
                if job.admission is A.INADMISSIBLE:
                    self.engine.set_admission(ws, job, A.SUBMITTED, "")
        self._dirty.add(name)

    def delete(self, ws: WriteSet, name: str) -> None:
        q = self._queues.get(name)
        if q is None:
            raise NotFound("queue", name)
        if name == DEFAULT_QUEUE:
            raise FailedPrecondition("the default queue cannot be deleted")
        live = [
            j.id
            for j in self.engine.jobs.values()
            if j.defn.queue == name and j.status not in (J.COMPLETED, J.FAILED, J.CANCELED)
        ]
        if live:
            raise FailedPrecondition(
                f"queue {name!r} still has {len(live)} unfinished job(s), e.g. {live[0]}"
            )
        del self._queues[name]
        ws.add(sql.DELETE_QUEUE, (name,))
        self.engine.emit(ws, EventType.QUEUE_CHANGED, queue=name, reason="deleted")

    def ensure_default(self, ws: WriteSet) -> None:
        if DEFAULT_QUEUE not in self._queues:
            self.create(ws, math.QueueDef(DEFAULT_QUEUE))
