"""Requests that are not even valid protobuf get INVALID_ARGUMENT, like any other bad input.

grpc parses a request with the method's deserializer before the servicer runs; when that raises
(bytes that are not a message of the request type: a truncated varint, a string field that is not
UTF-8 …), grpc.aio answers UNKNOWN "Unexpected DecodeError" and logs a traceback at error level.
This interceptor parses unary requests itself and turns a DecodeError into INVALID_ARGUMENT, so a
client sending garbage is told it sent garbage and the log stays clean (found by the hostile-input
test, tests/integration/robustness). Streaming requests (NodeService.Connect) are parsed by
`context.read()` inside the servicer, which handles DecodeError itself (jobqd.nodes.session).

Install with `build_server(..., interceptors=[DecodeErrorInterceptor(), ...])`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

Ctx = grpc.aio.ServicerContext[Any, Any]


def _problem(method: str) -> str:
    return f"the request is not a valid protobuf message for {method.rsplit('/', 1)[-1]}"


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        problem = _problem(handler_call_details.method)

        async def decode(raw: bytes, context: Ctx) -> Any:
            try:
                return parse(raw)
            except DecodeError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)

        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary

            async def unary_unary(raw: bytes, context: Ctx) -> Any:
                return await unary(await decode(raw, context), context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, request_deserializer=None, response_serializer=handler.response_serializer
            )
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream

            async def unary_stream(raw: bytes, context: Ctx) -> AsyncIterator[Any]:
                result: Any = stream(await decode(raw, context), context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:  # a coroutine that writes with context.write
                    await result

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, request_deserializer=None, response_serializer=handler.response_serializer
            )
        return handler


__all__ = ["DecodeErrorInterceptor"]
