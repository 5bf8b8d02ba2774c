"""Dispatch: push runnable tasks of admitted jobs to nodes with free capacity (DESIGN §5).

Woken (`kick`) whenever something may have become runnable or capacity freed up; never polls.
One pass fills every free slot it can: jobs by priority, then submission; jobs of equal priority
take turns task by task so one big array does not starve the rest. The pass writes all its
assignments in one transaction and sends the Assign messages only once that is durable — a node
never runs an attempt that a crash could make jobqd forget, so attempt numbers stay unique.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Mapping
from itertools import groupby

import structlog
from jobq.v1 import node_service_pb2 as ns

from jobqd.api.mapping import command_pb
from jobqd.domain import rules
from jobqd.domain.model import Job, Task
from jobqd.domain.quantity import format_milli
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus
from jobqd.engine import Engine
from jobqd.nodes.registry import ONLINE, SLOT, Node, NodeRegistry
from jobqd.store.writer import WriteSet

log = structlog.get_logger("jobqd.dispatch")
T = TaskStatus
J = JobStatus
_RUNNABLE = (T.QUEUED, T.SOFT_FAILED)
#: How many ready tasks of one job a pass looks at before giving up on that job for the pass.
_LOOKAHEAD = 32


class Dispatch:
    def __init__(self, *, engine: Engine, registry: NodeRegistry) -> None:
        self.engine = engine
        self.registry = registry
        self._wake = asyncio.Event()
        #: admitted, unfinished jobs — the only ones a pass looks at
        self.jobs: dict[str, Job] = {}
        #: kueue mode: node labels required by the job's admitted flavor
        self.flavor_labels: Callable[[Job], Mapping[str, str]] = lambda job: {}
        self._rr = 0
        self.assigned = 0
        for job in engine.jobs.values():
            self.job_changed(job)

    # -- Dispatcher protocol ---------------------------------------------------------------------

    def kick(self) -> None:
        self._wake.set()

    def abort(self, job: Job, task: Task, reason: str) -> None:
        self.registry.abort(job, task, reason)

    def job_changed(self, job: Job) -> None:
        if (
            job.admission is AdmissionPhase.ADMITTED
            and job.status in (J.QUEUED, J.ACTIVE)
            and job.id in self.engine.jobs
        ):
            self.jobs[job.id] = job
        else:
            self.jobs.pop(job.id, None)

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.dispatch_pass()
            # let node messages and commits run between passes
            await asyncio.sleep(0)

    def _free_nodes(self) -> list[Node]:
        nodes = [
            n
            for n in self.registry.nodes.values()
            if n.connected
            and n.state == ONLINE
            and n.allocated.get("slots", 0) + SLOT <= n.capacity.get("slots", 0)
        ]
        if nodes:
            # rotate so equal nodes share the work
            self._rr = (self._rr + 1) % len(nodes)
            nodes = nodes[self._rr :] + nodes[: self._rr]
        return nodes

    def dispatch_pass(self) -> int:
        nodes = self._free_nodes()
        if not nodes or not self.jobs:
            return 0
        ws = WriteSet()
        sends: list[tuple[Node, ns.ServerMessage]] = []
        jobs = sorted(self.jobs.values(), key=lambda j: (-j.defn.priority, j.seq))
        for _, group in groupby(jobs, key=lambda j: j.defn.priority):
            turn = [j for j in group if self._has_work(j)]
            while turn and nodes:
                nxt: list[Job] = []
                for job in turn:
                    if not nodes:
                        break
                    if self._assign_one(ws, job, nodes, sends):
                        nxt.append(job)
                turn = nxt
            if not nodes:
                break
        if not sends:
            return 0
        fut = self.engine.commit_background(ws)
        fut.add_done_callback(lambda f: self._send(f, sends))
        self.assigned += len(sends)
        return len(sends)

    @staticmethod
    def _has_work(job: Job) -> bool:
        if job.status not in (J.QUEUED, J.ACTIVE):
            return False
        if job.defn.parallelism and job.counts[T.ACTIVE] >= job.defn.parallelism:
            return False
        return bool(job.ready) or (job.rest_status is T.QUEUED and job.unmaterialized > 0)

    def _send(self, fut: asyncio.Future[None], sends: list[tuple[Node, ns.ServerMessage]]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            log.error("assignments not stored; not sent", error=str(fut.exception()), count=len(sends))
            return
        for node, msg in sends:
            node.send(msg)

    # -- one task ---------------------------------------------------------------------------------

    def _assign_one(
        self, ws: WriteSet, job: Job, nodes: list[Node], sends: list[tuple[Node, ns.ServerMessage]]
    ) -> bool:
        """Place the job's next runnable task; True if one was placed (the job may take another turn)."""
        if not self._has_work(job):
            return False
        selector = job.defn.node_selector
        flavor = self.flavor_labels(job)
        types = job.defn.task_types()
        usable = [
            n
            for n in nodes
            if types <= n.command_types
            and all(n.labels.get(k) == v for k, v in selector.items())
            and all(n.labels.get(k) == v for k, v in flavor.items())
            and n.fits(job.defn.resources)
        ]
        if not usable:
            return False
        skipped: list[int] = []
        placed = False
        tries = 0
        while job.ready and tries < _LOOKAHEAD:
            pos = heapq.heappop(job.ready)
            task = job.peek(pos)
            if task is None or task.status not in _RUNNABLE or task.waiting_on:
                continue  # stale heap entry
            tries += 1
            node = self._pick_node(job, task, usable)
            if node is None or job.task_id(pos) in self.registry.where:
                skipped.append(pos)
                continue
            self._start(ws, job, task, node, sends)
            placed = True
            break
        for pos in skipped:
            heapq.heappush(job.ready, pos)
        if not placed and job.rest_status is T.QUEUED:
            pos2 = job.next_unmaterialized()
            if pos2 is not None:
                task = job.task(pos2)
                node = self._pick_node(job, task, usable)
                if node is None:
                    heapq.heappush(job.ready, pos2)
                else:
                    self._start(ws, job, task, node, sends)
                    placed = True
        if placed:
            for n in [n for n in nodes if not n.fits({})]:
                nodes.remove(n)
        return placed

    def _pick_node(self, job: Job, task: Task, usable: list[Node]) -> Node | None:
        if not task.failed_by and not self.engine.blocklist:
            return usable[0]
        ttype = job.defn.task_def(task.pos).type
        threshold = job.defn.policy.blocklist_threshold
        for n in usable:
            if n.name in task.failed_by:
                continue
            if rules.blocklisted(self.engine.blocklist.get((job.id, ttype, n.name), 0), threshold):
                continue
            return n
        return None

    def _start(
        self, ws: WriteSet, job: Job, task: Task, node: Node, sends: list[tuple[Node, ns.ServerMessage]]
    ) -> None:
        task.attempt += 1
        task.node = node.name
        task.start_ts = self.engine.clock.now()
        task.finish_ts = 0.0
        task.progress = 0
        task.exit_code = None
        task.message = ""
        job.running += 1
        self.engine._set_task(ws, job, task, T.ACTIVE, action="dispatch")
        self.engine.settle(ws, job)
        lease = self.registry.lease(node, job, task)
        d = job.defn.task_def(task.pos)
        sends.append(
            (
                node,
                ns.ServerMessage(
                    assign=ns.Assign(
                        task_id=lease.task_id,
                        attempt=task.attempt,
                        job_id=job.id,
                        commands=[command_pb(c) for c in d.commands],
                        resources={k: format_milli(v) for k, v in job.defn.resources.items()},
                    )
                ),
            )
        )
