"""QueueService. Local mode: jobqd owns the queues. Kueue mode: queues are Kueue objects, read-only here."""

from __future__ import annotations

from typing import Any, Protocol

import grpc
from jobq.v1 import queue_service_pb2 as qs
from jobq.v1 import queue_service_pb2_grpc as qs_grpc
from jobq.v1 import types_pb2 as pb

from jobqd.api import mapping
from jobqd.api.errors import rpc
from jobqd.domain import admission as amath
from jobqd.domain.errors import FailedPrecondition, InvalidArgument
from jobqd.domain.labels import label_key_problem, queue_name_problem
from jobqd.domain.quantity import parse_milli
from jobqd.engine import Engine
from jobqd.store.writer import WriteSet

Ctx = grpc.aio.ServicerContext[Any, Any]


class QueueBook(Protocol):
    """What the servicer needs from the admission backend's queues."""

    def queues(self) -> list[tuple[amath.QueueDef, dict[str, object]]]: ...

    def queue(self, name: str) -> tuple[amath.QueueDef, dict[str, object]]: ...


class QueueOwner(QueueBook, Protocol):
    """Local mode: queues that jobqd creates and changes."""

    def create(self, ws: WriteSet, d: amath.QueueDef) -> None: ...

    def update(self, ws: WriteSet, d: amath.QueueDef) -> None: ...

    def delete(self, ws: WriteSet, name: str) -> None: ...

    def set_state(self, ws: WriteSet, name: str, state: amath.QueueState) -> None: ...


def _name(name: str, field: str = "name") -> str:
    if not name:
        raise InvalidArgument(field, "is required")
    if problem := queue_name_problem(name):
        raise InvalidArgument(field, problem)
    return name


def queue_def(q: pb.Queue) -> amath.QueueDef:
    name = _name(q.name, "queue.name")
    quotas: dict[str, int] = {}
    for res, text in q.quotas.items():
        if problem := label_key_problem(res):
            raise InvalidArgument(
                f"queue.quotas[{res[:60]!r}]", problem.replace("label key", "resource name")
            )
        try:
            quotas[res] = parse_milli(text)
        except ValueError as err:
            raise InvalidArgument(f"queue.quotas[{res!r}]", str(err)) from None
    strategy = mapping.STRATEGY_FROM_PB.get(q.strategy, amath.Strategy.BEST_EFFORT_FIFO)
    preemption = mapping.PREEMPTION_FROM_PB.get(q.preemption, amath.Preemption.NEVER)
    if q.strategy not in (0, *mapping.STRATEGY_FROM_PB):
        raise InvalidArgument("queue.strategy", f"unknown strategy {q.strategy}")
    if q.preemption not in (0, *mapping.PREEMPTION_FROM_PB):
        raise InvalidArgument("queue.preemption", f"unknown preemption policy {q.preemption}")
    return amath.QueueDef(name, quotas, strategy, preemption)


class QueueServicer(qs_grpc.QueueServiceServicer):
    def __init__(self, *, engine: Engine, book: QueueBook, owner: QueueOwner | None, mode: str) -> None:
        self.engine = engine
        self.book = book
        self.owner = owner
        self.mode = mode

    def _owner(self) -> QueueOwner:
        if self.owner is None:
            raise FailedPrecondition(
                f"queues are Kueue objects in {self.mode} mode: "
                "create or change LocalQueues and ClusterQueues "
                "with kubectl, not through jobq"
            )
        return self.owner

    def _pb(self, name: str) -> pb.Queue:
        d, usage = self.book.queue(name)
        return mapping.queue_pb(d, usage, cluster_queue=str(usage.get("cluster_queue", "")))

    async def _commit(self, ws: WriteSet) -> None:
        await self.engine.commit_background(ws)

    @rpc
    async def ListQueues(self, request: qs.ListQueuesRequest, context: Ctx) -> qs.ListQueuesResponse:
        return qs.ListQueuesResponse(
            queues=[
                mapping.queue_pb(d, u, cluster_queue=str(u.get("cluster_queue", "")))
                for d, u in self.book.queues()
            ]
        )

    @rpc
    async def GetQueue(self, request: qs.GetQueueRequest, context: Ctx) -> qs.GetQueueResponse:
        return qs.GetQueueResponse(queue=self._pb(_name(request.name)))

    @rpc
    async def CreateQueue(self, request: qs.CreateQueueRequest, context: Ctx) -> qs.CreateQueueResponse:
        owner = self._owner()
        d = queue_def(request.queue)
        ws = WriteSet()
        owner.create(ws, d)
        await self._commit(ws)
        return qs.CreateQueueResponse(queue=self._pb(d.name))

    @rpc
    async def UpdateQueue(self, request: qs.UpdateQueueRequest, context: Ctx) -> qs.UpdateQueueResponse:
        owner = self._owner()
        d = queue_def(request.queue)
        ws = WriteSet()
        owner.update(ws, d)
        await self._commit(ws)
        return qs.UpdateQueueResponse(queue=self._pb(d.name))

    @rpc
    async def DeleteQueue(self, request: qs.DeleteQueueRequest, context: Ctx) -> qs.DeleteQueueResponse:
        owner = self._owner()
        ws = WriteSet()
        owner.delete(ws, _name(request.name))
        await self._commit(ws)
        return qs.DeleteQueueResponse()

    @rpc
    async def HoldQueue(self, request: qs.HoldQueueRequest, context: Ctx) -> qs.HoldQueueResponse:
        owner = self._owner()
        name = _name(request.name)
        ws = WriteSet()
        owner.set_state(ws, name, amath.QueueState.DRAINING if request.drain else amath.QueueState.HELD)
        await self._commit(ws)
        return qs.HoldQueueResponse(queue=self._pb(name))

    @rpc
    async def ReleaseQueue(self, request: qs.ReleaseQueueRequest, context: Ctx) -> qs.ReleaseQueueResponse:
        owner = self._owner()
        name = _name(request.name)
        ws = WriteSet()
        owner.set_state(ws, name, amath.QueueState.ACTIVE)
        await self._commit(ws)
        return qs.ReleaseQueueResponse(queue=self._pb(name))
