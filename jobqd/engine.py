"""The engine: the one owner of jobqd's in-memory state.

Every command runs synchronously on the event loop from start to end — checking the request,
asking the domain what to do, mutating jobs and tasks and collecting the rows to write — and only
then awaits the writer. No other coroutine can interleave in the middle of a command, so the
state needs no locks. Callers are answered after the write is durable (group commit, see
`jobqd.store.writer`).

Admission and dispatch plug in through the `Admission` and `Dispatcher` protocols below: the
engine tells them what changed, they call back `admit`/`evict`/`set_admission` and the task
methods. Both are told *inside* the command, so their decisions land in the same transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from jobqd.domain import rules
from jobqd.domain.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    InvalidTransition,
    JobqError,
    NotFound,
)
from jobqd.domain.events import Event, EventType
from jobqd.domain.graph import resolve_dependencies
from jobqd.domain.model import Dependency, DependencyCondition, Job, JobDef, Task, TaskDef
from jobqd.domain.rules import JobAction
from jobqd.domain.states import (
    TERMINAL_JOB,
    TERMINAL_TASK,
    AdmissionPhase,
    JobStatus,
    TaskStatus,
    check_job,
)
from jobqd.ids import IdGenerator
from jobqd.store import codec
from jobqd.store import statements as sql
from jobqd.store.writer import WriteSet

J = JobStatus
T = TaskStatus
A = AdmissionPhase


class Clock(Protocol):
    def now(self) -> float: ...


class WallClock:
    def now(self) -> float:
        return time.time()


class Durable(Protocol):
    """What the engine needs from the store writer."""

    def submit(self, ws: WriteSet) -> asyncio.Future[None]: ...


class Admission(Protocol):
    """Decides which jobs may run. Implementations: `jobqd.admission.local`, `jobqd.admission.kueue`."""

    def attach(self, engine: Engine) -> None: ...

    def job_changed(self, job: Job) -> None:
        """`job` started or stopped competing, changed priority, or ended."""

    def flush(self, ws: WriteSet) -> None:
        """Apply pending decisions (calling back into the engine, writing to `ws`)."""

    def check_queue(self, name: str) -> None:
        """Raise InvalidArgument if jobs may not be submitted to queue `name`."""


class Dispatcher(Protocol):
    """Hands tasks of admitted jobs to nodes (`jobqd.nodes`)."""

    def kick(self) -> None:
        """Something may have become runnable: schedule a dispatch pass."""

    def abort(self, job: Job, task: Task, reason: str) -> None:
        """Stop the running attempt of `task` (its status is already decided)."""

    def job_changed(self, job: Job) -> None:
        """The job's status or admission changed (it may have become dispatchable, or stopped being)."""


class _NoDispatch:
    def kick(self) -> None:
        pass

    def abort(self, job: Job, task: Task, reason: str) -> None:
        pass

    def job_changed(self, job: Job) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SubmitItem:
    defn: JobDef
    request_id: str
    #: Digest of the request's content, to tell a retry from a conflicting reuse of request_id.
    digest: str
    owner: str = ""
    draft: bool = False


@dataclass(frozen=True, slots=True)
class JobFilter:
    statuses: frozenset[JobStatus] = frozenset()
    queues: frozenset[str] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()
    name_prefix: str = ""
    owner: str = ""
    submitted_after: float = 0.0
    submitted_before: float = 0.0
    admission: frozenset[AdmissionPhase] = frozenset()

    def matches(self, job: Job) -> bool:
        d = job.defn
        return (
            (not self.statuses or job.status in self.statuses)
            and (not self.queues or d.queue in self.queues)
            and (not self.name_prefix or d.name.startswith(self.name_prefix))
            and (not self.owner or job.owner == self.owner)
            and (not self.submitted_after or job.submit_ts >= self.submitted_after)
            and (not self.submitted_before or job.submit_ts < self.submitted_before)
            and (not self.admission or job.admission in self.admission)
            and all(d.labels.get(k) == v for k, v in self.labels)
        )


@dataclass(frozen=True, slots=True)
class ActionResult:
    jobs: list[Job]
    skipped: int


