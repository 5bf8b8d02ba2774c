"""Kueue admission (`--admission kueue`): jobqd owns one Kueue Workload per job admission cycle.

How the pieces meet (DESIGN §8):

* The engine tells us, synchronously and inside its commands, which jobs changed (`job_changed`)
  and when a command is about to be committed (`flush`). We never block there: we only mark the job
  dirty and wake the reconciler.
* The reconciler (`_reconcile_forever`) is the only writer to Kubernetes. For each dirty job it asks
  the pure `reconcile.plan` what to write — create the Workload, deactivate/reactivate it, clear an
  evicted reservation once no task runs, mark it Finished, delete orphans — and `owner.carry_out`
  does it. A failure keeps the job dirty and retries with backoff, so an outage only delays things.
* Five watches (`watching.py`) keep caches of Workloads, LocalQueues, ClusterQueues, ResourceFlavors
  and WorkloadPriorityClasses. Each Workload event is mapped (`mapping.observe`/`engine_steps`) and
  applied to the engine in one WriteSet: admitted → dispatchable; evicted → tasks interrupted (not
  failed); pending/inadmissible/submitted with Kueue's own message as the job's status_reason.
* Kubernetes unreachable: nothing changes in the engine, so admitted jobs keep running and new ones
  wait; watches reconnect with backoff, relist, and the relist re-plans every job.

Start-up reconciliation is the same machinery: the first Workload list marks every job dirty, and
the plan adopts Workloads of known jobs (same generation), deletes orphans and creates what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from jobqd.admission.kueue import mapping as m
from jobqd.admission.kueue import reconcile
from jobqd.admission.kueue.kubeapi import KubeApi, KubeError, KubeUnavailable, Resource, load_api_client
from jobqd.admission.kueue.owner import Stale, carry_out
from jobqd.admission.kueue.watching import DELETED, Backoff, Cache, WatchTiming, watch_forever
from jobqd.domain import admission as amath
from jobqd.domain.errors import InvalidArgument, NotFound
from jobqd.domain.labels import queue_name_problem
from jobqd.domain.model import Job
from jobqd.domain.states import TERMINAL_JOB, AdmissionPhase, JobStatus
from jobqd.settings import AdmissionSettings
from jobqd.store.writer import WriteSet

if TYPE_CHECKING:
    from jobqd.engine import Engine

log = structlog.get_logger("jobqd.kueue")

A = AdmissionPhase
#: Dispatch restricts nodes by this label when a job's admitted flavor is not (yet) known: better
#: to wait for the ResourceFlavor than to run tasks on nodes the flavor does not allow.
UNKNOWN_FLAVOR_LABEL = "jobq.dev/unknown-resource-flavor"


@dataclass(frozen=True, slots=True)
class KueueTiming:
    watch: WatchTiming = field(default_factory=WatchTiming)
    #: Timeout of each non-watch API call, seconds.
    request_timeout_s: float = 10.0
    #: Kubernetes writes in flight at once. Bounded so a start-up with thousands of jobs to
    #: reconcile neither floods the API server nor starves the event loop.
    concurrency: int = 16
    #: Retry delays of failed writes (jittered, doubling), seconds. Capped low: when the API server
    #: comes back, pending work should follow within seconds.
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    #: How often to re-plan jobs that wait on something no event announces (an archived job's
    #: Workload, a Workload Kubernetes refused, a namespace that appeared), seconds.
    sweep_interval_s: float = 15.0
    #: A write's expected watch event not seen after this long: plan again anyway, seconds.
    expectation_timeout_s: float = 30.0
    #: While a job is evicted, how often to look whether its last attempt has stopped, seconds.
    #: An aborted attempt's end is not always an engine change (its task was already requeued by
    #: the eviction), so flush() alone would not notice it; and Kueue's preemptor waits for it.
    eviction_poll_s: float = 0.05


RANK_RELEASE, RANK_LATER = 0, 1
#: job statuses whose Workload writes give quota back (Finished, or spec.active=false)
RELEASING = TERMINAL_JOB | {JobStatus.CANCEL_REQUESTED, JobStatus.PAUSE_REQUESTED, JobStatus.PAUSED}


class KueueAdmission:
    """The Admission protocol over Kueue, plus the read-only queue book and flavor node labels."""

    def __init__(
        self,
        settings: AdmissionSettings,
        *,
        running_attempts: Callable[[str], int],
        timing: KueueTiming | None = None,
    ) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.timing = timing or KueueTiming()
        self._running = running_attempts
        self._engine: Engine | None = None
        self.workloads = Cache("workloads", on_event=self._on_workload, on_synced=self._on_workloads_listed)
        self.local_queues = Cache("localqueues")
        self.cluster_queues = Cache("clusterqueues")
        self.flavors = Cache("resourceflavors", on_event=self._on_flavor)
        self.priority_classes = Cache("workloadpriorityclasses", on_event=self._on_priority_class)
        #: job id → names of its Workloads (all generations the watch has seen)
        self._by_job: dict[str, set[str]] = {}
        #: Workload uid → job id (to name the preemptor in a victim's reason)
        self._uid_job: dict[str, str] = {}
        #: job id → ResourceFlavors of its current admission
        self._assigned: dict[str, tuple[str, ...]] = {}
        #: jobs whose Workload is evicted and still reserved: cleared once no attempt runs
        self._evicted: set[str] = set()
        self._evictions = asyncio.Event()
        #: jobs without a Workload because Kubernetes cannot take it yet (its WorkloadPriorityClass
        #: is missing, the create was refused): inadmissible, planned again later
        self._blocked: set[str] = set()
        #: jobs to (re)plan: a queue the reconcile workers take from (rank, order, job id), and
        #: what is in it (job id → best rank queued; an entry whose job is no longer here, or
        #: queued again at a better rank, is skipped)
        self._queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self._queued: dict[str, int] = {}
        self._order = itertools.count()
        #: jobs being planned now, and those marked again meanwhile
        self._busy: set[str] = set()
        self._again: set[str] = set()
        #: jobs whose last write failed, retried together after a backoff
        self._retry: set[str] = set()
        self._write_failures = 0
        #: Workload name → (resourceVersion our write replaced, "" for a create; when) — the job is
        #: not planned again until the watch shows the write (or the expectation times out)
        self._expect: dict[str, tuple[str, float]] = {}
        #: Workload name → the spec.priority Kubernetes refused for it: not asked again (the job
        #: keeps running on the Workload's old priority; a newer change is tried)
        self._priority_refused: dict[str, int] = {}
        self._retry_handle: asyncio.TimerHandle | None = None
        self._retry_backoff = Backoff(self.timing.retry_initial_s, self.timing.retry_max_s)
        self._tasks: list[asyncio.Task[None]] = []
        self._api: KubeApi | None = None
        self._rng = random.Random()

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "attach() first"
        return self._engine

    # -- Admission protocol ----------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        self._engine = engine

    def check_queue(self, name: str) -> None:
        # Any valid LocalQueue name: a missing LocalQueue is Kueue's business (the job becomes
        # inadmissible with Kueue's own message), not a submission error.
        if problem := queue_name_problem(name):
            raise InvalidArgument("", problem)

    def job_changed(self, job: Job) -> None:
        self._mark(job.id)

    def flush(self, ws: WriteSet) -> None:
        """Nothing to decide synchronously: Kueue decides, and the reconciler (woken by
        `job_changed`) does the writes; evicted jobs are watched by `_watch_evictions`."""

    # -- queues and flavors (read by QueueService and dispatch) ----------------------------------

    def queues(self) -> list[tuple[amath.QueueDef, dict[str, object]]]:
        inadmissible = self._inadmissible_counts()
        return [
            self._queue_view(lq, inadmissible)
            for _, lq in sorted(self.local_queues.objects.items())
            if (lq.get("metadata") or {}).get("namespace", self.namespace) == self.namespace
        ]

    def queue(self, name: str) -> tuple[amath.QueueDef, dict[str, object]]:
        lq = self.local_queues.get(name)
        if lq is None:
            raise NotFound("queue", name)
        return self._queue_view(lq, self._inadmissible_counts())

    def _queue_view(
        self, lq: m.Obj, inadmissible: Mapping[str, int]
    ) -> tuple[amath.QueueDef, dict[str, object]]:
        cq = self.cluster_queues.get(str((lq.get("spec") or {}).get("clusterQueue", "")))
        return m.queue_view(lq, cq, inadmissible=inadmissible.get(m.name_of(lq), 0))

    def _inadmissible_counts(self) -> Counter[str]:
        if self._engine is None:
            return Counter()
        return Counter(j.defn.queue for j in self.engine.jobs.values() if j.admission is A.INADMISSIBLE)

    def flavor_labels(self, job: Job) -> Mapping[str, str]:
        """Node labels the job's admitted ResourceFlavor(s) require (DESIGN §5)."""
        names = self._assigned.get(job.id) or tuple(n for n in job.flavor.split(",") if n)
        labels: dict[str, str] = {}
        for name in names:
            rf = self.flavors.get(name)
            if rf is None:
                return {UNKNOWN_FLAVOR_LABEL: name}
            labels.update(m.flavor_node_labels(rf))
        return labels

    def _priority_of(self, name: str) -> int | None:
        return m.priority_value(self.priority_classes.get(name))

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following Kubernetes in the background; returns at once and never raises."""
        self._spawn("kueue-connect", self._connect_and_run)

    async def stop(self) -> None:
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._api is not None:
            api, self._api = self._api, None
            try:
                await api.close()
            except Exception:  # pragma: no cover - closing a pool
                log.debug("closing the Kubernetes client failed", exc_info=True)

    def _spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        async def guard() -> None:
            backoff = Backoff(0.5, 30.0, self._rng)
            while True:
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    delay = backoff.next()
                    log.exception(
                        "kueue background task failed; restarting", task=name, retry_in_s=round(delay, 2)
                    )
                    await asyncio.sleep(delay)

        self._tasks.append(asyncio.create_task(guard(), name=name))

    async def _connect_and_run(self) -> None:
        backoff = Backoff(self.timing.retry_initial_s, 30.0, self._rng)
        failures = 0
        while True:
            try:
                api_client = await load_api_client(self.settings.kubeconfig)
                break
            except KubeUnavailable as err:
                failures += 1
                delay = backoff.next()
                (log.error if failures == 1 else log.debug)(
                    "cannot configure the Kubernetes client; retrying",
                    error=str(err),
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)
        self._api = KubeApi(api_client, request_timeout_s=self.timing.request_timeout_s)
        ns = self.namespace
        watched = [
            (Resource("workloadpriorityclasses"), self.priority_classes),
            (Resource("resourceflavors"), self.flavors),
            (Resource("clusterqueues"), self.cluster_queues),
            (Resource("localqueues", ns), self.local_queues),
            (Resource("workloads", ns, m.MANAGED_SELECTOR), self.workloads),
        ]
        for res, cache in watched:
            self._spawn(f"kueue-watch-{res.plural}", self._watcher(res, cache))
        self._spawn("kueue-reconcile", self._reconcile_forever)
        self._spawn("kueue-sweep", self._sweep_forever)
        self._spawn("kueue-evictions", self._watch_evictions)
        log.info("following Kueue", namespace=ns, kubeconfig=self.settings.kubeconfig or "in-cluster")

    def _watcher(self, res: Resource, cache: Cache) -> Callable[[], Awaitable[None]]:
        api = self._api
        assert api is not None
        return lambda: watch_forever(api, res, cache, timing=self.timing.watch, rng=self._rng)

    # -- watch events → engine -------------------------------------------------------------------

    def _on_workloads_listed(self) -> None:
        # start-up, or back after an outage / a 410: re-plan everything (adopt, orphans, missing)
        ids = set(self._by_job)
        if self._engine is not None:
            ids.update(self.engine.jobs)
        for job_id in ids:
            self._mark(job_id)
        self._retry_now()

    def _on_workload(self, type_: str, wl: m.Obj, old: m.Obj | None) -> None:
        name = m.name_of(wl)
        parsed = m.parse_workload_name(name)
        job_id = m.job_id_of(wl) or (parsed[0] if parsed else "")
        if not job_id:
            return
        uid = str(m.meta(wl).get("uid", ""))
        if type_ == DELETED:
            names = self._by_job.get(job_id)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_job[job_id]
            self._uid_job.pop(uid, None)
            self._priority_refused.pop(name, None)
        else:
            self._by_job.setdefault(job_id, set()).add(name)
            if uid:
                self._uid_job[uid] = job_id
        self._mark(job_id)
        if self._engine is None:
            return
        job = self.engine.jobs.get(job_id)
        if job is None or name != m.workload_name(job.id, job.generation):
            return
        ws = WriteSet()
        if type_ == DELETED or m.is_terminating(wl):
            self._evicted.discard(job_id)
            self._assigned.pop(job_id, None)
            if job.status in m.FOLLOWING and job.admission in (A.ADMITTED, A.PENDING):
                self._evict(ws, job, f"Workload {name} was deleted")
        else:
            obs = self._describe(m.observe(wl), job_id)
            if obs.phase is m.Phase.EVICTED:
                self._evicted.add(job_id)
                self._evictions.set()
            else:
                self._evicted.discard(job_id)
            if obs.flavors:
                self._assigned[job_id] = obs.flavors
            self._apply(ws, job, obs, name)
        self._commit(ws)

    def _apply(self, ws: WriteSet, job: Job, obs: m.Observed, name: str) -> None:
        engine = self.engine
        if job.status is m.J.QUEUED and not engine.dependencies_met(job):
            return
        for step in m.engine_steps(status=job.status, admission=job.admission, reason=job.reason, obs=obs):
            before = job.admission
            if step.step is m.Step.SET_PHASE:
                engine.set_admission(ws, job, step.phase, step.reason)
            elif step.step is m.Step.ADMIT:
                engine.admit(ws, job, flavor=step.flavor)
            elif step.step is m.Step.EVICT:
                self._evict(ws, job, step.reason, phase=step.phase)
                continue
            else:
                engine.settle(ws, job)
                continue
            if job.admission is not before:
                log.info(
                    "admission changed",
                    job_id=job.id,
                    workload=name,
                    admission=job.admission.value,
                    reason=step.reason,
                    flavor=step.flavor or None,
                )

    def _describe(self, obs: m.Observed, job_id: str) -> m.Observed:
        """Kueue's message, naming the preemptor's job when the preemptor is one of ours."""
        preemptor = self._uid_job.get(m.preemptor_uid(obs.message), "")
        if not preemptor or preemptor == job_id:
            return obs
        return dataclasses.replace(obs, message=f"{obs.message} (preempted by job {preemptor})")

    def _evict(self, ws: WriteSet, job: Job, reason: str, *, phase: AdmissionPhase = A.SUBMITTED) -> None:
        active = job.active_tasks
        self.engine.evict(ws, job, reason, phase=phase)
        log.info("job evicted by Kueue", job_id=job.id, reason=reason, interrupted=active)

    def _commit(self, ws: WriteSet) -> None:
        if not ws:
            return
        try:
            fut = self.engine.commit_background(ws)
        except Exception:
            log.exception("committing a Kueue change failed")
            return
        fut.add_done_callback(_log_commit_failure)

    def _on_flavor(self, type_: str, rf: m.Obj, old: m.Obj | None) -> None:
        if self._engine is not None:
            self.engine.dispatcher.kick()  # jobs waiting for this flavor's labels may run now

    def _on_priority_class(self, type_: str, wpc: m.Obj, old: m.Obj | None) -> None:
        if self._blocked and type_ != DELETED:
            blocked, self._blocked = self._blocked, set()
            for job_id in blocked:
                self._mark(job_id)

    # -- the reconciler: the only writer to Kubernetes -------------------------------------------

    def _mark(self, job_id: str) -> None:
        """Plan `job_id` again (soon; once more after the pass in progress, if there is one)."""
        if job_id in self._busy:
            self._again.add(job_id)
            return
        rank = self._rank(job_id)
        if self._queued.get(job_id, RANK_LATER + 1) > rank:
            self._queued[job_id] = rank
            self._queue.put_nowait((rank, next(self._order), job_id))

    def _rank(self, job_id: str) -> int:
        """Writes that give quota back to Kueue (Finished, inactive, a cleared eviction, a deleted
        job) go before the rest: with hundreds of creates queued, a finished job's quota would
        otherwise wait behind all of them while admitted work could already be running."""
        job = self._engine.jobs.get(job_id) if self._engine is not None else None
        if job is None or job_id in self._evicted or job.status in RELEASING:
            return RANK_RELEASE
        return RANK_LATER

    async def _reconcile_forever(self) -> None:
        # plan nothing before the first lists: an unlisted Workload would look missing
        await self.priority_classes.synced.wait()
        await self.workloads.synced.wait()
        workers = [
            asyncio.create_task(self._worker(), name=f"kueue-reconcile-{i}")
            for i in range(self.timing.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            rank, _, job_id = await self._queue.get()
            if self._queued.get(job_id) != rank:
                continue  # done already, or queued again ahead of this entry
            del self._queued[job_id]
            self._busy.add(job_id)
            try:
                await self._reconcile_job(job_id)
            except Stale:
                pass  # the watch brings the newer object, which marks the job again
            except (KubeError, KubeUnavailable) as err:
                self._schedule_retry(job_id, err)
            except Exception as err:
                log.exception("reconciling a job with Kueue failed", job_id=job_id)
                self._schedule_retry(job_id, err)
            else:
                self._write_succeeded()
            finally:
                self._busy.discard(job_id)
                if job_id in self._again:
                    self._again.discard(job_id)
                    self._mark(job_id)

    def _schedule_retry(self, job_id: str, err: BaseException) -> None:
        self._retry.add(job_id)
        self._write_failures += 1
        if self._retry_handle is not None:
            return
        delay = self._retry_backoff.next()
        # the first failure of an outage is worth a warning; the rest are noise until it ends
        (log.warning if self._write_failures == 1 else log.debug)(
            "Kubernetes writes failed; retrying",
            jobs=len(self._retry),
            error=str(err),
            retry_in_s=round(delay, 2),
        )
        self._retry_handle = asyncio.get_running_loop().call_later(delay, self._retry_now)

    def _write_succeeded(self) -> None:
        if self._write_failures and not self._retry:
            log.info("Kubernetes writes succeed again", failures=self._write_failures)
            self._write_failures = 0
            self._retry_backoff.reset()

    def _retry_now(self) -> None:
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        retry, self._retry = self._retry, set()
        for job_id in retry:
            self._mark(job_id)

    def _waiting_for_watch(self, names: set[str]) -> bool:
        now = time.monotonic()
        waiting = False
        for name in names:
            exp = self._expect.get(name)
            if exp is None:
                continue
            rv, since = exp
            cur = self.workloads.get(name)
            seen = (cur is not None) if rv == "" else (cur is None or m.rv_of(cur) != rv)
            if seen or now - since > self.timing.expectation_timeout_s:
                del self._expect[name]
            else:
                waiting = True
        return waiting

    async def _reconcile_job(self, job_id: str) -> None:
        engine = self.engine
        job = engine.jobs.get(job_id)
        names = set(self._by_job.get(job_id, ()))
        if job is not None:
            names.add(m.workload_name(job.id, job.generation))
        if self._waiting_for_watch(names):
            return
        self._blocked.discard(job_id)
        wls = [wl for n in sorted(names) if (wl := self.workloads.get(n)) is not None]
        actions = reconcile.plan(
            job,
            wls,
            namespace=self.namespace,
            deps_met=job is not None and engine.dependencies_met(job),
            running=self._running(job_id),
            priority_of=self._priority_of,
            now=time.time(),
        )
        api = self._api
        assert api is not None
        for action in actions:
            if isinstance(action, reconcile.Blocked):
                self._block(job_id, action.reason)
                continue
            if isinstance(action, reconcile.Create):
                name = m.name_of(action.body)
                try:
                    await carry_out(api, self.namespace, action, job_id=job_id)
                except KubeError as err:
                    if err.transient:
                        raise
                    # Kubernetes will not take this Workload as it is (e.g. its webhook rejects the
                    # request): say so on the job rather than retry for ever
                    self._block(job_id, f"Workload {name} rejected: {err.message or err}")
                    return
                self._expect[name] = ("", time.monotonic())
                continue
            if (
                isinstance(action, reconcile.SetPriority)
                and self._priority_refused.get(action.name) == action.priority
            ):
                continue
            before = self.workloads.get(action.name)
            try:
                obj = await carry_out(api, self.namespace, action, job_id=job_id)
            except KubeError as err:
                if not isinstance(action, reconcile.SetPriority) or err.transient:
                    raise
                # e.g. a webhook or validation rule refuses the change: keep the job going on the
                # Workload's old priority rather than retrying for ever
                self._priority_refused[action.name] = action.priority
                log.warning(
                    "Workload priority not updated: Kubernetes refused",
                    job_id=job_id,
                    workload=action.name,
                    priority=action.priority,
                    error=err.message or str(err),
                )
                continue
            if obj is not None and before is not None and not isinstance(action, reconcile.Delete):
                # the next write to this Workload must start from the version this one produced:
                # wait for the watch to show it (it marks the job again)
                self._expect[action.name] = (m.rv_of(before), time.monotonic())
                return

    def _block(self, job_id: str, reason: str) -> None:
        self._blocked.add(job_id)
        job = self.engine.jobs.get(job_id)
        if job is None or job.status not in m.FOLLOWING:
            return
        if job.admission is A.INADMISSIBLE and job.reason == reason:
            return
        ws = WriteSet()
        self.engine.set_admission(ws, job, A.INADMISSIBLE, reason)
        log.info("job inadmissible", job_id=job_id, reason=reason)
        self._commit(ws)

    async def _watch_evictions(self) -> None:
        """Plan an evicted job as soon as its last attempt has stopped: only then may jobqd give
        its quota back (the preemptor waits for that)."""
        while True:
            await self._evictions.wait()
            while self._evicted:
                for job_id in list(self._evicted):
                    if (
                        job_id not in self._queued
                        and job_id not in self._retry
                        and self._running(job_id) == 0
                    ):
                        self._mark(job_id)
                await asyncio.sleep(self.timing.eviction_poll_s)
            self._evictions.clear()

    async def _sweep_forever(self) -> None:
        """Re-plan what no event announces: Workloads of jobs that were archived or of earlier
        cycles, evicted jobs, jobs whose Workload Kubernetes refused (it may take it now)."""
        while True:
            await asyncio.sleep(self.timing.sweep_interval_s)
            if self._engine is None:
                continue
            jobs = self.engine.jobs
            blocked, self._blocked = self._blocked, set()
            for job_id in blocked:  # e.g. the namespace or the priority class exists now
                self._mark(job_id)
            for job_id in list(self._by_job):
                job = jobs.get(job_id)
                if job is None or job_id in self._evicted:
                    self._mark(job_id)
                    continue
                current = m.workload_name(job.id, job.generation)
                if self._by_job[job_id] != {current}:
                    self._mark(job_id)


def _log_commit_failure(fut: asyncio.Future[None]) -> None:
    if fut.cancelled():
        return
    err = fut.exception()
    if err is not None:
        log.error("storing a Kueue admission change failed", error=str(err))


__all__ = ["UNKNOWN_FLAVOR_LABEL", "KueueAdmission", "KueueTiming"]
