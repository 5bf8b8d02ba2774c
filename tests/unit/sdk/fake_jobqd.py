"""A real gRPC server on 127.0.0.1 (port 0) that answers the jobq API with canned replies.

The unit-level test double for the SDK and CLI tests while the real jobqd is written in parallel:
the transport, metadata, status codes and streaming are real gRPC; only the answers are canned.
Each request is recorded (with its metadata) so tests can assert on what the client sent.

Replies, per method name (``"GetJob"``):
* a response message — returned to every call;
* a list — one item per call, the last one repeating (``[queued, active, completed]``);
* ``Fail(code, details)`` — the call fails with that status;
* a callable ``(request) -> reply`` — computed per call;
* for server-streaming methods, a reply is a list of messages (a ``Fail`` in it ends the stream
  with that status) or a ``Streams`` of such lists, one per call.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message
from jobq.v1 import job_service_pb2, node_service_pb2, queue_service_pb2

SERVICES = (
    (job_service_pb2.DESCRIPTOR, "JobService"),
    (queue_service_pb2.DESCRIPTOR, "QueueService"),
    (node_service_pb2.DESCRIPTOR, "NodeAdminService"),
)


@dataclass(frozen=True)
class Fail:
    code: grpc.StatusCode
    details: str


@dataclass(frozen=True)
class Streams:
    """One list of stream items per call (the last one repeating)."""

    calls: list[list[Any]]


class FakeJobqd:
    def __init__(self) -> None:
        self.replies: dict[str, Any] = {}
        self.requests: dict[str, list[Any]] = defaultdict(list)
        self.metadata: dict[str, list[dict[str, str]]] = defaultdict(list)
        self._calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        for file_descriptor, service_name in SERVICES:
            service = file_descriptor.services_by_name[service_name]
            handlers = {}
            for method in service.methods:
                request_class = message_factory.GetMessageClass(method.input_type)
                response_class = message_factory.GetMessageClass(method.output_type)
                make = (
                    grpc.unary_stream_rpc_method_handler
                    if method.server_streaming
                    else grpc.unary_unary_rpc_method_handler
                )
                behaviour = self._stream if method.server_streaming else self._unary
                handlers[method.name] = make(
                    _bind(behaviour, method.name),
                    request_deserializer=request_class.FromString,
                    response_serializer=response_class.SerializeToString,
                )
            self._server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service.full_name, handlers),)
            )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)

    def last(self, method: str) -> Any:
        """The last request of ``method``."""
        return self.requests[method][-1]

    def _next_reply(self, method: str, request: Message, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.requests[method].append(request)
            self.metadata[method].append(dict(context.invocation_metadata()))
            call = self._calls[method]
            self._calls[method] += 1
        if method not in self.replies:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"no canned reply for {method}")
        reply = self.replies[method]
        if callable(reply):
            reply = reply(request)
        return reply, call

    def _unary(self, method: str, request: Message, context: grpc.ServicerContext) -> Message:
        reply, call = self._next_reply(method, request, context)
        if isinstance(reply, list):
            reply = reply[min(call, len(reply) - 1)]
        if isinstance(reply, Fail):
            context.abort(reply.code, reply.details)
        return reply

    def _stream(self, method: str, request: Message, context: grpc.ServicerContext) -> Iterator[Message]:
        reply, call = self._next_reply(method, request, context)
        if isinstance(reply, Streams):
            reply = reply.calls[min(call, len(reply.calls) - 1)]
        for item in reply:
            if isinstance(item, Fail):
                context.abort(item.code, item.details)
            yield item


def _bind(behaviour: Callable[..., Any], method: str) -> Callable[[Message, grpc.ServicerContext], Any]:
    return lambda request, context: behaviour(method, request, context)