class Engine:
    def __init__(
        self,
        *,
        writer: Durable,
        admission: Admission,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
    ) -> None:
        self._writer = writer
        self.admission = admission
        self.dispatcher: Dispatcher = _NoDispatch()
        self.clock = clock or WallClock()
        self._ids = ids or IdGenerator()
        self.jobs: dict[str, Job] = {}
        #: request_id → (job id, digest)
        self.requests: dict[str, tuple[str, str]] = {}
        #: job id → ids of jobs that depend on it
        self.dependents: dict[str, set[str]] = {}
        #: (job id, task type, node) → failures
        self.blocklist: dict[tuple[str, str, str], int] = {}
        #: archived job id → its final status (dependencies on archived jobs still resolve)
        self.archived_status: Callable[[str], JobStatus | None] = lambda _id: None
        self.next_event_seq = 1
        self.next_job_seq = 1
        #: callbacks run after each command's write set is built (metrics, tests)
        self.listeners: list[Callable[[Job], None]] = []
        admission.attach(self)

    # -- committing ---------------------------------------------------------------------------

    async def _commit(self, ws: WriteSet) -> None:
        self.admission.flush(ws)
        self._save_touched(ws)
        self.dispatcher.kick()
        await self._writer.submit(ws)

    def commit_background(self, ws: WriteSet) -> asyncio.Future[None]:
        """For internal changes nobody waits on (timers, node reports)."""
        self.admission.flush(ws)
        self._save_touched(ws)
        self.dispatcher.kick()
        return self._writer.submit(ws)

    def _save_touched(self, ws: WriteSet) -> None:
        """Write the row of every job the command changed, once, with its final state.

        Job rows carry the per-status task counters (`jobs.counts`), so every task change
        touches its job too; writing each job once at the end of the command — instead of at each
        change — keeps a dispatch pass of many tasks at one job row per job, and a submit at one
        row instead of one per status and admission step.
        """
        touched, ws.touched = ws.touched, {}
        for key, job in touched.items():
            assert isinstance(job, Job)
            if key.startswith("defn:") or self.jobs.get(job.id) is not job:
                continue  # a deleted or archived job has no live row to write
            ws.add(sql.UPSERT_JOB, codec.job_row(job, with_defn=f"defn:{job.id}" in touched))

    def emit(self, ws: WriteSet, type_: EventType, **fields: object) -> Event:
        ev = Event(seq=self.next_event_seq, ts=self.clock.now(), type=type_, **fields)  # type: ignore[arg-type]
        self.next_event_seq += 1
        ws.event(ev)
        return ev

    def save_job(self, ws: WriteSet, job: Job, *, with_defn: bool = False) -> None:
        """Mark the job's row for writing; it is serialized once, at the end of the command
        (`_save_touched`), however many times the command changed the job."""
        ws.touched[job.id] = job
        if with_defn:
            ws.touched[f"defn:{job.id}"] = job

    def write_job_row_now(self, ws: WriteSet, job: Job) -> None:
        """For the few statements that read the row back in the same batch (archiving)."""
        ws.add(sql.UPSERT_JOB, codec.job_row(job, with_defn=False))

    def save_task(self, ws: WriteSet, job: Job, task: Task) -> None:
        ws.add(sql.UPSERT_TASK, codec.task_row(job.id, task))

    # -- lookups -------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound("job", job_id)
        return job

    def iter_jobs(self, flt: JobFilter, *, after_seq: int = 0) -> Iterator[Job]:
        """Live jobs matching `flt` in submission order, after `after_seq`."""
        for job in self.jobs.values():  # dict order is insertion = seq order
            if job.seq > after_seq and flt.matches(job):
                yield job

    # -- submit --------------------------------------------------------------------------------

    async def submit(self, items: Sequence[SubmitItem]) -> list[tuple[Job, bool]]:
        """Store jobs atomically (all or none); a retried request_id returns the first job."""
        results: list[tuple[Job, bool] | None] = []
        fresh: list[tuple[int, SubmitItem]] = []
        seen_in_batch: dict[str, str] = {}
        for i, item in enumerate(items):
            field = f"jobs[{i}]" if len(items) > 1 else ""
            prior = self._prior_request(item, field)
            if prior is not None:
                results.append((prior, False))
                continue
            if item.request_id:
                if seen_in_batch.get(item.request_id, item.digest) != item.digest:
                    raise Conflict(
                        f"request_id {item.request_id!r} is used twice in this batch with different content"
                    )
                seen_in_batch[item.request_id] = item.digest
            self._check_submittable(item.defn, prefix=f"{field}.spec" if field else "spec")
            results.append(None)
            fresh.append((i, item))
        ws = WriteSet()
        created: dict[int, Job] = {}
        dup: dict[str, Job] = {}
        for i, item in fresh:
            if item.request_id and item.request_id in dup:
                results[i] = (dup[item.request_id], False)
                continue
            job = self._create_job(ws, item)
            created[i] = job
            if item.request_id:
                dup[item.request_id] = job
            results[i] = (job, True)
        await self._commit(ws)
        return [r for r in results if r is not None]

    def _prior_request(self, item: SubmitItem, field: str) -> Job | None:
        if not item.request_id or item.request_id not in self.requests:
            return None
        job_id, digest = self.requests[item.request_id]
        if digest != item.digest:
            where = f"{field}.request_id" if field else "request_id"
            raise Conflict(
                f"{where}: {item.request_id!r} was already used for job {job_id} with different content"
            )
        job = self.jobs.get(job_id)
        if job is None:
            raise Conflict(
                f"request_id {item.request_id!r} was used for job {job_id}, which no longer exists"
            )
        return job

    def _check_submittable(self, defn: JobDef, *, prefix: str) -> None:
        try:
            self.admission.check_queue(defn.queue)
        except InvalidArgument as err:
            raise InvalidArgument(f"{prefix}.queue", err.problem) from None
        for i, dep in enumerate(defn.depends_on):
            if dep.job_id not in self.jobs and self.archived_status(dep.job_id) is None:
                raise InvalidArgument(
                    f"{prefix}.depends_on[{i}].job_id", f"job {dep.job_id!r} does not exist"
                )

    def _create_job(self, ws: WriteSet, item: SubmitItem) -> Job:
        now = self.clock.now()
        job = Job(
            job_id=self._ids.new(),
            seq=self.next_job_seq,
            defn=item.defn,
            owner=item.owner,
            submit_ts=now,
            status=J.UNDER_CONSTRUCTION if item.draft else J.QUEUED,
            request_id=item.request_id,
        )
        self.next_job_seq += 1
        self.jobs[job.id] = job
        if item.request_id:
            self.requests[item.request_id] = (job.id, item.digest)
            ws.add(sql.INSERT_REQUEST, (item.request_id, job.id, item.digest))
        self._link_tasks(job)
        for dep in item.defn.depends_on:
            self.dependents.setdefault(dep.job_id, set()).add(job.id)
        self.save_job(ws, job, with_defn=True)
        if item.defn.tasks:
            ws.add(sql.INSERT_CHUNK, (job.id, 0, codec.dump_tasks(item.defn.tasks)))
        self.emit(
            ws,
            EventType.JOB_SUBMITTED,
            job_id=job.id,
            job_status=job.status.value,
            admission=job.admission.value,
            queue=item.defn.queue,
            priority=item.defn.priority,
            count=job.total,
        )
        if not item.draft:
            self._start_cycle(ws, job)
        return job

    def _link_tasks(self, job: Job) -> None:
        """Materialize every task of a job with intra-job dependencies, with what it waits on."""
        tasks = job.defn.tasks
        if not tasks or not any(t.depends_on for t in tasks):
            return
        deps = resolve_dependencies(tasks)
        children: dict[int, list[int]] = {}
        for pos, parents in enumerate(deps):
            t = job.task(pos)
            t.waiting_on = frozenset(parents)
            for p in parents:
                children.setdefault(p, []).append(pos)
        job.dep_children = {p: tuple(c) for p, c in children.items()}
        job.ready = [pos for pos, parents in enumerate(deps) if not parents]
        job.cursor = job.total

    # -- drafts (CreateJob / AddTasks / CommitJob) ---------------------------------------------

    def _draft(self, job_id: str, action: str) -> Job:
        """The job, which must still be under construction for `action`."""
        job = self.get_job(job_id)
        if job.status is not J.UNDER_CONSTRUCTION:
            raise InvalidTransition(
                kind="job",
                ident=job_id,
                current=job.status.value,
                action=action,
                allowed_from="under-construction",
            )
        return job

    async def add_tasks(self, job_id: str, *, offset: int, tasks: Sequence[TaskDef]) -> int:
        job = self._draft(job_id, "add tasks to")
        existing = job.defn.tasks or ()
        if offset < 0:
            raise InvalidArgument("offset", "must be >= 0")
        if offset + len(tasks) <= len(existing) and tuple(existing[offset : offset + len(tasks)]) == tuple(
            tasks
        ):
            return len(existing)  # a retried chunk
        if offset != len(existing):
            raise FailedPrecondition(
                f"job {job_id} has {len(existing)} tasks; this chunk starts at offset {offset} "
                "(resend from the job's task count)"
            )
        job.defn = dataclasses.replace(job.defn, tasks=(*existing, *tasks))
        job.total = job.defn.task_count
        job.counts[T.QUEUED] += len(tasks)
        ws = WriteSet()
        ws.add(sql.INSERT_CHUNK, (job.id, offset, codec.dump_tasks(tasks)))
        self.save_job(ws, job)
        self.emit(ws, EventType.JOB_TASKS_ADDED, job_id=job.id, count=job.total)
        await self._commit(ws)
        return job.total

    async def commit_job(self, job_id: str) -> Job:
        job = self._draft(job_id, "commit")
        if job.total == 0:
            raise FailedPrecondition(f"job {job_id} has no tasks; add tasks before committing it")
        self._link_tasks(job)  # raises InvalidArgument for bad dependencies before any change
        ws = WriteSet()
        self._set_job_status(ws, job, J.QUEUED, action="commit", reason="")
        self._start_cycle(ws, job)
        await self._commit(ws)
        return job

    # -- job status ----------------------------------------------------------------------------

    def _set_job_status(
        self, ws: WriteSet, job: Job, new: JobStatus, *, action: str, reason: str | None = None
    ) -> None:
        check_job(job.id, job.status, new, action)
        job.status = new
        now = self.clock.now()
        if new is J.ACTIVE and not job.start_ts:
            job.start_ts = now
        if new in TERMINAL_JOB:
            job.finish_ts = now
        if reason is not None:
            job.reason = reason
        self.save_job(ws, job)
        self.emit(ws, EventType.JOB_STATUS_CHANGED, job_id=job.id, job_status=new.value, reason=job.reason)
        self.dispatcher.job_changed(job)
        for listener in self.listeners:
            listener(job)

    def set_admission(
        self, ws: WriteSet, job: Job, phase: AdmissionPhase, reason: str = "", *, flavor: str = ""
    ) -> None:
        """Record the admission backend's view of the job (no dispatch consequences)."""
        if job.admission is phase and job.reason == reason and job.flavor == flavor:
            return
        changed = job.admission is not phase
        job.admission = phase
        if phase is A.ADMITTED:
            job.admit_ts = self.clock.now()
            job.flavor = flavor
        if job.status not in TERMINAL_JOB and (reason or phase is A.ADMITTED):
            job.reason = reason
        self.save_job(ws, job)
        self.dispatcher.job_changed(job)
        if changed or reason:
            self.emit(
                ws,
                EventType.JOB_ADMISSION_CHANGED,
                job_id=job.id,
                admission=phase.value,
                reason=reason,
                queue=job.defn.queue,
            )

    def admit(self, ws: WriteSet, job: Job, *, flavor: str = "", reason: str = "") -> None:
        """The admission backend admitted `job`: its tasks may now be dispatched."""
        if job.admission is A.ADMITTED or job.status in TERMINAL_JOB:
            return
        self.set_admission(ws, job, A.ADMITTED, reason, flavor=flavor)

    def evict(self, ws: WriteSet, job: Job, reason: str, *, phase: AdmissionPhase = A.SUBMITTED) -> None:
        """Admission was withdrawn: interrupt active tasks (not failures), back to queued."""
        if job.admission is not A.ADMITTED and job.admission is not A.PENDING:
            return
        self.interrupt_tasks(ws, job, reason)
        if job.status is J.ACTIVE:
            self._set_job_status(ws, job, J.QUEUED, action="evict", reason=reason)
        self.set_admission(ws, job, phase, reason)

    def interrupt_tasks(self, ws: WriteSet, job: Job, reason: str) -> None:
        for task in list(job.tasks.values()):
            if task.status is T.ACTIVE:
                self.interrupt_task(ws, job, task, reason)

    def interrupt_task(self, ws: WriteSet, job: Job, task: Task, reason: str, *, abort: bool = True) -> None:
        """An active task stops through no fault of its own (DESIGN §4.2 'interrupted')."""
        new, count, message = rules.decide_interruption(
            interruptions=task.interruptions,
            max_interruptions=job.defn.policy.max_interruptions,
            reason=reason,
        )
        if abort:
            self.dispatcher.abort(job, task, reason)
        self._task_left_node(job, task)
        task.interruptions = count
        task.message = message
        if new is T.FAILED:
            task.finish_ts = self.clock.now()
        self._set_task(ws, job, task, new, action="interrupt")

    def _task_left_node(self, job: Job, task: Task) -> None:
        job.running = max(0, job.running - 1)

    def _set_task(self, ws: WriteSet, job: Job, task: Task, new: TaskStatus, *, action: str) -> None:
        job.set_task_status(task, new, action=action)
        ws.touched[job.id] = job
        self.save_task(ws, job, task)
        self.emit(
            ws,
            EventType.TASK_STATUS_CHANGED,
            job_id=job.id,
            task_id=job.task_id(task.pos),
            task_status=new.value,
            node=task.node,
            attempt=task.attempt,
            reason=task.message,
        )
        if new in (T.FAILED, T.CANCELED) and job.dep_children:
            # tasks that need this one can never run: cancel them, or the job would wait forever
            for child in job.dep_children.get(task.pos, ()):
                c = job.task(child)
                if c.status in (T.QUEUED, T.SOFT_FAILED, T.PAUSED):
                    c.message = f"dependency {job.defn.task_def(task.pos).name!r} {new.value}"
                    c.finish_ts = self.clock.now()
                    self._set_task(ws, job, c, T.CANCELED, action="cancel")
        if new is T.COMPLETED and job.dep_children:
            for child in job.dep_children.get(task.pos, ()):
                c = job.task(child)
                c.waiting_on = c.waiting_on - {task.pos}
                if not c.waiting_on and c.status in (T.QUEUED, T.SOFT_FAILED):
                    heapq.heappush(job.ready, c.pos)

    def settle(self, ws: WriteSet, job: Job) -> None:
        """Re-derive the job's status from its tasks after they changed (DESIGN §4.1 outcome rules)."""
        st = job.status
        if st is J.QUEUED and job.counts[T.ACTIVE]:
            self._set_job_status(ws, job, J.ACTIVE, action="start")
            st = J.ACTIVE
        if st is J.PAUSE_REQUESTED and not job.counts[T.ACTIVE]:
            # the last running tasks may have finished the whole job: then it ends, not pauses
            ended = rules.job_outcome(
                status=J.ACTIVE, counts=job.counts, total=job.total, policy=job.defn.policy
            )
            if ended is not None:
                self._set_job_status(ws, job, ended, action="finish")
                self._cancel_remaining(ws, job, f"job {ended.value}")
                self._finish(ws, job)
                return
        settled = rules.settle_requested(st, job.counts[T.ACTIVE])
        if settled is not None:
            self._set_job_status(ws, job, settled, action="settle")
            if settled is J.CANCELED:
                self._finish(ws, job)
            else:
                self._release(ws, job, "paused")
            return
        outcome = rules.job_outcome(status=st, counts=job.counts, total=job.total, policy=job.defn.policy)
        if outcome is None:
            return
        reason = ""
        if outcome is J.FAILED:
            failed = job.counts[T.FAILED]
            reason = f"{failed} of {job.total} tasks failed"
        self._set_job_status(ws, job, outcome, action="finish", reason=reason)
        self._cancel_remaining(ws, job, f"job {outcome.value}")
        self._finish(ws, job)

    def _cancel_remaining(self, ws: WriteSet, job: Job, reason: str) -> None:
        """Cancel every task that has not ended; running ones are aborted on their nodes."""
        for task in list(job.tasks.values()):
            if task.status in TERMINAL_TASK:
                continue
            if task.status is T.ACTIVE:
                self.dispatcher.abort(job, task, reason)
                self._task_left_node(job, task)
            task.message = reason
            self._set_task(ws, job, task, T.CANCELED, action="cancel")
        if job.rest_status not in TERMINAL_TASK:
            job.set_rest_status(T.CANCELED)
            self.save_job(ws, job)

    def _finish(self, ws: WriteSet, job: Job) -> None:
        """The job is terminal: release its admission and wake its dependents."""
        self.set_admission(ws, job, A.FINISHED)
        self.admission.job_changed(job)
        for dep_id in sorted(self.dependents.get(job.id, ())):
            dependent = self.jobs.get(dep_id)
            if dependent is not None and dependent.status is J.QUEUED:
                self._start_cycle(ws, dependent)

    def _release(self, ws: WriteSet, job: Job, reason: str) -> None:
        """The job stops competing (paused): its admission goes back to submitted."""
        if job.admission is not A.FINISHED:
            self.set_admission(ws, job, A.SUBMITTED, reason)
        self.admission.job_changed(job)

    def _start_cycle(self, ws: WriteSet, job: Job) -> None:
        """The job (newly queued, resumed or requeued) competes for admission unless it waits
        for a dependency, or fails because one can never be satisfied."""
        waiting, failure = self._dependency_state(job)
        if failure:
            self._set_job_status(ws, job, J.FAILED, action="fail", reason=failure)
            self._cancel_remaining(ws, job, failure)
            self.set_admission(ws, job, A.FINISHED)
            self._finish(ws, job)
            return
        if job.admission is A.FINISHED:
            job.generation += 1
            self.set_admission(ws, job, A.SUBMITTED, waiting)
        elif waiting != job.reason and job.admission is not A.ADMITTED:
            job.reason = waiting
            self.save_job(ws, job)
        if not waiting:
            self.admission.job_changed(job)

    def _dependency_state(self, job: Job) -> tuple[str, str]:
        """(why it waits, why it can never start) — at most one is non-empty."""
        waiting: list[str] = []
        for dep in job.defn.depends_on:
            st = self._status_of(dep.job_id)
            if st is None or st not in TERMINAL_JOB:
                waiting.append(dep.job_id)
                continue
            ok = _dependency_satisfied(dep, st)
            if not ok:
                return "", (
                    f"dependency {dep.condition.value} on job {dep.job_id} can never be satisfied: "
                    f"it is {st.value}"
                )
        if waiting:
            return "waiting for job " + ", ".join(waiting), ""
        return "", ""

    def _status_of(self, job_id: str) -> JobStatus | None:
        job = self.jobs.get(job_id)
        return job.status if job is not None else self.archived_status(job_id)

    def dependencies_met(self, job: Job) -> bool:
        return not any(self._dependency_state(job))

    # -- user actions on jobs ------------------------------------------------------------------

    async def act(
        self,
        action: JobAction,
        *,
        job_ids: Sequence[str] = (),
        flt: JobFilter | None = None,
        reason: str = "",
    ) -> ActionResult:
        """Cancel / requeue / pause / resume. By ids: all-or-nothing. By filter: illegal ones skipped."""
        ws = WriteSet()
        done: list[Job] = []
        skipped = 0
        if job_ids:
            jobs = [self.get_job(i) for i in dict.fromkeys(job_ids)]
            plans = [
                (
                    job,
                    rules.plan_job_action(
                        job_id=job.id, status=job.status, action=action, active_tasks=job.active_tasks
                    ),
                )
                for job in jobs
            ]
        else:
            plans = []
            for job in list(self.iter_jobs(flt or JobFilter())):
                try:
                    target = rules.plan_job_action(
                        job_id=job.id, status=job.status, action=action, active_tasks=job.active_tasks
                    )
                except InvalidTransition:
                    skipped += 1
                    continue
                plans.append((job, target))
        for job, target in plans:
            self._apply_action(ws, job, action, target, reason or f"{action.value} by user")
            done.append(job)
        await self._commit(ws)
        return ActionResult(done, skipped)

    def _apply_action(
        self, ws: WriteSet, job: Job, action: JobAction, target: JobStatus, reason: str
    ) -> None:
        if action is JobAction.CANCEL:
            self._set_job_status(ws, job, target, action="cancel", reason=reason)
            for task in list(job.tasks.values()):
                if task.status is T.ACTIVE:
                    self.dispatcher.abort(job, task, reason)
                elif task.status not in TERMINAL_TASK:
                    task.message = reason
                    self._set_task(ws, job, task, T.CANCELED, action="cancel")
            if job.rest_status not in TERMINAL_TASK:
                job.set_rest_status(T.CANCELED)
                self.save_job(ws, job)
            if target is J.CANCELED:
                self._finish(ws, job)
            else:
                self.admission.job_changed(job)
        elif action is JobAction.PAUSE:
            self._set_job_status(ws, job, target, action="pause", reason=reason)
            for task in list(job.tasks.values()):
                if task.status in (T.QUEUED, T.SOFT_FAILED):
                    self._set_task(ws, job, task, T.PAUSED, action="pause")
            if job.rest_status is T.QUEUED:
                job.set_rest_status(T.PAUSED)
                self.save_job(ws, job)
            if target is J.PAUSED:
                self._release(ws, job, reason)
        elif action is JobAction.RESUME:
            self._set_job_status(ws, job, target, action="resume", reason="")
            for task in list(job.tasks.values()):
                if task.status is T.PAUSED:
                    self._set_task(ws, job, task, T.QUEUED, action="resume")
            if job.rest_status is T.PAUSED:
                job.set_rest_status(T.QUEUED)
                self.save_job(ws, job)
            if target is J.QUEUED:
                self._start_cycle(ws, job)
        else:
            self._requeue(ws, job, reason)

    def _requeue(self, ws: WriteSet, job: Job, reason: str) -> None:
        all_tasks = rules.requeue_all_tasks(job.status)
        self._set_job_status(ws, job, J.REQUEUEING, action="requeue", reason=reason)
        for task in list(job.tasks.values()):
            if task.status is T.ACTIVE or (task.status is T.COMPLETED and not all_tasks):
                continue
            self._reset_task(ws, job, task)
        if job.rest_status is not T.QUEUED and (all_tasks or job.rest_status is not T.COMPLETED):
            job.set_rest_status(T.QUEUED)
        self._clear_blocklist(ws, job_id=job.id)
        job.finish_ts = 0.0
        self._set_job_status(ws, job, J.QUEUED, action="requeue", reason=reason)
        self._start_cycle(ws, job)

    def _reset_task(self, ws: WriteSet, job: Job, task: Task) -> None:
        task.failed_by = ()
        task.interruptions = 0
        task.progress = 0
        task.exit_code = None
        task.message = ""
        task.finish_ts = 0.0
        if task.status is not T.QUEUED:
            self._set_task(ws, job, task, T.QUEUED, action="requeue")
        else:
            self.save_task(ws, job, task)

    async def set_priority(self, job_id: str, priority: int) -> Job:
        job = self.get_job(job_id)
        if job.status in TERMINAL_JOB:
            raise InvalidTransition(
                kind="job",
                ident=job_id,
                current=job.status.value,
                action="change the priority of",
                allowed_from="a job that has not ended",
            )
        ws = WriteSet()
        job.defn = dataclasses.replace(job.defn, priority=priority)
        self.save_job(ws, job, with_defn=True)
        self.emit(ws, EventType.JOB_PRIORITY_CHANGED, job_id=job.id, priority=priority, queue=job.defn.queue)
        self.admission.job_changed(job)
        await self._commit(ws)
        return job

    async def delete_job(self, job_id: str) -> None:
        job = self.get_job(job_id)
        if job.status not in TERMINAL_JOB and job.status is not J.UNDER_CONSTRUCTION:
            raise InvalidTransition(
                kind="job",
                ident=job_id,
                current=job.status.value,
                action="delete",
                allowed_from="completed, failed, canceled or under-construction",
            )
        ws = WriteSet()
        self._forget(ws, job)
        self.emit(ws, EventType.JOB_DELETED, job_id=job.id, job_status=job.status.value)
        await self._commit(ws)

    def _forget(self, ws: WriteSet, job: Job) -> None:
        del self.jobs[job.id]
        self.dispatcher.job_changed(job)
        if job.request_id:
            self.requests.pop(job.request_id, None)
        for dep in job.defn.depends_on:
            self.dependents.get(dep.job_id, set()).discard(job.id)
        self._clear_blocklist(ws, job_id=job.id)
        for stmt in (
            sql.DELETE_TASKS_OF_JOB,
            sql.DELETE_CHUNKS_OF_JOB,
            sql.DELETE_REQUESTS_OF_JOB,
            sql.DELETE_JOB,
        ):
            ws.add(stmt, (job.id,))
        self.admission.job_changed(job)

    # -- tasks -----------------------------------------------------------------------------------

    async def requeue_tasks(self, job: Job, positions: Iterable[int], reason: str) -> list[Task]:
        positions = list(dict.fromkeys(positions))
        for pos in positions:
            st = job.status_of(pos)
            if st not in (T.COMPLETED, T.FAILED, T.CANCELED):
                raise InvalidTransition(
                    kind="task",
                    ident=job.task_id(pos),
                    current=st.value,
                    action="requeue",
                    allowed_from="completed, failed or canceled",
                )
        if job.status in (J.CANCEL_REQUESTED, J.PAUSE_REQUESTED, J.UNDER_CONSTRUCTION, J.REQUEUEING):
            raise InvalidTransition(
                kind="job", ident=job.id, current=job.status.value, action="requeue tasks of"
            )
        ws = WriteSet()
        tasks = [job.task(pos) for pos in positions]
        reopen = job.status in TERMINAL_JOB
        for task in tasks:
            self._reset_task(ws, job, task)
            task.message = reason
        if reopen:
            self._set_job_status(ws, job, J.REQUEUEING, action="requeue", reason=reason)
            job.finish_ts = 0.0
            self._set_job_status(ws, job, J.QUEUED, action="requeue", reason=reason)
            self._start_cycle(ws, job)
        elif job.status is J.PAUSED:
            for task in tasks:
                self._set_task(ws, job, task, T.PAUSED, action="pause")
        await self._commit(ws)
        return tasks

    async def cancel_tasks(self, job: Job, positions: Iterable[int], reason: str) -> list[Task]:
        positions = list(dict.fromkeys(positions))
        for pos in positions:
            st = job.status_of(pos)
            if st in TERMINAL_TASK:
                raise InvalidTransition(
                    kind="task",
                    ident=job.task_id(pos),
                    current=st.value,
                    action="cancel",
                    allowed_from="queued, active, soft-failed or paused",
                )
        ws = WriteSet()
        tasks = [job.task(pos) for pos in positions]
        for task in tasks:
            task.message = reason
            if task.status is T.ACTIVE:
                self.dispatcher.abort(job, task, reason)
                self._task_left_node(job, task)
            task.finish_ts = self.clock.now()
            self._set_task(ws, job, task, T.CANCELED, action="cancel")
        self.settle(ws, job)
        await self._commit(ws)
        return tasks

    # -- blocklist -------------------------------------------------------------------------------

    def _clear_blocklist(self, ws: WriteSet, *, job_id: str = "", node: str = "", task_type: str = "") -> int:
        keys = [
            k
            for k in self.blocklist
            if (not job_id or k[0] == job_id)
            and (not task_type or k[1] == task_type)
            and (not node or k[2] == node)
        ]
        for k in keys:
            del self.blocklist[k]
            ws.add(sql.DELETE_BLOCKLIST, k)
        return len(keys)

    async def clear_blocklist(self, *, job_id: str = "", node: str = "", task_type: str = "") -> int:
        ws = WriteSet()
        n = self._clear_blocklist(ws, job_id=job_id, node=node, task_type=task_type)
        await self._commit(ws)
        return n

    # -- housekeeping ----------------------------------------------------------------------------

    def archive_candidates(self, older_than: float) -> list[Job]:
        return [j for j in self.jobs.values() if j.status in TERMINAL_JOB and 0 < j.finish_ts < older_than]

    async def archive(self, jobs: Sequence[Job]) -> None:
        """Move finished jobs to the archive tables (still listable, no longer in memory)."""
        ws = WriteSet()
        for job in jobs:
            if job.id not in self.jobs or job.status not in TERMINAL_JOB:
                continue
            self.write_job_row_now(ws, job)
            for stmt in (sql.ARCHIVE_JOB, sql.ARCHIVE_CHUNKS, sql.ARCHIVE_TASKS):
                ws.add(stmt, (job.id,))
            del self.jobs[job.id]
            self.dispatcher.job_changed(job)
            if job.request_id:
                self.requests.pop(job.request_id, None)
            self._clear_blocklist(ws, job_id=job.id)
            for stmt in (
                sql.DELETE_TASKS_OF_JOB,
                sql.DELETE_CHUNKS_OF_JOB,
                sql.DELETE_REQUESTS_OF_JOB,
                sql.DELETE_JOB,
            ):
                ws.add(stmt, (job.id,))
        await self._commit(ws)


def _dependency_satisfied(dep: Dependency, status: JobStatus) -> bool:
    if dep.condition is DependencyCondition.AFTERANY:
        return True
    if dep.condition is DependencyCondition.AFTEROK:
        return status is J.COMPLETED
    return status in (J.FAILED, J.CANCELED)


__all__ = [
    "ActionResult",
    "Admission",
    "Clock",
    "Dispatcher",
    "Engine",
    "JobFilter",
    "JobqError",
    "SubmitItem",
    "WallClock",
]
