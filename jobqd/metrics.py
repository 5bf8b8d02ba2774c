"""Prometheus metrics (`--metrics-listen HOST:PORT`, served by prometheus-client over plain HTTP).

Two kinds, kept apart because they come from different places:

* **State** — jobs and tasks by status, admission phases, queue depth, nodes, store counters — is
  read from jobqd's memory when Prometheus scrapes. The scrape runs in prometheus-client's HTTP
  thread, but the state belongs to the event loop, so the collector asks the loop for a
  `Snapshot` (`run_coroutine_threadsafe`) instead of reading dicts another thread is changing.
* **Happenings** — jobs submitted, task transitions, dispatch latency, RPCs refused, Kueue watch
  reconnects — are module-level counters and histograms, incremented where they happen. The
  submit and dispatch ones are fed from committed events (`EventMeter`), so a write that failed
  is never counted. The Kueue backend increments `WATCH_RECONNECTS` itself.

Every name is listed in docs/operations.md#metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from jobqd.domain.events import Event, EventType
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus

log = structlog.get_logger("jobqd.metrics")

#: jobqd's own registry: several daemons in one test process must not collide on the global one
REGISTRY = CollectorRegistry(auto_describe=True)

JOBS_SUBMITTED = Counter(
    "jobq_jobs_submitted", "Jobs stored by a submit (rate() = submit rate).", registry=REGISTRY
)
TASK_TRANSITIONS = Counter(
    "jobq_task_transitions", "Task status changes, by the new status.", ["status"], registry=REGISTRY
)
DISPATCH_LATENCY = Histogram(
    "jobq_dispatch_latency_seconds",
    "From a job's admission to its first task being assigned to a node.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
RPC_REJECTED = Counter(
    "jobq_rpc_rejected",
    "RPCs refused before reaching a handler (auth, role, read-only store, overload), by status code.",
    ["code"],
    registry=REGISTRY,
)
#: incremented by the Kueue backend (jobqd.admission.kueue) each time a watch is re-established
WATCH_RECONNECTS = Counter(
    "jobq_watch_reconnects",
    "Kueue watch streams re-established, by resource.",
    ["resource"],
    registry=REGISTRY,
)


@dataclass(slots=True)
class Snapshot:
    """jobqd's state at one instant, built on the event loop (`build_snapshot`)."""

    jobs: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    admission: dict[str, int] = field(default_factory=dict)
    #: queue → pending / admitted / inadmissible job counts
    queues: dict[str, dict[str, int]] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    commit_seconds: float = 0.0
    committed_sets: int = 0
    committed_rows: int = 0
    commit_failures: int = 0
    read_only: bool = False
    watchers: int = 0
    streams: int = 0
    submits_in_flight: int = 0
    tokens: int = 0


class _Job(Protocol):
    @property
    def status(self) -> JobStatus: ...
    @property
    def admission(self) -> AdmissionPhase: ...
    @property
    def counts(self) -> dict[TaskStatus, int]: ...


class _Node(Protocol):
    @property
    def state(self) -> str: ...


class _WriterStats(Protocol):
    batches: int
    sets: int
    rows: int
    commit_seconds: float
    failures: int


def build_snapshot(
    *,
    jobs: Sequence[_Job],
    queues: Sequence[tuple[Any, dict[str, object]]],
    nodes: Sequence[_Node],
    store: _WriterStats,
    read_only: bool,
    watchers: int,
    streams: int,
    submits_in_flight: int,
    tokens: int,
) -> Snapshot:
    snap = Snapshot(
        commits=store.batches,
        commit_seconds=store.commit_seconds,
        committed_sets=store.sets,
        committed_rows=store.rows,
        commit_failures=store.failures,
        read_only=read_only,
        watchers=watchers,
        streams=streams,
        submits_in_flight=submits_in_flight,
        tokens=tokens,
    )
    job_status: Tally[str] = Tally()
    phases: Tally[str] = Tally()
    tasks: Tally[str] = Tally()
    for job in jobs:
        job_status[job.status.value] += 1
        phases[job.admission.value] += 1
        for status, n in job.counts.items():
            if n:
                tasks[status.value] += n
    snap.jobs = {s.value: job_status[s.value] for s in JobStatus}
    snap.admission = {p.value: phases[p.value] for p in AdmissionPhase}
    snap.tasks = {s.value: tasks[s.value] for s in TaskStatus}
    for d, usage in queues:
        snap.queues[str(d.name)] = {
            k: v for k, v in usage.items() if k in _QUEUE_PHASES and isinstance(v, int)
        }
    snap.nodes = dict(Tally(n.state for n in nodes))
    return snap


_QUEUE_PHASES = ("pending", "admitted", "inadmissible")


_ADMITTED = AdmissionPhase.ADMITTED.value
_ACTIVE = TaskStatus.ACTIVE.value


