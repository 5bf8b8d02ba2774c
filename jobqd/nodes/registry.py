"""Nodes as jobqd knows them: capacity, what runs where, leases, and what nodes report.

Every attempt sent to a node stays in that node's `running` table until the node reports it ended
(or the node is declared lost) — also after the task itself moved on (interrupted, canceled). The
dispatcher never starts a task while an earlier attempt of it is still in some node's table, so
a task never runs on two nodes at once, whatever order messages arrive in.

Updates carry `(task id, attempt)`; one that does not match the task's current attempt on this
node is stale: it changes nothing, and the node is told to abort that attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from jobq.v1 import node_service_pb2 as ns
from jobq.v1 import types_pb2 as pb

from jobqd.api.mapping import set_time
from jobqd.domain import rules
from jobqd.domain.errors import InvalidArgument, NotFound
from jobqd.domain.events import EventType
from jobqd.domain.model import Job, Task
from jobqd.domain.quantity import format_milli, parse_milli
from jobqd.domain.states import JobStatus, TaskStatus
from jobqd.settings import DispatchSettings
from jobqd.store import statements as sql
from jobqd.store.writer import WriteSet

if TYPE_CHECKING:
    from jobqd.engine import Engine
    from jobqd.logs.files import LogStore

log = structlog.get_logger("jobqd.nodes")
T = TaskStatus
J = JobStatus

SLOT = 1000  # one slot, in milli-units
ONLINE, DRAINING, DRAINED, OFFLINE = "online", "draining", "drained", "offline"
_STATE_PB = {
    ONLINE: pb.NODE_STATE_ONLINE,
    DRAINING: pb.NODE_STATE_DRAINING,
    DRAINED: pb.NODE_STATE_DRAINED,
    OFFLINE: pb.NODE_STATE_OFFLINE,
}


@dataclass(slots=True)
class Lease:
    """One attempt on one node, from Assign until the node reports its end."""

    job_id: str
    pos: int
    attempt: int
    task_id: str
    resources: Mapping[str, int]
    aborting: bool = False


@dataclass(slots=True)
class Node:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)
    capacity_text: dict[str, str] = field(default_factory=dict)
    command_types: frozenset[str] = frozenset()
    state: str = OFFLINE
    version: str = ""
    last_seen: float = 0.0  # monotonic
    last_seen_wall: float = 0.0
    #: task id → lease
    running: dict[str, Lease] = field(default_factory=dict)
    allocated: dict[str, int] = field(default_factory=dict)
    outbox: asyncio.Queue[ns.ServerMessage | None] | None = None
    session: int = 0

    @property
    def connected(self) -> bool:
        return self.outbox is not None

    def fits(self, request: Mapping[str, int]) -> bool:
        if self.allocated.get("slots", 0) + SLOT > self.capacity.get("slots", 0):
            return False
        for res, amount in request.items():
            if amount and self.allocated.get(res, 0) + amount > self.capacity.get(res, -1):
                return False
        return True

    def could_ever_fit(self, request: Mapping[str, int]) -> bool:
        return self.capacity.get("slots", 0) >= SLOT and all(
            not amount or amount <= self.capacity.get(res, -1) for res, amount in request.items()
        )

    def reserve(self, lease: Lease) -> None:
        self.running[lease.task_id] = lease
        self.allocated["slots"] = self.allocated.get("slots", 0) + SLOT
        for res, amount in lease.resources.items():
            self.allocated[res] = self.allocated.get(res, 0) + amount

    def release(self, task_id: str) -> Lease | None:
        lease = self.running.pop(task_id, None)
        if lease is not None:
            self.allocated["slots"] = self.allocated.get("slots", 0) - SLOT
            for res, amount in lease.resources.items():
                self.allocated[res] = self.allocated.get(res, 0) - amount
        return lease

    def send(self, msg: ns.ServerMessage) -> None:
        if self.outbox is not None:
            self.outbox.put_nowait(msg)


class NodeRegistry:
    def __init__(self, *, engine: Engine, settings: DispatchSettings, logs: LogStore) -> None:
        self.engine = engine
        self.settings = settings
        self.logs = logs
        self.nodes: dict[str, Node] = {}
        #: task id → node name, for every lease anywhere (including attempts being aborted)
        self.where: dict[str, str] = {}
        self._sessions = 0

    # -- helpers -------------------------------------------------------------------------------

    def _kick(self) -> None:
        self.engine.dispatcher.kick()

    def _job_task(self, task_id: str) -> tuple[Job, Task] | None:
        job_id, dot, idx = task_id.rpartition(".")
        job = self.engine.jobs.get(job_id)
        if job is None or not dot or not idx.lstrip("-").isdigit():
            return None
        pos = job.defn.pos_of(int(idx))
        if pos is None:
            return None
        task = job.peek(pos)
        return (job, task) if task is not None else None

    def _emit_node(self, ws: WriteSet, node: Node, reason: str = "") -> None:
        self.engine.emit(ws, EventType.NODE_CHANGED, node=node.name, reason=reason or node.state)

    # -- sessions -------------------------------------------------------------------------------

    def connect(self, hello: ns.Hello, outbox: asyncio.Queue[ns.ServerMessage | None]) -> Node:
        """A node said hello: (re)register it and reconcile what it still runs with what we think."""
        name = hello.name
        if not name or len(name) > 253 or not name.isprintable():
            raise InvalidArgument("hello.name", "a node needs a printable name of 1-253 characters")
        capacity: dict[str, int] = {}
        for res, text in hello.capacity.items():
            try:
                capacity[res] = parse_milli(text)
            except ValueError as err:
                raise InvalidArgument(f"hello.capacity[{res!r}]", str(err)) from None
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = Node(name=name)
        elif node.outbox is not None:
            node.outbox.put_nowait(None)  # an older stream of the same node: close it
        self._sessions += 1
        node.session = self._sessions
        node.labels = dict(hello.labels)
        node.capacity = capacity
        node.capacity_text = dict(hello.capacity)
        node.command_types = frozenset(hello.command_types)
        node.version = hello.version
        node.outbox = outbox
        node.last_seen = time.monotonic()
        node.last_seen_wall = time.time()
        if node.state in (OFFLINE,):
            node.state = ONLINE
        outbox.put_nowait(
            ns.ServerMessage(
                welcome=ns.Welcome(
                    heartbeat_interval_ms=int(self.settings.heartbeat_interval_s * 1000),
                    node_timeout_ms=int(self.settings.node_timeout_s * 1000),
                    batches=True,
                )
            )
        )
        ws = WriteSet()
        self._reconcile(ws, node, {r.task_id: r.attempt for r in hello.running})
        self._emit_node(ws, node, "connected")
        self.engine.commit_background(ws)
        log.info("node connected", node=name, running=len(hello.running), capacity=dict(hello.capacity))
        self._kick()
        return node

    def _reconcile(self, ws: WriteSet, node: Node, reported: Mapping[str, int]) -> None:
        previous = dict(node.running)
        node.running.clear()
        node.allocated.clear()
        for task_id in previous:
            if self.where.get(task_id) == node.name:
                del self.where[task_id]
        for task_id, attempt in reported.items():
            found = self._job_task(task_id)
            current = (
                found is not None
                and found[1].status is T.ACTIVE
                and found[1].attempt == attempt
                and found[1].node == node.name
            )
            if current and task_id not in self.where:
                job, task = found  # type: ignore[misc]
                lease = Lease(job.id, task.pos, attempt, task_id, dict(job.defn.resources))
                node.reserve(lease)
                self.where[task_id] = node.name
                log.info("re-adopted running attempt", node=node.name, task=task_id, attempt=attempt)
            else:
                # not current any more: the node must stop it; keep a lease so capacity stays
                # reserved and the task is not started elsewhere until the node confirms
                lease = Lease("", -1, attempt, task_id, {}, aborting=True)
                node.reserve(lease)
                if task_id not in self.where:
                    self.where[task_id] = node.name
                node.send(
                    ns.ServerMessage(
                        abort=ns.Abort(
                            task_id=task_id,
                            attempt=attempt,
                            reason="stale attempt",
                            grace_ms=self._grace_ms(),
                        )
                    )
                )
        # tasks we believed active on this node that it no longer runs were lost with it
        for task_id, lease in previous.items():
            if task_id in reported or lease.aborting:
                continue
            found = self._job_task(task_id)
            if found is None:
                continue
            job, task = found
            if task.status is T.ACTIVE and task.attempt == lease.attempt and task.node == node.name:
                self._lost(ws, job, task, f"node {node.name} restarted without it")

    def _grace_ms(self) -> int:
        return int(self.settings.abort_grace_s * 1000)

    def disconnect(self, node: Node, session: int) -> None:
        if node.session != session:
            return  # a newer stream already replaced this one
        node.outbox = None
        log.info("node stream closed", node=node.name, running=len(node.running))

    # -- what nodes report ----------------------------------------------------------------------

    def heartbeat(self, node: Node) -> None:
        node.last_seen = time.monotonic()
        node.last_seen_wall = time.time()

    def on_message(self, node: Node, msg: ns.NodeMessage) -> None:
        self.heartbeat(node)
        kind = msg.WhichOneof("msg")
        if kind == "batch":
            for part in msg.batch.messages:
                if not self._on_part(node, part):
                    log.warning("ignored in a batch", node=node.name, kind=part.WhichOneof("msg"))
        elif kind == "hello":
            log.warning("second hello on one stream ignored", node=node.name)
        else:
            self._on_part(node, msg)

    def _on_part(self, node: Node, msg: ns.NodeMessage) -> bool:
        """An update, log chunk or heartbeat (whose news is the message itself); False for anything
        else, which may not stand in a batch."""
        kind = msg.WhichOneof("msg")
        if kind == "update":
            self.on_update(node, msg.update)
        elif kind == "log":
            self.on_log(node, msg.log)
        return kind in ("update", "log", "heartbeat")

    def _stale(self, node: Node, task_id: str, attempt: int) -> None:
        node.send(
            ns.ServerMessage(
                abort=ns.Abort(
                    task_id=task_id, attempt=attempt, reason="stale attempt", grace_ms=self._grace_ms()
                )
            )
        )

    def on_log(self, node: Node, chunk: ns.LogChunk) -> None:
        lease = node.running.get(chunk.task_id)
        if lease is None or lease.attempt != chunk.attempt or lease.pos < 0:
            return  # not an attempt we run here: drop, the update path tells the node to stop
        self.logs.append(
            lease.job_id, lease.pos, lease.attempt, [line[:65536] for line in chunk.lines[:10000]]
        )

    def on_update(self, node: Node, up: ns.TaskUpdate) -> None:
        lease = node.running.get(up.task_id)
        terminal = up.kind in (ns.UPDATE_KIND_COMPLETED, ns.UPDATE_KIND_FAILED, ns.UPDATE_KIND_ABORTED)
        if lease is None or lease.attempt != up.attempt:
            if not terminal:
                self._stale(node, up.task_id, up.attempt)
            return
        found = self._job_task(up.task_id)
        current = (
            found is not None
            and lease.pos >= 0
            and found[1].status is T.ACTIVE
            and found[1].attempt == up.attempt
            and found[1].node == node.name
        )
        if terminal:
            node.release(up.task_id)
            if self.where.get(up.task_id) == node.name:
                del self.where[up.task_id]
            if lease.pos >= 0:
                self.logs.end(lease.job_id, lease.pos, lease.attempt)
            if node.state == DRAINING and not node.running:
                node.state = DRAINED
            self._kick()
        if not current:
            return
        job, task = found  # type: ignore[misc]
        ws = WriteSet()
        if up.kind in (ns.UPDATE_KIND_PROGRESS, ns.UPDATE_KIND_STARTED):
            progress = max(0, min(100, up.progress)) if up.kind == ns.UPDATE_KIND_PROGRESS else task.progress
            message = up.message[:1024] or task.message
            if progress == task.progress and message == task.message:
                return  # STARTED carries nothing new: the task is active since dispatch
            task.progress = progress
            task.message = message
            self.engine.save_task(ws, job, task)
        elif up.kind == ns.UPDATE_KIND_COMPLETED:
            task.progress = 100
            task.exit_code = up.exit_code if up.HasField("exit_code") else 0
            task.message = up.message[:1024]
            self._ended(ws, job, task, T.COMPLETED)
        elif up.kind == ns.UPDATE_KIND_FAILED:
            self._failed(ws, job, task, node, up)
        elif up.kind == ns.UPDATE_KIND_ABORTED:
            if job.status is J.CANCEL_REQUESTED or job.status in (J.CANCELED, J.FAILED, J.COMPLETED):
                task.message = up.message[:1024] or "canceled"
                self._ended(ws, job, task, T.CANCELED)
            else:
                self.engine.interrupt_task(
                    ws, job, task, f"aborted on node {node.name}: {up.message}", abort=False
                )
                self.engine.settle(ws, job)
        self.engine.commit_background(ws)

    def _ended(self, ws: WriteSet, job: Job, task: Task, status: TaskStatus) -> None:
        task.finish_ts = self.engine.clock.now()
        job.running = max(0, job.running - 1)
        self.engine._set_task(ws, job, task, status, action="finish")
        self.engine.settle(ws, job)

    def _failed(self, ws: WriteSet, job: Job, task: Task, node: Node, up: ns.TaskUpdate) -> None:
        code = up.exit_code if up.HasField("exit_code") else None
        message = up.message[:1024] or (f"exit code {code}" if code is not None else "failed")
        decision = rules.decide_failure(
            failed_by=task.failed_by, node=node.name, exit_code=code, policy=job.defn.policy, message=message
        )
        task.failed_by = decision.failed_by
        task.exit_code = code
        task.message = decision.reason
        ttype = job.defn.task_def(task.pos).type
        key = (job.id, ttype, node.name)
        failures = self.engine.blocklist.get(key, 0) + 1
        self.engine.blocklist[key] = failures
        ws.add(sql.UPSERT_BLOCKLIST, (*key, failures))
        status = decision.status
        if status is T.SOFT_FAILED:
            why = self.no_eligible_node(job, task)
            if why:
                status = T.FAILED
                task.message = f"{decision.reason}; {why}"
        self._ended(ws, job, task, status)

    def no_eligible_node(self, job: Job, task: Task) -> str:
        """Why no online node can ever take this task again, or "" if one can."""
        ttype = job.defn.task_def(task.pos).type
        types = job.defn.task_types()
        candidates = [
            n
            for n in self.nodes.values()
            if n.state != OFFLINE
            and types <= n.command_types
            and all(n.labels.get(k) == v for k, v in job.defn.node_selector.items())
        ]
        if not candidates:
            return ""  # no matching node at all right now: wait for one, as for any task
        threshold = job.defn.policy.blocklist_threshold
        for n in candidates:
            if n.name in task.failed_by:
                continue
            if rules.blocklisted(self.engine.blocklist.get((job.id, ttype, n.name), 0), threshold):
                continue
            return ""
        return (
            f"no eligible node left (failed on {', '.join(task.failed_by)}; others blocklisted or excluded)"
        )

    def _lost(self, ws: WriteSet, job: Job, task: Task, reason: str) -> None:
        if job.status is J.CANCEL_REQUESTED:
            task.message = f"canceled ({reason})"
            self._ended(ws, job, task, T.CANCELED)
            return
        self.engine.interrupt_task(ws, job, task, reason, abort=False)
        self.engine.settle(ws, job)

    def close_streams(self) -> None:
        """Shutdown: end every node stream now (nodes keep running their tasks and reconnect),
        so the gRPC server's graceful stop does not wait out its grace on them."""
        for node in self.nodes.values():
            if node.outbox is not None:
                node.outbox.put_nowait(None)

    def running_of(self, job_id: str) -> int:
        """Attempts of `job_id` still running on some node (including ones being aborted)."""
        prefix = job_id + "."
        return sum(1 for task_id in self.where if task_id.startswith(prefix))

    # -- leases from the dispatcher -----------------------------------------------------------

    def lease(self, node: Node, job: Job, task: Task) -> Lease:
        task_id = job.task_id(task.pos)
        lease = Lease(job.id, task.pos, task.attempt, task_id, job.defn.resources)
        node.reserve(lease)
        self.where[task_id] = node.name
        return lease

    def abort(self, job: Job, task: Task, reason: str) -> None:
        task_id = job.task_id(task.pos)
        node = self.nodes.get(self.where.get(task_id, task.node))
        if node is None:
            return
        lease = node.running.get(task_id)
        if lease is None or lease.attempt != task.attempt:
            return
        lease.aborting = True
        node.send(
            ns.ServerMessage(
                abort=ns.Abort(
                    task_id=task_id, attempt=task.attempt, reason=reason[:1024], grace_ms=self._grace_ms()
                )
            )
        )

    # -- leases after a jobqd restart, timeouts ---------------------------------------------------

    def recover(self, ws: WriteSet) -> None:
        """After a restart: tasks active in the store wait `node_timeout` for their node to return."""
        now = time.monotonic()
        for job in self.engine.jobs.values():
            if not job.counts[T.ACTIVE]:
                continue
            for task in job.tasks.values():
                if task.status is not T.ACTIVE:
                    continue
                node = self.nodes.get(task.node)
                if node is None:
                    node = self.nodes[task.node] = Node(
                        name=task.node, state=ONLINE, last_seen=now, last_seen_wall=time.time()
                    )
                task_id = job.task_id(task.pos)
                node.running[task_id] = Lease(
                    job.id, task.pos, task.attempt, task_id, dict(job.defn.resources)
                )
                self.where[task_id] = node.name
                job.running += 1

    def reap(self) -> None:
        """Nodes silent past node_timeout go offline; their attempts are interrupted."""
        deadline = time.monotonic() - self.settings.node_timeout_s
        ws = WriteSet()
        for node in list(self.nodes.values()):
            if node.state == OFFLINE or node.last_seen > deadline:
                continue
            if node.outbox is not None:
                node.outbox.put_nowait(None)
                node.outbox = None
            node.state = OFFLINE
            leases = list(node.running.values())
            node.running.clear()
            node.allocated.clear()
            for lease in leases:
                if self.where.get(lease.task_id) == node.name:
                    del self.where[lease.task_id]
                found = self._job_task(lease.task_id)
                if found is None:
                    continue
                job, task = found
                if task.status is T.ACTIVE and task.attempt == lease.attempt and task.node == node.name:
                    self._lost(
                        ws, job, task, f"node {node.name} lost (silent for {self.settings.node_timeout_s:g}s)"
                    )
            self._emit_node(ws, node, "offline")
            log.warning("node offline", node=node.name, interrupted=len(leases))
        if ws:
            self.engine.commit_background(ws)
            self._kick()

    async def reap_forever(self) -> None:
        interval = min(1.0, self.settings.node_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            self.reap()

    # -- admin ----------------------------------------------------------------------------------

    def _get(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise NotFound("node", name)
        return node

    def node_pb(self, name: str) -> pb.Node:
        n = self._get(name)
        msg = pb.Node(
            name=n.name,
            labels=n.labels,
            capacity=n.capacity_text,
            task_types=sorted(n.command_types),
            state=_STATE_PB[n.state],
            version=n.version,
            running=[
                pb.RunningAttempt(task_id=lease.task_id, attempt=lease.attempt)
                for lease in n.running.values()
            ],
            allocated={k: format_milli(v) for k, v in n.allocated.items() if v},
        )
        set_time(msg.last_seen, n.last_seen_wall)
        return msg

    def node_pbs(self) -> list[pb.Node]:
        return [self.node_pb(name) for name in sorted(self.nodes)]

    async def drain(self, name: str, *, stop: bool) -> pb.Node:
        node = self._get(name)
        ws = WriteSet()
        if node.state != OFFLINE:
            node.state = DRAINING if node.running else DRAINED
        if stop:
            for lease in list(node.running.values()):
                found = self._job_task(lease.task_id)
                if found is None or lease.aborting:
                    continue
                job, task = found
                if task.status is T.ACTIVE and task.attempt == lease.attempt:
                    self.engine.interrupt_task(ws, job, task, f"node {name} drained with --stop")
                    self.engine.settle(ws, job)
        self._emit_node(ws, node, f"drain{' --stop' if stop else ''}")
        await self.engine.commit_background(ws)
        return self.node_pb(name)

    async def resume(self, name: str) -> pb.Node:
        node = self._get(name)
        ws = WriteSet()
        if node.state in (DRAINING, DRAINED):
            node.state = ONLINE if node.connected else OFFLINE
        self._emit_node(ws, node, "resumed")
        await self.engine.commit_background(ws)
        self._kick()
        return self.node_pb(name)
