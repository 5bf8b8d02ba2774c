"""NodeService.Connect: one bidirectional stream per node.

The first message must be Hello (within a deadline); then a reader task feeds every NodeMessage to
the registry while this coroutine writes whatever the registry queues for the node (Welcome,
Assign, Abort). A newer stream from the same node name replaces this one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError
from jobq.v1 import node_service_pb2 as ns
from jobq.v1 import node_service_pb2_grpc as ns_grpc

from jobqd.auth import identity
from jobqd.domain.errors import InvalidArgument
from jobqd.nodes.registry import Node, NodeRegistry

log = structlog.get_logger("jobqd.nodes")
HELLO_TIMEOUT_S = 10.0
_NOT_A_MESSAGE = "a message on the node stream is not a valid NodeMessage"


class NodeServicer(ns_grpc.NodeServiceServicer):
    def __init__(self, *, registry: NodeRegistry) -> None:
        self.registry = registry

    async def Connect(  # type: ignore[override]
        self, request_iterator: object, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        try:
            first = await asyncio.wait_for(context.read(), timeout=HELLO_TIMEOUT_S)
        except TimeoutError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "send Hello first (none within 10 s)")
        except DecodeError:
            # bytes that are not a NodeMessage: without this grpc answers UNKNOWN and logs a
            # traceback (found by tests/integration/robustness)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _NOT_A_MESSAGE)
        if not isinstance(first, ns.NodeMessage) or first.WhichOneof("msg") != "hello":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message on a node stream must be Hello"
            )
        if not identity.may_connect_as_node(first.hello.name):
            # a task can read its node's token: that token must not let it pose as another node
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this token is for another node; it cannot connect as {first.hello.name[:253]!r}",
            )
        outbox: asyncio.Queue[ns.ServerMessage | None] = asyncio.Queue()
        try:
            node = self.registry.connect(first.hello, outbox)
        except InvalidArgument as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, err.message)
        session = node.session
        reader = asyncio.create_task(self._read(context, node, outbox), name=f"node-reader:{node.name}")
        batches = first.hello.batches
        try:
            while True:
                msg = await outbox.get()
                if msg is None:
                    break
                if batches and not outbox.empty() and not msg.HasField("welcome"):
                    msg, end = _batch(msg, outbox)
                    await context.write(msg)
                    if end:
                        break
                    continue
                await context.write(msg)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self.registry.disconnect(node, session)
        if reader.done() and not reader.cancelled() and isinstance(reader.exception(), DecodeError):
            # garbage mid-stream ends the session with a status that says so (not a silent OK)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _NOT_A_MESSAGE)

    async def _read(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        node: Node,
        outbox: asyncio.Queue[ns.ServerMessage | None],
    ) -> None:
        try:
            while True:
                msg = await context.read()
                if not isinstance(msg, ns.NodeMessage):
                    break  # EOF
                try:
                    self.registry.on_message(node, msg)
                except Exception:
                    log.exception("bad message from node", node=node.name)
        except DecodeError:
            log.warning("undecodable message from node; closing its stream", node=node.name)
            raise
        finally:
            outbox.put_nowait(None)


#: What one ServerBatch holds at most: a dispatch pass can assign hundreds of tasks at once, and
#: the node should start on the first ones while the rest are being written.
BATCH_MESSAGES = 64


def _batch(
    first: ns.ServerMessage, outbox: asyncio.Queue[ns.ServerMessage | None]
) -> tuple[ns.ServerMessage, bool]:
    """`first` and what else waits in `outbox` as one message; True when the end-of-stream marker
    was reached. (Only the Welcome, written alone before anything else, is never batched.)"""
    messages = [first]
    while len(messages) < BATCH_MESSAGES and not outbox.empty():
        nxt = outbox.get_nowait()
        if nxt is None:
            return _wrap(messages), True
        messages.append(nxt)
    return _wrap(messages), False


def _wrap(messages: list[ns.ServerMessage]) -> ns.ServerMessage:
    if len(messages) == 1:
        return messages[0]
    return ns.ServerMessage(batch=ns.ServerBatch(messages=messages))
