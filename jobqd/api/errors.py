"""The one place where jobqd errors become gRPC status codes (DESIGN §6).

Servicer methods are wrapped by `rpc` / `stream_rpc`: a JobqError aborts the call with its code and
message; anything else is logged with its traceback and reported as INTERNAL without internals.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
import structlog

from jobqd.domain import errors as e

log = structlog.get_logger("jobqd.api")

CODES: dict[type[e.JobqError], grpc.StatusCode] = {
    e.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.InvalidTransition: grpc.StatusCode.FAILED_PRECONDITION,
    e.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    e.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    e.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.Unavailable: grpc.StatusCode.UNAVAILABLE,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def status_for(err: e.JobqError) -> grpc.StatusCode:
    for cls in type(err).__mro__:
        code = CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")


def rpc(
    fn: Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
        try:
            return await fn(self, request, context)
        except e.JobqError as err:
            await context.abort(status_for(err), err.message)
        except (grpc.aio.AbortError, KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.exception("rpc failed", rpc=fn.__name__)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error in {fn.__name__}; see the jobqd log"
            )
        raise AssertionError("unreachable")  # context.abort always raises

    return wrapper


def stream_rpc(
    fn: Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
    @functools.wraps(fn)
    async def wrapper(
        self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except e.JobqError as err:
            await context.abort(status_for(err), err.message)
        except (grpc.aio.AbortError, KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.exception("streaming rpc failed", rpc=fn.__name__)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error in {fn.__name__}; see the jobqd log"
            )

    return wrapper