class EventMeter:
    """Counts what committed events say happened (the writer's on_commit hook, on the loop)."""

    def __init__(self) -> None:
        #: job id → when it was admitted, until its first task is dispatched
        self._admitted: dict[str, float] = {}

    def observe(self, events: Sequence[Event]) -> None:
        for ev in events:
            t = ev.type
            if t is EventType.JOB_SUBMITTED:
                JOBS_SUBMITTED.inc()
            elif t is EventType.JOB_ADMISSION_CHANGED:
                if ev.admission == _ADMITTED:
                    self._admitted[ev.job_id] = ev.ts
                else:
                    self._admitted.pop(ev.job_id, None)
            elif t is EventType.TASK_STATUS_CHANGED:
                TASK_TRANSITIONS.labels(status=ev.task_status).inc()
                if ev.task_status == _ACTIVE:
                    since = self._admitted.pop(ev.job_id, None)
                    if since is not None:
                        DISPATCH_LATENCY.observe(max(0.0, ev.ts - since))
            elif t is EventType.JOB_DELETED:
                self._admitted.pop(ev.job_id, None)


class _StateCollector(Collector):
    def __init__(self, take: Callable[[], Snapshot | None]) -> None:
        self._take = take

    def describe(self) -> Iterator[Any]:
        # without this, registering would call collect() — on the event loop, which then waits
        # for itself
        return iter(())

    def collect(self) -> Iterator[Any]:
        snap = self._take()
        if snap is None:
            return
        g = GaugeMetricFamily("jobq_jobs", "Live (not archived) jobs, by status.", labels=["status"])
        for k, v in snap.jobs.items():
            g.add_metric([k], v)
        yield g
        g = GaugeMetricFamily("jobq_tasks", "Tasks of live jobs, by status.", labels=["status"])
        for k, v in snap.tasks.items():
            g.add_metric([k], v)
        yield g
        g = GaugeMetricFamily("jobq_jobs_by_admission", "Live jobs, by admission phase.", labels=["phase"])
        for k, v in snap.admission.items():
            g.add_metric([k], v)
        yield g
        depth = GaugeMetricFamily(
            "jobq_queue_depth", "Jobs waiting for admission, by queue.", labels=["queue"]
        )
        phase = GaugeMetricFamily(
            "jobq_queue_jobs", "Jobs in a queue, by admission phase.", labels=["queue", "phase"]
        )
        for q, usage in snap.queues.items():
            depth.add_metric([q], usage.get("pending", 0))
            for k, v in usage.items():
                phase.add_metric([q, k], v)
        yield depth
        yield phase
        g = GaugeMetricFamily("jobq_nodes", "Known nodes, by state.", labels=["state"])
        for state in ("online", "draining", "drained", "offline"):
            g.add_metric([state], snap.nodes.get(state, 0))
        yield g
        yield SummaryMetricFamily(
            "jobq_store_commit_seconds",
            "Duration of store commits (one transaction + fsync per batch).",
            count_value=snap.commits,
            sum_value=snap.commit_seconds,
        )
        yield SummaryMetricFamily(
            "jobq_store_batch_size",
            "Write sets per store commit (group commit).",
            count_value=snap.commits,
            sum_value=snap.committed_sets,
        )
        yield CounterMetricFamily(
            "jobq_store_rows", "Rows written by store commits.", value=snap.committed_rows
        )
        yield CounterMetricFamily(
            "jobq_store_commit_failures", "Store commits that failed.", value=snap.commit_failures
        )
        yield GaugeMetricFamily(
            "jobq_store_read_only",
            "1 while writes are refused after a failed commit.",
            value=int(snap.read_only),
        )
        yield GaugeMetricFamily("jobq_event_watchers", "Open WatchEvents streams.", value=snap.watchers)
        yield GaugeMetricFamily(
            "jobq_open_streams", "Open streaming RPCs (watches, logs, nodes).", value=snap.streams
        )
        yield GaugeMetricFamily(
            "jobq_submits_in_flight", "Submit RPCs being processed.", value=snap.submits_in_flight
        )
        yield GaugeMetricFamily("jobq_api_tokens", "API tokens that exist.", value=snap.tokens)


class MetricsServer:
    """The HTTP endpoint; `snapshot` is called on `loop` for each scrape."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop, snapshot: Callable[[], Snapshot]) -> None:
        self._loop = loop
        self._snapshot = snapshot
        self._collector = _StateCollector(self._take)
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _take(self) -> Snapshot | None:
        async def on_loop() -> Snapshot:
            return self._snapshot()

        if self._loop.is_running() and _on_loop_thread(self._loop):
            return self._snapshot()
        try:
            return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result(timeout=10)
        except Exception as err:  # a scrape must never take the daemon down
            log.warning("metrics snapshot failed", error=repr(err))
            return None

    def start(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise
        REGISTRY.register(self._collector)
        try:
            self._httpd, self._thread = start_http_server(int(port), addr=host, registry=REGISTRY)
        except BaseException:
            REGISTRY.unregister(self._collector)
            raise
        self.port = self._httpd.server_port
        log.info("metrics serving", listen=f"{host}:{self.port}", path="/metrics")

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(self._collector)


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
