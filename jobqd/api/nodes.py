"""NodeAdminService: the operators' view of nodes (list, drain, resume, blocklist)."""

from __future__ import annotations

from typing import Any, Protocol

import grpc
from jobq.v1 import node_service_pb2 as ns
from jobq.v1 import node_service_pb2_grpc as ns_grpc
from jobq.v1 import types_pb2 as pb

from jobqd.api.errors import rpc
from jobqd.api.validation import check_job_id
from jobqd.domain.errors import InvalidArgument
from jobqd.engine import Engine

Ctx = grpc.aio.ServicerContext[Any, Any]


class NodeDirectory(Protocol):
    """What the admin API needs from the node registry (jobqd.nodes)."""

    def node_pbs(self) -> list[pb.Node]: ...

    def node_pb(self, name: str) -> pb.Node: ...

    async def drain(self, name: str, *, stop: bool) -> pb.Node: ...

    async def resume(self, name: str) -> pb.Node: ...


def _name(name: str) -> str:
    if not name:
        raise InvalidArgument("name", "is required")
    if len(name) > 253:
        raise InvalidArgument("name", "at most 253 characters")
    return name


class NodeAdminServicer(ns_grpc.NodeAdminServiceServicer):
    def __init__(self, *, engine: Engine, nodes: NodeDirectory) -> None:
        self.engine = engine
        self.nodes = nodes

    @rpc
    async def ListNodes(self, request: ns.ListNodesRequest, context: Ctx) -> ns.ListNodesResponse:
        return ns.ListNodesResponse(nodes=self.nodes.node_pbs())

    @rpc
    async def GetNode(self, request: ns.GetNodeRequest, context: Ctx) -> ns.GetNodeResponse:
        return ns.GetNodeResponse(node=self.nodes.node_pb(_name(request.name)))

    @rpc
    async def DrainNode(self, request: ns.DrainNodeRequest, context: Ctx) -> ns.DrainNodeResponse:
        return ns.DrainNodeResponse(node=await self.nodes.drain(_name(request.name), stop=request.stop))

    @rpc
    async def ResumeNode(self, request: ns.ResumeNodeRequest, context: Ctx) -> ns.ResumeNodeResponse:
        return ns.ResumeNodeResponse(node=await self.nodes.resume(_name(request.name)))

    @rpc
    async def ClearBlocklist(
        self, request: ns.ClearBlocklistRequest, context: Ctx
    ) -> ns.ClearBlocklistResponse:
        if request.job_id:
            check_job_id(request.job_id)
        n = await self.engine.clear_blocklist(
            job_id=request.job_id, node=request.node, task_type=request.task_type
        )
        return ns.ClearBlocklistResponse(cleared=n)
