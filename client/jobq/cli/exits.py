"""Exit codes scripts can rely on, and the one place an error becomes a line on stderr.

Policy (docs/cli.md):

====  =======================================================================================
0     success
1     the job ended failed or canceled (``wait``, ``submit --wait``), or jobqd refused the
      action: NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS, PERMISSION_DENIED,
      UNAUTHENTICATED, RESOURCE_EXHAUSTED, INTERNAL, …
2     usage error or invalid input: a bad flag or argument, a malformed job file, or the
      server's INVALID_ARGUMENT
3     jobqd cannot be reached (UNAVAILABLE) or did not answer in time (DEADLINE_EXCEEDED)
130   interrupted (Ctrl-C)
====  =======================================================================================
"""

from __future__ import annotations

from enum import IntEnum

from jobq.errors import DeadlineExceeded, InvalidArgument, JobqError, Unavailable

__all__ = ["ExitCode", "error_line", "exit_code_for"]


class ExitCode(IntEnum):
    OK = 0
    JOB_FAILED = 1
    REFUSED = 1
    USAGE = 2
    UNREACHABLE = 3
    INTERRUPTED = 130


def exit_code_for(error: JobqError) -> ExitCode:
    if isinstance(error, InvalidArgument):
        return ExitCode.USAGE
    if isinstance(error, Unavailable | DeadlineExceeded):
        return ExitCode.UNREACHABLE
    return ExitCode.REFUSED


def error_line(error: JobqError, *, server: str, timeout: float) -> str:
    """What the user reads: the server's own message, with its status code."""
    if isinstance(error, Unavailable):
        return f"error: cannot reach jobqd at {server} ({error.message})"
    if isinstance(error, DeadlineExceeded):
        return f"error: jobqd at {server} did not answer within {timeout:g}s ({error.message})"
    return f"error: {error}"
