"""The one exception tree of jobqd. The API layer maps it to gRPC status codes in one place
(`jobqd.api.errors`); the SDK maps the codes back to its own tree of the same shape.

    JobqError
     ├── InvalidArgument      bad input; names the field          → INVALID_ARGUMENT
     ├── NotFound             unknown job / task / queue / node    → NOT_FOUND
     ├── InvalidTransition    illegal state change; names status   → FAILED_PRECONDITION
     ├── FailedPrecondition   other refused-in-this-state cases    → FAILED_PRECONDITION
     ├── Conflict             request_id reused with other content → ALREADY_EXISTS
     ├── ResourceExhausted    overload / limit of in-flight work   → RESOURCE_EXHAUSTED
     ├── Unavailable          the store cannot write               → UNAVAILABLE
     ├── Unauthenticated                                           → UNAUTHENTICATED
     └── PermissionDenied                                          → PERMISSION_DENIED
"""

from __future__ import annotations


class JobqError(Exception):
    """Base of every error jobqd reports to a caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(JobqError):
    """A request field is invalid. `field` is its path, e.g. `spec.tasks[2].commands[0].type`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


class NotFound(JobqError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class InvalidTransition(JobqError):
    """An action that the state machine does not allow from the current status."""

    def __init__(self, *, kind: str, ident: str, current: str, action: str, allowed_from: str = "") -> None:
        detail = f"; {action} needs {allowed_from}" if allowed_from else ""
        super().__init__(f"cannot {action} {kind} {ident}: it is {current}{detail}")
        self.current = current
        self.action = action


class FailedPrecondition(JobqError):
    pass


class Conflict(JobqError):
    pass


class ResourceExhausted(JobqError):
    pass


class Unavailable(JobqError):
    pass


class Unauthenticated(JobqError):
    pass


class PermissionDenied(JobqError):
    pass
