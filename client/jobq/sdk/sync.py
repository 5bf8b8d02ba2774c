"""``jobq.Client``: the blocking twin of :class:`jobq.AsyncClient`, over a sync gRPC channel.

Same methods, arguments and return values as the async client (whose docstrings say more);
iterators are plain iterators. Request building and checks live in :mod:`jobq.sdk.messages` so
the two cannot drift apart. Used by ``jobqctl``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import grpc

from jobq.errors import DeadlineExceeded, InvalidArgument, JobqError, from_rpc_error
from jobq.sdk import messages
from jobq.sdk.channels import DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S, ChannelConfig
from jobq.sdk.lifecycle import is_finished
from jobq.sdk.names import JOB_STATUS
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

__all__ = ["Client"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Client:
    """Blocking client for jobqd. Use as ``with jobq.Client("host:7070") as client: …``.

    Arguments as for :class:`jobq.AsyncClient`.
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
        self._channel = config.sync_channel()
        self._jobs = job_service_pb2_grpc.JobServiceStub(self._channel)
        self._queues = queue_service_pb2_grpc.QueueServiceStub(self._channel)
        self._nodes = node_service_pb2_grpc.NodeAdminServiceStub(self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def _call(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> Resp:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    def _stream(
        self, method: grpc.UnaryStreamMultiCallable[Req, Resp], request: Req, *, deadline_s: float | None
    ) -> Iterator[Resp]:
        call = method(request, timeout=deadline_s, metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        finally:
            call.cancel()  # the consumer may stop early; do not leave the stream open

    # --- jobs ------------------------------------------------------------------------------------

    def submit_job(
        self, spec: JobSpecLike, *, request_id: str | None = None
    ) -> job_service_pb2.SubmitJobResponse:
        """Submit one job; returns ``job`` and ``created``."""
        request = job_service_pb2.SubmitJobRequest(spec=as_job_spec(spec), request_id=request_id or "")
        return self._call(self._jobs.SubmitJob, request)

    def submit_jobs(
        self, specs: Sequence[JobSpecLike], *, request_ids: Sequence[str] | None = None
    ) -> list[job_service_pb2.SubmitJobResponse]:
        """Submit several jobs atomically; one result per spec, in order."""
        return list(
            self._call(self._jobs.SubmitJobs, messages.submit_jobs_request(specs, request_ids)).results
        )

    def create_job(self, spec: JobSpecLike, *, request_id: str | None = None) -> types_pb2.Job:
        """Create a draft job without tasks."""
        request = job_service_pb2.CreateJobRequest(spec=as_job_spec(spec), request_id=request_id or "")
        return self._call(self._jobs.CreateJob, request).job

    def add_tasks(self, job_id: str, tasks: Iterable[TaskSpecLike], *, offset: int) -> int:
        """Append tasks to a draft that has exactly ``offset`` tasks; returns the new total."""
        request = job_service_pb2.AddTasksRequest(
            job_id=job_id,
            offset=offset,
            tasks=[as_task_spec(t, path=f"tasks[{offset + i}]") for i, t in enumerate(tasks)],
        )
        return self._call(self._jobs.AddTasks, request).total_tasks

    def commit_job(self, job_id: str) -> types_pb2.Job:
        """Queue a draft."""
        return self._call(self._jobs.CommitJob, job_service_pb2.CommitJobRequest(job_id=job_id)).job

    def submit_large_job(
        self,
        spec: JobSpecLike,
        tasks: Iterable[TaskSpecLike] = (),
        *,
        chunk_size: int = 10_000,
        request_id: str | None = None,
    ) -> types_pb2.Job:
        """CreateJob, AddTasks in chunks, CommitJob; the draft is deleted if a step fails."""
        if chunk_size < 1:
            raise InvalidArgument("chunk_size: must be at least 1")
        draft, first = messages.draft_of(spec)
        job = self.create_job(draft, request_id=request_id)
        try:
            offset = self.add_tasks(job.id, first, offset=0) if first else 0
            for chunk in messages.chunked(tasks, chunk_size):
                offset = self.add_tasks(job.id, chunk, offset=offset)
            return self.commit_job(job.id)
        except BaseException:
            with contextlib.suppress(JobqError):
                self.delete_job(job.id)
            raise

    def get_job(self, job_id: str, *, full: bool = False) -> types_pb2.Job:
        """One job; ``full`` includes ``spec.tasks``."""
        view = types_pb2.JOB_VIEW_FULL if full else types_pb2.JOB_VIEW_BASIC
        return self._call(self._jobs.GetJob, job_service_pb2.GetJobRequest(job_id=job_id, view=view)).job

    def list_jobs(
        self,
        *,
        filter: types_pb2.JobFilter | None = None,
        page_size: int = 100,
        page_token: str = "",
        include_archived: bool = False,
    ) -> job_service_pb2.ListJobsResponse:
        """One page of jobs."""
        request = job_service_pb2.ListJobsRequest(
            filter=filter, page_size=page_size, page_token=page_token, include_archived=include_archived
        )
        return self._call(self._jobs.ListJobs, request)

    def iter_jobs(
        self,
        *,
        filter: types_pb2.JobFilter | None = None,
        page_size: int = 500,
        include_archived: bool = False,
    ) -> Iterator[types_pb2.Job]:
        """Every job matching ``filter``, page after page."""
        token = ""
        while True:
            page = self.list_jobs(
                filter=filter, page_size=page_size, page_token=token, include_archived=include_archived
            )
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def cancel_jobs(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        filter: types_pb2.JobFilter | None = None,
        reason: str = "",
    ) -> job_service_pb2.JobActionResponse:
        """Cancel jobs by ids or by filter."""
        return self._call(self._jobs.CancelJobs, messages.job_action_request(job_ids, filter, reason))

    def requeue_jobs(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        filter: types_pb2.JobFilter | None = None,
        reason: str = "",
    ) -> job_service_pb2.JobActionResponse:
        """Requeue finished jobs by ids or by filter."""
        return self._call(self._jobs.RequeueJobs, messages.job_action_request(job_ids, filter, reason))

    def pause_jobs(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        filter: types_pb2.JobFilter | None = None,
        reason: str = "",
    ) -> job_service_pb2.JobActionResponse:
        """Pause jobs by ids or by filter."""
        return self._call(self._jobs.PauseJobs, messages.job_action_request(job_ids, filter, reason))

    def resume_jobs(
        self,
        job_ids: Iterable[str] | None = None,
        *,
        filter: types_pb2.JobFilter | None = None,
        reason: str = "",
    ) -> job_service_pb2.JobActionResponse:
        """Resume paused jobs by ids or by filter."""
        return self._call(self._jobs.ResumeJobs, messages.job_action_request(job_ids, filter, reason))

    def set_job_priority(self, job_id: str, priority: int) -> types_pb2.Job:
        """Change a job's priority."""
        request = job_service_pb2.SetJobPriorityRequest(job_id=job_id, priority=priority)
        return self._call(self._jobs.SetJobPriority, request).job

    def delete_job(self, job_id: str) -> None:
        """Delete a finished job or a draft."""
        self._call(self._jobs.DeleteJob, job_service_pb2.DeleteJobRequest(job_id=job_id))

    def follow_job(self, job_id: str, *, poll_interval: float = 1.0) -> Iterator[types_pb2.Job]:
        """The job every ``poll_interval`` seconds until it is finished (the last item)."""
        while True:
            job = self.get_job(job_id)
            yield job
            if is_finished(job):
                return
            time.sleep(poll_interval)

    def wait_job(
        self, job_id: str, *, poll_interval: float = 1.0, timeout: float | None = None
    ) -> types_pb2.Job:
        """Wait until the job is finished and return it; DeadlineExceeded after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: types_pb2.Job | None = None
        for job in self.follow_job(job_id, poll_interval=poll_interval):
            last = job
            if deadline is not None and not is_finished(job) and time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"job {job_id} is still {JOB_STATUS.name(job.status)} after {timeout:g}s"
                )
        assert last is not None  # follow_job yields at least once or raises
        return last

    # --- tasks -----------------------------------------------------------------------------------

    def get_task(self, task_id: str) -> types_pb2.Task:
        """One task by id (``"<job id>.<index>"``)."""
        return self._call(self._jobs.GetTask, job_service_pb2.GetTaskRequest(task_id=task_id)).task

    def list_tasks(
        self,
        job_id: str,
        *,
        statuses: Iterable[int | str] = (),
        page_size: int = 100,
        page_token: str = "",
    ) -> job_service_pb2.ListTasksResponse:
        """One page of a job's tasks."""
        request = job_service_pb2.ListTasksRequest(
            job_id=job_id,
            statuses=messages.task_statuses(statuses),
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._jobs.ListTasks, request)

    def iter_tasks(
        self,
        job_id: str,
        *,
        statuses: Iterable[int | str] = (),
        page_size: int = 1000,
    ) -> Iterator[types_pb2.Task]:
        """Every task of a job, page after page."""
        wanted = messages.task_statuses(statuses)
        token = ""
        while True:
            page = self.list_tasks(job_id, statuses=wanted, page_size=page_size, page_token=token)
            yield from page.tasks
            token = page.next_page_token
            if not token:
                return

    def requeue_tasks(self, task_ids: Iterable[str], *, reason: str = "") -> list[types_pb2.Task]:
        """Requeue tasks (all of one job)."""
        request = job_service_pb2.TaskActionRequest(task_ids=list(task_ids), reason=reason)
        return list(self._call(self._jobs.RequeueTasks, request).tasks)

    def cancel_tasks(self, task_ids: Iterable[str], *, reason: str = "") -> list[types_pb2.Task]:
        """Cancel tasks (all of one job)."""
        request = job_service_pb2.TaskActionRequest(task_ids=list(task_ids), reason=reason)
        return list(self._call(self._jobs.CancelTasks, request).tasks)

    def tail_task_log(
        self, task_id: str, *, attempt: int = 0, lines: int = 100, follow: bool = False
    ) -> Iterator[job_service_pb2.TailTaskLogResponse]:
        """The last lines of an attempt's log in chunks; with ``follow``, until the attempt ends."""
        request = job_service_pb2.TailTaskLogRequest(
            task_id=task_id, attempt=attempt, lines=lines, follow=follow
        )
        yield from self._stream(self._jobs.TailTaskLog, request, deadline_s=None if follow else self.timeout)

    def watch_events(
        self,
        after_sequence: int = -1,
        *,
        job_ids: Iterable[str] = (),
        types: Iterable[int | str] = (),
        reconnect: bool = False,
        backoff: Backoff | None = None,
        on_reconnect: ReconnectHook | None = None,
    ) -> Iterator[types_pb2.Event]:
        """Events after ``after_sequence``, replayed then live; with ``reconnect``, resumable."""
        request = job_service_pb2.WatchEventsRequest(
            after_sequence=after_sequence, job_ids=list(job_ids), types=messages.event_types(types)
        )
        delays: Iterator[float] | None = None
        while True:
            error: JobqError | None = None
            try:
                for response in self._stream(self._jobs.WatchEvents, request, deadline_s=None):
                    delays = None
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
            time.sleep(delay)

    # --- queues ----------------------------------------------------------------------------------

    def list_queues(self) -> list[types_pb2.Queue]:
        """All queues with their usage."""
        return list(self._call(self._queues.ListQueues, queue_service_pb2.ListQueuesRequest()).queues)

    def get_queue(self, name: str) -> types_pb2.Queue:
        return self._call(self._queues.GetQueue, queue_service_pb2.GetQueueRequest(name=name)).queue

    def create_queue(
        self,
        name: str,
        *,
        quotas: Mapping[str, str] | None = None,
        strategy: types_pb2.QueueingStrategy.ValueType | str | None = None,
        preemption: types_pb2.PreemptionPolicy.ValueType | str | None = None,
    ) -> types_pb2.Queue:
        """Create a queue (local admission only)."""
        queue = messages.queue_message(name, quotas=quotas, strategy=strategy, preemption=preemption)
        return self._call(self._queues.CreateQueue, queue_service_pb2.CreateQueueRequest(queue=queue)).queue

    def update_queue(
        self,
        name: str,
        *,
        quotas: Mapping[str, str] | None = None,
        strategy: types_pb2.QueueingStrategy.ValueType | str | None = None,
        preemption: types_pb2.PreemptionPolicy.ValueType | str | None = None,
    ) -> types_pb2.Queue:
        """Replace a queue's quotas, strategy and preemption."""
        queue = messages.queue_message(name, quotas=quotas, strategy=strategy, preemption=preemption)
        return self._call(self._queues.UpdateQueue, queue_service_pb2.UpdateQueueRequest(queue=queue)).queue

    def delete_queue(self, name: str) -> None:
        """Delete a queue without unfinished jobs."""
        self._call(self._queues.DeleteQueue, queue_service_pb2.DeleteQueueRequest(name=name))

    def hold_queue(self, name: str, *, drain: bool = False) -> types_pb2.Queue:
        """Stop admitting; ``drain`` also evicts admitted jobs."""
        return self._call(
            self._queues.HoldQueue, queue_service_pb2.HoldQueueRequest(name=name, drain=drain)
        ).queue

    def release_queue(self, name: str) -> types_pb2.Queue:
        """Admit from a held queue again."""
        return self._call(self._queues.ReleaseQueue, queue_service_pb2.ReleaseQueueRequest(name=name)).queue

    # --- nodes -----------------------------------------------------------------------------------

    def list_nodes(self) -> list[types_pb2.Node]:
        return list(self._call(self._nodes.ListNodes, node_service_pb2.ListNodesRequest()).nodes)

    def get_node(self, name: str) -> types_pb2.Node:
        return self._call(self._nodes.GetNode, node_service_pb2.GetNodeRequest(name=name)).node

    def drain_node(self, name: str, *, stop: bool = False) -> types_pb2.Node:
        """No new tasks for the node; ``stop`` also aborts its running ones."""
        return self._call(self._nodes.DrainNode, node_service_pb2.DrainNodeRequest(name=name, stop=stop)).node

    def resume_node(self, name: str) -> types_pb2.Node:
        """Give a drained node tasks again."""
        return self._call(self._nodes.ResumeNode, node_service_pb2.ResumeNodeRequest(name=name)).node

    def clear_blocklist(self, *, job_id: str = "", node: str = "", task_type: str = "") -> int:
        """Forget blocklist entries; returns how many."""
        request = node_service_pb2.ClearBlocklistRequest(job_id=job_id, node=node, task_type=task_type)
        return self._call(self._nodes.ClearBlocklist, request).cleared
