"""The exceptions the jobq SDK raises, and the one place gRPC errors become them.

Callers of :class:`jobq.AsyncClient` / :class:`jobq.Client` never see a raw ``grpc.RpcError``:
every failed call is turned into one of these by :func:`from_rpc_error`. Errors found locally,
before anything is sent (a malformed job spec, ids *and* a filter given together), are raised as
:class:`InvalidArgument` too, so one ``except`` clause handles both.

Hierarchy::

    JobqError                      any failure; .code (grpc.StatusCode) and .message
    ├── InvalidArgument            INVALID_ARGUMENT, OUT_OF_RANGE: bad input; the message names the field
    ├── NotFound                   NOT_FOUND: unknown job, task, queue or node
    ├── FailedPrecondition         FAILED_PRECONDITION: illegal transition; the message names the status
    ├── AlreadyExists              ALREADY_EXISTS: request_id reused with different content, queue exists
    ├── Unauthenticated            UNAUTHENTICATED: no or unknown token
    ├── PermissionDenied           PERMISSION_DENIED: the token's role may not do this
    ├── ResourceExhausted          RESOURCE_EXHAUSTED: the server is overloaded or a limit was hit
    ├── Unavailable                UNAVAILABLE: jobqd cannot be reached (or cannot write its store)
    ├── DeadlineExceeded           DEADLINE_EXCEEDED: no answer within the call's timeout
    └── InternalError              INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED: a bug or a version skew

Codes not listed (CANCELLED, ABORTED) are raised as a plain :class:`JobqError`.
"""

from __future__ import annotations

from typing import Final

import grpc

__all__ = [
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InternalError",
    "InvalidArgument",
    "JobqError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
]


class JobqError(Exception):
    """Base of every error the SDK raises.

    ``code`` is the gRPC status code (for local errors, the one the server would have used) and
    ``message`` the server's text, which names the offending field or the current status.
    """

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code

    @property
    def code_name(self) -> str:
        """The status code's name, e.g. ``"FAILED_PRECONDITION"``."""
        return str(self.code.name)

    def __str__(self) -> str:
        return f"{self.code_name}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code_name})"


class InvalidArgument(JobqError):
    """The request was malformed; the message names the field (``spec.tasks[3].commands[0]: …``)."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(JobqError):
    """No job, task, queue or node with that id or name."""

    default_code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(JobqError):
    """The action is illegal in the object's current state (e.g. requeue of a queued job)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(JobqError):
    """A request_id was reused with different content, or the object already exists."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(JobqError):
    """The server wants a token and got none, or an unknown one."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(JobqError):
    """The token's role does not allow this call."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(JobqError):
    """The server is overloaded or a documented limit was exceeded."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(JobqError):
    """jobqd cannot be reached (or cannot write its store right now); retrying later may work."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(JobqError):
    """The call did not complete within its timeout."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class InternalError(JobqError):
    """The server failed unexpectedly, or client and server disagree on the API."""

    default_code = grpc.StatusCode.INTERNAL


_BY_CODE: Final[dict[grpc.StatusCode, type[JobqError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
    grpc.StatusCode.UNIMPLEMENTED: InternalError,
}


def from_rpc_error(err: grpc.RpcError) -> JobqError:
    """Turn a failed gRPC call (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``) into a JobqError.

    The server puts the human explanation (field name, current status) in the status message,
    which becomes ``message`` unchanged. Use as ``raise from_rpc_error(err) from err``.
    """
    # A bare grpc.RpcError (raised by some channel-level failures) carries no status at runtime,
    # whatever the type stubs say.
    code_of = getattr(err, "code", None)
    details_of = getattr(err, "details", None)
    code = code_of() if callable(code_of) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details = details_of() if callable(details_of) else None
    message = details if isinstance(details, str) and details else str(code.value[1])
    cls = _BY_CODE.get(code, JobqError)
    return cls(message, code=code)
