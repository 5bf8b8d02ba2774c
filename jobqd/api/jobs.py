"""JobService: submit, inspect and act on jobs and tasks; tail logs; watch events."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import types_pb2 as pb

from jobqd.api import mapping, validation
from jobqd.api.errors import rpc, stream_rpc
from jobqd.auth import identity
from jobqd.domain.errors import Conflict, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from jobqd.domain.events import Event, EventType
from jobqd.domain.model import Job, parse_task_ref
from jobqd.domain.rules import JobAction
from jobqd.domain.states import JobStatus
from jobqd.engine import Engine, JobFilter, SubmitItem

Ctx = grpc.aio.ServicerContext[Any, Any]


class History(Protocol):
    """Archived jobs and stored events (jobqd.store.history)."""

    async def archived_jobs(self, flt: JobFilter, *, after_seq: int, limit: int) -> list[Job]: ...

    async def archived_job(self, job_id: str) -> Job | None: ...

    async def archived_statuses(self, job_ids: Sequence[str]) -> dict[str, JobStatus]: ...

    def events(
        self, *, after: int, upto: int, job_ids: frozenset[str], types: frozenset[EventType]
    ) -> AsyncIterator[Event]: ...


class EventSource(Protocol):
    """Live committed events (jobqd.events.EventHub)."""

    @property
    def last_seq(self) -> int: ...

    def subscribe(self) -> asyncio.Queue[Event | None]: ...

    def unsubscribe(self, q: asyncio.Queue[Event | None]) -> None: ...


class LogReader(Protocol):
    """Task attempt logs (jobqd.logs)."""

    def tail(
        self, *, job: Job, pos: int, attempt: int, lines: int, follow: bool
    ) -> AsyncIterator[tuple[int, list[str]]]: ...


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def job_filter(f: pb.JobFilter, field: str = "filter") -> JobFilter:
    for i, s in enumerate(f.statuses):
        if s not in mapping.JOB_STATUS_FROM_PB:
            raise InvalidArgument(f"{field}.statuses[{i}]", f"unknown job status {s}")
    for i, a in enumerate(f.admission):
        if a not in mapping.ADMISSION_FROM_PB:
            raise InvalidArgument(f"{field}.admission[{i}]", f"unknown admission phase {a}")
    return JobFilter(
        statuses=frozenset(mapping.JOB_STATUS_FROM_PB[s] for s in f.statuses),
        queues=frozenset(f.queues),
        labels=tuple(sorted(f.labels.items())),
        name_prefix=f.name_prefix,
        owner=f.owner,
        submitted_after=_seconds(f.submitted_after) if f.HasField("submitted_after") else 0.0,
        submitted_before=_seconds(f.submitted_before) if f.HasField("submitted_before") else 0.0,
        admission=frozenset(mapping.ADMISSION_FROM_PB[a] for a in f.admission),
    )


def _filter_is_empty(f: pb.JobFilter) -> bool:
    return f.ByteSize() == 0


class JobServicer(js_grpc.JobServiceServicer):
    def __init__(
        self, *, engine: Engine, history: History, events: EventSource, logs: LogReader | None
    ) -> None:
        self.engine = engine
        self.history = history
        self.events = events
        self.logs = logs

    # -- submit ----------------------------------------------------------------------------------

    async def _known_dependencies(self, items: Sequence[SubmitItem]) -> None:
        """Dependencies on archived jobs are resolved from the archive before the engine checks them."""
        if not identity.sees_all():
            # another user's job cannot be depended on: that would reveal that it exists and how
            # it ended; it is reported exactly like a job that does not exist
            for i, it in enumerate(items):
                for k, dep in enumerate(it.defn.depends_on):
                    other = self.engine.jobs.get(dep.job_id) or await self.history.archived_job(dep.job_id)
                    if other is not None and not identity.sees(other.owner):
                        where = f"jobs[{i}].spec" if len(items) > 1 else "spec"
                        raise InvalidArgument(
                            f"{where}.depends_on[{k}].job_id", f"job {dep.job_id!r} does not exist"
                        )
        missing = {d.job_id for it in items for d in it.defn.depends_on if d.job_id not in self.engine.jobs}
        if missing:
            found = await self.history.archived_statuses(sorted(missing))
            cache = dict(found)
            previous = self.engine.archived_status
            self.engine.archived_status = lambda job_id: cache.get(job_id) or previous(job_id)

    def _item(self, req: js.SubmitJobRequest, *, field: str, draft: bool = False) -> SubmitItem:
        prefix = f"{field}." if field else ""
        request_id = validation.check_request_id(req.request_id, f"{prefix}request_id")
        if request_id and request_id in self.engine.requests and not identity.sees_all():
            # request ids are one namespace for everyone: a retry must never return someone
            # else's job, nor a conflict that names it
            prior = self.engine.jobs.get(self.engine.requests[request_id][0])
            if prior is None or not identity.sees(prior.owner):
                raise Conflict(f"{prefix}request_id: {request_id!r} is already in use; choose another")
        defn = validation.job_def(req.spec, field=f"{prefix}spec", draft=draft)
        return SubmitItem(
            defn=defn,
            request_id=request_id,
            digest=validation.request_digest(req.spec, draft=draft) if request_id else "",
            owner=identity.owner_of_new_job(),
            draft=draft,
        )

    def _live(self, job_id: str) -> Job:
        """A live job the caller may see and act on; another user's job is NotFound, as if absent."""
        job = self.engine.get_job(job_id)
        if not identity.sees(job.owner):
            raise NotFound("job", job_id)
        return job

    @staticmethod
    def _scoped(flt: JobFilter) -> JobFilter:
        """`flt`, restricted to the caller's own jobs unless the caller sees everyone's."""
        owner = identity.scope_owner(flt.owner)
        return flt if owner == flt.owner else dataclasses.replace(flt, owner=owner)

    @rpc
    async def SubmitJob(self, request: js.SubmitJobRequest, context: Ctx) -> js.SubmitJobResponse:
        item = self._item(request, field="")
        await self._known_dependencies([item])
        [(job, created)] = await self.engine.submit([item])
        return js.SubmitJobResponse(job=mapping.job_pb(job), created=created)

    @rpc
    async def SubmitJobs(self, request: js.SubmitJobsRequest, context: Ctx) -> js.SubmitJobsResponse:
        if not request.jobs:
            raise InvalidArgument("jobs", "at least one job")
        if len(request.jobs) > validation.LIMITS.max_jobs_per_batch:
            raise InvalidArgument("jobs", f"at most {validation.LIMITS.max_jobs_per_batch} jobs per call")
        items = [self._item(r, field=f"jobs[{i}]") for i, r in enumerate(request.jobs)]
        await self._known_dependencies(items)
        results = await self.engine.submit(items)
        return js.SubmitJobsResponse(
            results=[
                js.SubmitJobResponse(job=mapping.job_pb(job), created=created) for job, created in results
            ]
        )

    @rpc
    async def CreateJob(self, request: js.CreateJobRequest, context: Ctx) -> js.CreateJobResponse:
        item = self._item(
            js.SubmitJobRequest(request_id=request.request_id, spec=request.spec), field="", draft=True
        )
        await self._known_dependencies([item])
        [(job, _)] = await self.engine.submit([item])
        return js.CreateJobResponse(job=mapping.job_pb(job))

    @rpc
    async def AddTasks(self, request: js.AddTasksRequest, context: Ctx) -> js.AddTasksResponse:
        job_id = validation.check_job_id(request.job_id)
        if not request.tasks:
            raise InvalidArgument("tasks", "at least one task")
        tasks = validation.task_defs(request.tasks, "tasks", offset=request.offset)
        job = self._live(job_id)
        if job.total + len(tasks) > validation.LIMITS.max_tasks_per_job and request.offset >= job.total:
            raise InvalidArgument("tasks", f"a job has at most {validation.LIMITS.max_tasks_per_job} tasks")
        total = await self.engine.add_tasks(job_id, offset=request.offset, tasks=tasks)
        return js.AddTasksResponse(total_tasks=total)

    @rpc
    async def CommitJob(self, request: js.CommitJobRequest, context: Ctx) -> js.CommitJobResponse:
        job = await self.engine.commit_job(self._live(validation.check_job_id(request.job_id)).id)
        return js.CommitJobResponse(job=mapping.job_pb(job))

    # -- read ------------------------------------------------------------------------------------

    async def _job_any(self, job_id: str) -> tuple[Job, bool]:
        job = self.engine.jobs.get(job_id)
        if job is not None:
            if not identity.sees(job.owner):
                raise NotFound("job", job_id)
            return job, False
        archived = await self.history.archived_job(job_id)
        if archived is None or not identity.sees(archived.owner):
            raise NotFound("job", job_id)
        return archived, True

    @rpc
    async def GetJob(self, request: js.GetJobRequest, context: Ctx) -> js.GetJobResponse:
        job, archived = await self._job_any(validation.check_job_id(request.job_id))
        return js.GetJobResponse(
            job=mapping.job_pb(job, full=request.view == pb.JOB_VIEW_FULL, archived=archived)
        )

    @rpc
    async def ListJobs(self, request: js.ListJobsRequest, context: Ctx) -> js.ListJobsResponse:
        flt = self._scoped(job_filter(request.filter))
        size = validation.page_size(request.page_size)
        after = validation.decode_page_token(request.page_token)
        live: list[tuple[int, Job, bool]] = []
        for job in self.engine.iter_jobs(flt, after_seq=after):
            live.append((job.seq, job, False))
            if len(live) > size:
                break
        merged = live
        if request.include_archived:
            old = await self.history.archived_jobs(flt, after_seq=after, limit=size + 1)
            merged = sorted(live + [(j.seq, j, True) for j in old], key=lambda x: x[0])
        page = merged[:size]
        token = validation.encode_page_token(page[-1][0]) if len(merged) > size else ""
        return js.ListJobsResponse(
            jobs=[mapping.job_pb(j, archived=a) for _, j, a in page], next_page_token=token
        )

    # -- actions ---------------------------------------------------------------------------------

    async def _act(self, action: JobAction, request: js.JobActionRequest) -> js.JobActionResponse:
        reason = validation.check_reason(request.reason)
        has_filter = request.HasField("filter") and not _filter_is_empty(request.filter)
        if request.job_ids and has_filter:
            raise InvalidArgument("filter", "give job_ids or filter, not both")
        if not request.job_ids and not has_filter:
            raise InvalidArgument(
                "job_ids", "give job ids or a non-empty filter (an empty filter would match every job)"
            )
        ids = [
            self._live(validation.check_job_id(j, f"job_ids[{i}]")).id for i, j in enumerate(request.job_ids)
        ]
        flt = self._scoped(job_filter(request.filter)) if has_filter else None
        result = await self.engine.act(action, job_ids=ids, flt=flt, reason=reason)
        return js.JobActionResponse(jobs=[mapping.job_pb(j) for j in result.jobs], skipped=result.skipped)

    @rpc
    async def CancelJobs(self, request: js.JobActionRequest, context: Ctx) -> js.JobActionResponse:
        return await self._act(JobAction.CANCEL, request)

    @rpc
    async def RequeueJobs(self, request: js.JobActionRequest, context: Ctx) -> js.JobActionResponse:
        return await self._act(JobAction.REQUEUE, request)

    @rpc
    async def PauseJobs(self, request: js.JobActionRequest, context: Ctx) -> js.JobActionResponse:
        return await self._act(JobAction.PAUSE, request)

    @rpc
    async def ResumeJobs(self, request: js.JobActionRequest, context: Ctx) -> js.JobActionResponse:
        return await self._act(JobAction.RESUME, request)

    @rpc
    async def SetJobPriority(
        self, request: js.SetJobPriorityRequest, context: Ctx
    ) -> js.SetJobPriorityResponse:
        job_id = self._live(validation.check_job_id(request.job_id)).id
        job = await self.engine.set_priority(job_id, request.priority)
        return js.SetJobPriorityResponse(job=mapping.job_pb(job))

    @rpc
    async def DeleteJob(self, request: js.DeleteJobRequest, context: Ctx) -> js.DeleteJobResponse:
        job_id = validation.check_job_id(request.job_id)
        await self._job_any(job_id)  # NotFound for another user's job
        if job_id not in self.engine.jobs and await self.history.archived_job(job_id) is not None:
            raise InvalidArgument("job_id", f"job {job_id} is archived; archived jobs are kept as history")
        await self.engine.delete_job(job_id)
        return js.DeleteJobResponse()

    # -- tasks -----------------------------------------------------------------------------------

    def _task_ref(self, task_id: str, field: str) -> tuple[Job, int]:
        if not task_id:
            raise InvalidArgument(field, "is required (<job id>.<index>)")
        job_id, dot, _ = task_id.rpartition(".")
        if not dot:
            raise InvalidArgument(field, f"{task_id[:60]!r} is not <job id>.<index>")
        job = self._live(validation.check_job_id(job_id, field))
        try:
            return job, parse_task_ref(job, task_id)
        except InvalidArgument as err:
            raise InvalidArgument(field, err.problem) from None

    async def _task_ref_any(self, task_id: str, field: str) -> tuple[Job, int]:
        job_id, dot, _ = task_id.rpartition(".")
        if dot and job_id not in self.engine.jobs and validation.check_job_id(job_id, field):
            job, _ = await self._job_any(job_id)
            try:
                return job, parse_task_ref(job, task_id)
            except InvalidArgument as err:
                raise InvalidArgument(field, err.problem) from None
        return self._task_ref(task_id, field)

    @rpc
    async def GetTask(self, request: js.GetTaskRequest, context: Ctx) -> js.GetTaskResponse:
        job, pos = await self._task_ref_any(request.task_id, "task_id")
        return js.GetTaskResponse(task=mapping.task_pb(job, pos))

    @rpc
    async def ListTasks(self, request: js.ListTasksRequest, context: Ctx) -> js.ListTasksResponse:
        job, _ = await self._job_any(validation.check_job_id(request.job_id))
        for i, s in enumerate(request.statuses):
            if s not in mapping.TASK_STATUS_FROM_PB:
                raise InvalidArgument(f"statuses[{i}]", f"unknown task status {s}")
        wanted = {mapping.TASK_STATUS_FROM_PB[s] for s in request.statuses}
        size = validation.page_size(request.page_size)
        start = validation.decode_page_token(request.page_token)
        out: list[pb.Task] = []
        pos = start
        # when only materialized statuses are wanted, skip the (possibly huge) untouched range
        only_touched = bool(wanted) and job.rest_status not in wanted
        positions = sorted(p for p in job.tasks if p >= start) if only_touched else range(start, job.total)
        next_pos = -1
        for pos in positions:
            if wanted and job.status_of(pos) not in wanted:
                continue
            if len(out) == size:
                next_pos = pos
                break
            out.append(mapping.task_pb(job, pos))
        token = validation.encode_page_token(next_pos) if next_pos >= 0 else ""
        return js.ListTasksResponse(tasks=out, next_page_token=token)

    def _task_positions(self, task_ids: Sequence[str]) -> tuple[Job, list[int]]:
        if not task_ids:
            raise InvalidArgument("task_ids", "at least one task id")
        refs = [self._task_ref(t, f"task_ids[{i}]") for i, t in enumerate(task_ids)]
        job = refs[0][0]
        for i, (other, _) in enumerate(refs):
            if other is not job:
                raise InvalidArgument(f"task_ids[{i}]", "all tasks must belong to the same job")
        return job, [p for _, p in refs]

    @rpc
    async def RequeueTasks(self, request: js.TaskActionRequest, context: Ctx) -> js.TaskActionResponse:
        job, positions = self._task_positions(request.task_ids)
        tasks = await self.engine.requeue_tasks(job, positions, validation.check_reason(request.reason))
        return js.TaskActionResponse(tasks=[mapping.task_pb(job, t.pos) for t in tasks])

    @rpc
    async def CancelTasks(self, request: js.TaskActionRequest, context: Ctx) -> js.TaskActionResponse:
        job, positions = self._task_positions(request.task_ids)
        tasks = await self.engine.cancel_tasks(
            job, positions, validation.check_reason(request.reason) or "canceled by user"
        )
        return js.TaskActionResponse(tasks=[mapping.task_pb(job, t.pos) for t in tasks])

    # -- streams ---------------------------------------------------------------------------------

    @stream_rpc
    async def TailTaskLog(
        self, request: js.TailTaskLogRequest, context: Ctx
    ) -> AsyncIterator[js.TailTaskLogResponse]:
        job, pos = await self._task_ref_any(request.task_id, "task_id")
        if request.attempt < 0:
            raise InvalidArgument("attempt", "must be >= 0 (0 = latest)")
        if request.lines < 0:
            raise InvalidArgument("lines", "must be >= 0")
        if self.logs is None:
            raise NotFound("log", request.task_id)
        async for attempt, lines in self.logs.tail(
            job=job, pos=pos, attempt=request.attempt, lines=request.lines or 100, follow=request.follow
        ):
            yield js.TailTaskLogResponse(attempt=attempt, lines=lines)

    @stream_rpc
    async def WatchEvents(
        self, request: js.WatchEventsRequest, context: Ctx
    ) -> AsyncIterator[js.WatchEventsResponse]:
        if request.after_sequence < -1:
            raise InvalidArgument("after_sequence", "must be >= -1 (-1 = only new events)")
        for i, t in enumerate(request.types):
            if t not in mapping.EVENT_TYPE_FROM_PB:
                raise InvalidArgument(f"types[{i}]", f"unknown event type {t}")
        for i, j in enumerate(request.job_ids):
            validation.check_job_id(j, f"job_ids[{i}]")
        job_ids = frozenset(request.job_ids)
        types = frozenset(mapping.EVENT_TYPE_FROM_PB[t] for t in request.types)
        visible = None if identity.sees_all() else _OwnEvents(self, identity.owner_of_new_job())
        # subscribe first, then replay up to what was committed at that moment: the live queue
        # holds everything after it, so nothing falls between replay and live (and nothing twice)
        queue = self.events.subscribe()
        try:
            upto = self.events.last_seq
            after = upto if request.after_sequence == -1 else request.after_sequence
            delivered = after
            if after < upto:
                async for ev in self.history.events(after=after, upto=upto, job_ids=job_ids, types=types):
                    delivered = ev.seq
                    if visible is None or await visible.shows(ev):
                        yield js.WatchEventsResponse(event=mapping.event_pb(ev))
            while True:
                item = await queue.get()
                if item is None and getattr(self.events, "closed", False):
                    raise Unavailable(f"jobqd is shutting down; resume with after_sequence={delivered}")
                if item is None:
                    raise ResourceExhausted(
                        "this watcher fell too far behind the event stream; "
                        f"resume with after_sequence={delivered}"
                    )
                ev = item
                if ev.seq <= max(after, upto):
                    continue
                upto = ev.seq
                delivered = ev.seq
                if (job_ids and ev.job_id not in job_ids) or (types and ev.type not in types):
                    continue
                if visible is not None and not await visible.shows(ev):
                    continue
                yield js.WatchEventsResponse(event=mapping.event_pb(ev))
        finally:
            self.events.unsubscribe(queue)


class _OwnEvents:
    """For a client's WatchEvents: only events of its own jobs (not node or queue events)."""

    def __init__(self, servicer: JobServicer, owner: str) -> None:
        self._servicer = servicer
        self._owner = owner
        self._archived: dict[str, bool] = {}

    async def shows(self, ev: Event) -> bool:
        if not ev.job_id:
            return False
        job = self._servicer.engine.jobs.get(ev.job_id)
        if job is not None:
            return job.owner == self._owner
        known = self._archived.get(ev.job_id)
        if known is None:  # archived (or deleted: then nobody's)
            old = await self._servicer.history.archived_job(ev.job_id)
            known = self._archived[ev.job_id] = old is not None and old.owner == self._owner
        return known


__all__ = ["JobServicer", "job_filter"]
