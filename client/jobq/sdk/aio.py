"""``jobq.AsyncClient``: every RPC of JobService, QueueService and NodeAdminService over grpc.aio.

Methods return the API's own protobuf messages (``jobq.v1.types_pb2.Job``, ``Task``, …). A
response that only wraps one object is unwrapped (``get_job`` returns the ``Job``); one that carries
more (``submit_job``'s ``created`` flag, a bulk action's ``skipped`` count, a page's
``next_page_token``) is returned whole. Every failure is raised as a :mod:`jobq.errors` exception.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import grpc
import grpc.aio

from jobq.errors import InvalidArgument, JobqError, from_rpc_error
from jobq.sdk import messages
from jobq.sdk.channels import DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S, ChannelConfig
from jobq.sdk.lifecycle import is_finished
from jobq.sdk.retrying import Backoff, ReconnectHook, is_retryable
from jobq.spec import JobSpecLike, TaskSpecLike, as_job_spec, as_task_spec
from jobq.v1 import (
    job_service_pb2,
    job_service_pb2_grpc,
    node_service_pb2,
    node_service_pb2_grpc,
    queue_service_pb2,
    queue_service_pb2_grpc,
    types_pb2,
)

__all__ = ["AsyncClient"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")


class AsyncClient:
    """Async client for jobqd. Use as ``async with jobq.AsyncClient("host:7070") as client: …``.

    ``timeout`` (seconds) bounds every unary call; streams have none. With ``token`` every call
    carries ``authorization: Bearer <token>``. ``tls_ca`` (a PEM file) switches to TLS;
    ``tls_cert``/``tls_key`` add a client certificate (mutual TLS).
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        token: str | None = None,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
    ) -> None:
        config = ChannelConfig(address, token=token, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
        self.address = address
        self.timeout = timeout
        self._metadata = config.metadata
        self._channel = config.aio_channel()
        self._jobs = job_service_pb2_grpc.JobServiceStub(self._channel)
        self._queues = queue_service_pb2_grpc.QueueServiceStub(self._channel)
        self._nodes = node_service_pb2_grpc.NodeAdminServiceStub(self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def _call(self, method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> Resp:
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    async def _stream(
        self, method: grpc.aio.UnaryStreamMultiCallable[Req, Resp], request: Req, *, deadline_s: float | None
    ) -> AsyncIterator[Resp]:
        call = method(request, timeout=deadline_s, metadata=self._metadata)
        try:
            async for response in call:
                yield response
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        finally:
            call.cancel()  # the consumer may stop early; do not leave the stream open

    # --- jobs ------------------------------------------------------------------------------------

    async def submit_job(
        self, spec: JobSpecLike, *, request_id: str | None = None
    ) -> job_service_pb2.SubmitJobResponse:
        """Submit one job; returns ``job`` and ``created`` (False when a retry with the same
        ``request_id`` was answered from the first submission). ``spec`` may be a JobSpec or its
        dict form (:func:`jobq.spec.job_spec_from_dict`)."""
        request = job_service_pb2.SubmitJobRequest(spec=as_job_spec(spec), request_id=request_id or "")
        return await self._call(self._jobs.SubmitJob, request)

    async def submit_jobs(
        self, specs: Sequence[JobSpecLike], *, request_ids: Sequence[str] | None = None
    ) -> list[job_service_pb2.SubmitJobResponse]:
        """Submit several jobs atomically (all or none); one result per spec, in order."""
        response = await self._call(self._jobs.SubmitJobs, messages.submit_jobs_request(specs, request_ids))
        return list(response.results)

    async def create_job(self, spec: JobSpecLike, *, request_id: str | None = None) -> types_pb2.Job:
        """Create a draft (under-construction) job without tasks; add them with :meth:`add_tasks`."""
        request = job_service_pb2.CreateJobRequest(spec=as_job_spec(spec), request_id=request_id or "")
        return (await self._call(self._jobs.CreateJob, request)).job

    async def add_tasks(self, job_id: str, tasks: Iterable[TaskSpecLike], *, offset: int) -> int:
        """Append ``tasks`` to a draft that has exactly ``offset`` tasks; returns the new total.
        Retrying a chunk with the same offset is safe."""
        request = job_service_pb2.AddTasksRequest(
            job_id=job_id,
            offset=offset,
            tasks=[as_task_spec(t, path=f"tasks[{offset + i}]") for i, t in enumerate(tasks)],
        )
        return (await self._call(self._jobs.AddTasks, request)).total_tasks

    async def commit_job(self, job_id: str) -> types_pb2.Job:
        """Queue a draft; it must have at least one task."""
        return (await self._call(self._jobs.CommitJob, job_service_pb2.CommitJobRequest(job_id=job_id))).job

    async def submit_large_job(
        self,
        spec: JobSpecLike,
        tasks: Iterable[TaskSpecLike] | AsyncIterable[TaskSpecLike] = (),
        *,
        chunk_size: int = 10_000,
        request_id: str | None = None,
    ) -> types_pb2.Job:
        """Submit a job with more tasks than fit one message: CreateJob, AddTasks in chunks of
        ``chunk_size``, CommitJob. The spec's own tasks go first, then ``tasks``. If any step fails
        the draft is deleted (best effort) and the error raised. Returns the committed Job."""
        if chunk_size < 1:
            raise InvalidArgument("chunk_size: must be at least 1")
        draft, first = messages.draft_of(spec)
        job = await self.create_job(draft, request_id=request_id)
        try:
            offset = await self.add_tasks(job.id, first, offset=0) if first else 0
            async for chunk in _chunks(tasks, chunk_size):
                offset = await self.add_tasks(job.id, chunk, offset=offset)
            return await self.commit_job(job.id)
        except BaseException:
            with contextlib.suppress(JobqError):
                await self.delete_job(job.id)
            raise

    async def get_job(self, job_id: str, *, full: bool = False) -> types_pb2.Job:
        """One job; ``full`` includes ``spec.tasks`` (large for big jobs)."""
        view = types_pb2.JOB_VIEW_FULL if full else types_pb2.JOB_VIEW_BASIC
        return (
            await self._call(self._jobs.GetJob, job_service_pb2.GetJobRequest(job_id=job_id, view=view))
        ).job

    async def list_jobs(
        self,
        *,
        filter: types_pb2.JobFilter | None = None,
        page_size: int = 100,
        page_token: str = "",
        include_archived: bool = False,
    ) -> job_service_pb2.ListJobsResponse:
        """One page of jobs (build ``filter`` with :func:`jobq.job_filter`); see :meth:`iter_jobs`."""
        request = job_service_pb2.ListJobsRequest(
            filter=filter, page_size=page_size, page_token=page_token, include_archived=include_archived
        )
        return await self._call(self._jobs.ListJobs, request)

    async def iter_jobs(
        self,
        *,
        filter: types_pb2.JobFilter | None = None,
        page_size: int = 500,
        include_archived: bool = False,
    ) -> AsyncIterator[types_pb2.Job]:
        """Every job matching ``filter``, fetching page after page."""
        token = ""
        while True:
            page = await self.list_jobs(
                filter=filter, page_size=page_size, page_token=token, include_archived=include_archived
            )
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def cancel_jobs(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        filter: types_pb2.JobFilter | None = None,
        reason: str = "",
    ) -> job_service_pb2.JobActionResponse:
        """Cancel jobs by ids (all or nothing) or by filter (jobs it cannot cancel are skipped and
        counted in ``skipped``). Jobs with running tasks go to cancel-requested first."""
        return await self._call(self._jobs.CancelJobs, messages.job_action_request(job_ids, filter, reason))

    async def requeue_jobs(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        filter: types_pb2.JobFilter | None = None,
        reason: str = "",
    ) -> job_service_pb2.JobActionResponse:
        """Requeue finished jobs (a completed job runs all tasks again, others their unfinished ones)."""
        return await self._call(self._jobs.RequeueJobs, messages.job_action_request(job_ids, filter, reason))

    async def pause_jobs(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        filter: types_pb2.JobFilter | None = None,
        reason: str = "",
    ) -> job_service_pb2.JobActionResponse:
        """Pause jobs: queued tasks are held at once, running ones finish."""
        return await self._call(self._jobs.PauseJobs, messages.job_action_request(job_ids, filter, reason))

    async def resume_jobs(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        filter: types_pb2.JobFilter | None = None,
        reason: str = "",
    ) -> job_service_pb2.JobActionResponse:
        """Resume paused jobs."""
        return await self._call(self._jobs.ResumeJobs, messages.job_action_request(job_ids, filter, reason))

    async def set_job_priority(self, job_id: str, priority: int) -> types_pb2.Job:
        """Change a job's priority (higher runs first, and may preempt lower ones)."""
        request = job_service_pb2.SetJobPriorityRequest(job_id=job_id, priority=priority)
        return (await self._call(self._jobs.SetJobPriority, request)).job

    async def delete_job(self, job_id: str) -> None:
        """Delete a finished job (completed, failed, canceled) or a draft."""
        await self._call(self._jobs.DeleteJob, job_service_pb2.DeleteJobRequest(job_id=job_id))

    async def follow_job(self, job_id: str, *, poll_interval: float = 1.0) -> AsyncIterator[types_pb2.Job]:
        """The job every ``poll_interval`` seconds until it is completed, failed or canceled
        (the last item)."""
        while True:
            job = await self.get_job(job_id)
            yield job
            if is_finished(job):
                return
            await asyncio.sleep(poll_interval)

    async def wait_job(self, job_id: str, *, poll_interval: float = 1.0) -> types_pb2.Job:
        """Wait until the job is completed, failed or canceled and return it. To bound the wait,
        wrap the call in ``asyncio.timeout(seconds)``."""
        last: types_pb2.Job | None = None
        async for job in self.follow_job(job_id, poll_interval=poll_interval):
            last = job
        assert last is not None  # follow_job yields at least once or raises
        return last

    # --- tasks -----------------------------------------------------------------------------------

    async def get_task(self, task_id: str) -> types_pb2.Task:
        """One task by id (``"<job id>.<index>"``, see :func:`jobq.task_id`)."""
        return (await self._call(self._jobs.GetTask, job_service_pb2.GetTaskRequest(task_id=task_id))).task

    async def list_tasks(
        self,
        job_id: str,
        *,
        statuses: Iterable[int | str] = (),
        page_size: int = 100,
        page_token: str = "",
    ) -> job_service_pb2.ListTasksResponse:
        """One page of a job's tasks, optionally only those in ``statuses``; see :meth:`iter_tasks`."""
        request = job_service_pb2.ListTasksRequest(
            job_id=job_id,
            statuses=messages.task_statuses(statuses),
            page_size=page_size,
            page_token=page_token,
        )
        return await self._call(self._jobs.ListTasks, request)

    async def iter_tasks(
        self,
        job_id: str,
        *,
        statuses: Iterable[int | str] = (),
        page_size: int = 1000,
    ) -> AsyncIterator[types_pb2.Task]:
        """Every task of a job (in ``statuses``), fetching page after page."""
        wanted = messages.task_statuses(statuses)
        token = ""
        while True:
            page = await self.list_tasks(job_id, statuses=wanted, page_size=page_size, page_token=token)
            for task in page.tasks:
                yield task
            token = page.next_page_token
            if not token:
                return

    async def requeue_tasks(self, task_ids: Iterable[str], *, reason: str = "") -> list[types_pb2.Task]:
        """Requeue tasks (all of one job); returns them as changed."""
        request = job_service_pb2.TaskActionRequest(task_ids=list(task_ids), reason=reason)
        return list((await self._call(self._jobs.RequeueTasks, request)).tasks)

    async def cancel_tasks(self, task_ids: Iterable[str], *, reason: str = "") -> list[types_pb2.Task]:
        """Cancel tasks (all of one job); returns them as changed."""
        request = job_service_pb2.TaskActionRequest(task_ids=list(task_ids), reason=reason)
        return list((await self._call(self._jobs.CancelTasks, request)).tasks)

    async def tail_task_log(
        self, task_id: str, *, attempt: int = 0, lines: int = 100, follow: bool = False
    ) -> AsyncIterator[job_service_pb2.TailTaskLogResponse]:
        """The last ``lines`` lines (0 = all kept) of an attempt's log (0 = the latest) in chunks;
        with ``follow``, keeps streaming until the attempt ends."""
        request = job_service_pb2.TailTaskLogRequest(
            task_id=task_id, attempt=attempt, lines=lines, follow=follow
        )
        async for chunk in self._stream(
            self._jobs.TailTaskLog, request, deadline_s=None if follow else self.timeout
        ):
            yield chunk

    async def watch_events(
        self,
        after_sequence: int = -1,
        *,
        job_ids: Iterable[str] = (),
        types: Iterable[int | str] = (),
        reconnect: bool = False,
        backoff: Backoff | None = None,
        on_reconnect: ReconnectHook | None = None,
    ) -> AsyncIterator[types_pb2.Event]:
        """Events with sequence > ``after_sequence`` (0: all retained history, -1: only new ones),
        replayed then live, optionally only of ``job_ids`` / ``types``.

        With ``reconnect``, a stream cut by a retryable error (server unreachable or overloaded) or
        ended by the server is reopened after a backoff, resuming after the last sequence seen, so
        no event is lost or repeated; other errors are raised. Without it, those errors are raised
        and the iterator ends with the stream.
        """
        request = job_service_pb2.WatchEventsRequest(
            after_sequence=after_sequence, job_ids=list(job_ids), types=messages.event_types(types)
        )
        delays: Iterator[float] | None = None
        while True:
            error: JobqError | None = None
            try:
                async for response in self._stream(self._jobs.WatchEvents, request, deadline_s=None):
                    delays = None  # progress: the next outage starts from the shortest delay
                    request.after_sequence = response.event.sequence
                    yield response.event
            except JobqError as err:
                if not (reconnect and is_retryable(err)):
                    raise
                error = err
            if not reconnect:
                return
            delays = delays or (backoff or Backoff()).delays()
            delay = next(delays)
            if on_reconnect is not None:
                on_reconnect(error, delay)
            await asyncio.sleep(delay)

    # --- queues ----------------------------------------------------------------------------------

    async def list_queues(self) -> list[types_pb2.Queue]:
        """All queues with their usage (``status``)."""
        return list((await self._call(self._queues.ListQueues, queue_service_pb2.ListQueuesRequest())).queues)

    async def get_queue(self, name: str) -> types_pb2.Queue:
        return (await self._call(self._queues.GetQueue, queue_service_pb2.GetQueueRequest(name=name))).queue

    async def create_queue(
        self,
        name: str,
        *,
        quotas: Mapping[str, str] | None = None,
        strategy: types_pb2.QueueingStrategy.ValueType | str | None = None,
        preemption: types_pb2.PreemptionPolicy.ValueType | str | None = None,
    ) -> types_pb2.Queue:
        """Create a queue (local admission only). ``quotas`` maps resources to quantities
        (``{"cpu": "4"}``; unlisted = unlimited); strategy/preemption take names or enum values."""
        queue = messages.queue_message(name, quotas=quotas, strategy=strategy, preemption=preemption)
        request = queue_service_pb2.CreateQueueRequest(queue=queue)
        return (await self._call(self._queues.CreateQueue, request)).queue

    async def update_queue(
        self,
        name: str,
        *,
        quotas: Mapping[str, str] | None = None,
        strategy: types_pb2.QueueingStrategy.ValueType | str | None = None,
        preemption: types_pb2.PreemptionPolicy.ValueType | str | None = None,
    ) -> types_pb2.Queue:
        """Replace a queue's quotas, strategy and preemption (what is left out is reset)."""
        queue = messages.queue_message(name, quotas=quotas, strategy=strategy, preemption=preemption)
        request = queue_service_pb2.UpdateQueueRequest(queue=queue)
        return (await self._call(self._queues.UpdateQueue, request)).queue

    async def delete_queue(self, name: str) -> None:
        """Delete a queue without unfinished jobs (not ``default``)."""
        await self._call(self._queues.DeleteQueue, queue_service_pb2.DeleteQueueRequest(name=name))

    async def hold_queue(self, name: str, *, drain: bool = False) -> types_pb2.Queue:
        """Stop admitting jobs from the queue; ``drain`` also evicts its admitted jobs."""
        request = queue_service_pb2.HoldQueueRequest(name=name, drain=drain)
        return (await self._call(self._queues.HoldQueue, request)).queue

    async def release_queue(self, name: str) -> types_pb2.Queue:
        """Admit from a held queue again."""
        return (
            await self._call(self._queues.ReleaseQueue, queue_service_pb2.ReleaseQueueRequest(name=name))
        ).queue

    # --- nodes -----------------------------------------------------------------------------------

    async def list_nodes(self) -> list[types_pb2.Node]:
        return list((await self._call(self._nodes.ListNodes, node_service_pb2.ListNodesRequest())).nodes)

    async def get_node(self, name: str) -> types_pb2.Node:
        return (await self._call(self._nodes.GetNode, node_service_pb2.GetNodeRequest(name=name))).node

    async def drain_node(self, name: str, *, stop: bool = False) -> types_pb2.Node:
        """Give the node no new tasks; ``stop`` also aborts its running ones (as interruptions)."""
        request = node_service_pb2.DrainNodeRequest(name=name, stop=stop)
        return (await self._call(self._nodes.DrainNode, request)).node

    async def resume_node(self, name: str) -> types_pb2.Node:
        """Give a drained node tasks again."""
        return (await self._call(self._nodes.ResumeNode, node_service_pb2.ResumeNodeRequest(name=name))).node

    async def clear_blocklist(self, *, job_id: str = "", node: str = "", task_type: str = "") -> int:
        """Forget blocklist entries (all, or those of a job / node / task type); returns how many."""
        request = node_service_pb2.ClearBlocklistRequest(job_id=job_id, node=node, task_type=task_type)
        return (await self._call(self._nodes.ClearBlocklist, request)).cleared


async def _chunks(items: Iterable[T] | AsyncIterable[T], size: int) -> AsyncIterator[list[T]]:
    if not isinstance(items, AsyncIterable):
        for ready in messages.chunked(items, size):
            yield ready
        return
    chunk: list[T] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
