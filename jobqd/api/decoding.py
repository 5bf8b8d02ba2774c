"""Requests that are not even valid protobuf get INVALID_ARGUMENT, like any other bad input.

grpc parses a request with the method's deserializer before the servicer runs; when that raises
(bytes that are not a message of the request type: a truncated varint, a string field that is not
UTF-8 …), grpc.aio answers UNKNOWN "Unexpected DecodeError" and logs a traceback at error level.
`decode_requests` makes unary requests reach the handler as bytes and parses them there, turning a
DecodeError into INVALID_ARGUMENT, so a client sending garbage is told it sent garbage and the log
stays clean (found by the hostile-input test, tests/integration/robustness). Streaming requests
(NodeService.Connect) are parsed by `context.read()` inside the servicer, which handles
DecodeError itself (jobqd.nodes.session).

A handler wrapper (`jobqd.api.server`): `build_server(..., wraps=[..., decode_requests])`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def decode_requests(method: str, handler: Handler) -> Handler:
    if handler.request_streaming or handler.request_deserializer is None:
        return handler
    parse = handler.request_deserializer
    problem = f"the request is not a valid protobuf message for {method.rsplit('/', 1)[-1]}"

    if handler.unary_unary is not None:
        unary: Any = handler.unary_unary

        async def unary_unary(raw: bytes, context: Ctx) -> Any:
            try:
                request = parse(raw)
            except DecodeError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, request_deserializer=None, response_serializer=handler.response_serializer
        )
    if handler.unary_stream is not None:
        stream: Any = handler.unary_stream

        async def unary_stream(raw: bytes, context: Ctx) -> AsyncIterator[Any]:
            try:
                request = parse(raw)
            except DecodeError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            result: Any = stream(request, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:  # a coroutine that writes with context.write
                await result

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=None, response_serializer=handler.response_serializer
        )
    return handler


__all__ = ["decode_requests"]
