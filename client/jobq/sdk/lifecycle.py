"""What the clients need to know about the job lifecycle: when a job is done, and how it ended."""

from __future__ import annotations

from typing import Final

from jobq.v1 import types_pb2

__all__ = ["SUCCEEDED_JOB_STATUSES", "TERMINAL_JOB_STATUSES", "is_finished", "succeeded"]

#: A job in one of these runs nothing more until someone requeues it.
TERMINAL_JOB_STATUSES: Final = frozenset(
    {types_pb2.JOB_STATUS_COMPLETED, types_pb2.JOB_STATUS_FAILED, types_pb2.JOB_STATUS_CANCELED}
)
SUCCEEDED_JOB_STATUSES: Final = frozenset({types_pb2.JOB_STATUS_COMPLETED})


def is_finished(job: types_pb2.Job) -> bool:
    """True once the job is completed, failed or canceled."""
    return job.status in TERMINAL_JOB_STATUSES


def succeeded(job: types_pb2.Job) -> bool:
    """True if the job completed (failed and canceled jobs did not)."""
    return job.status in SUCCEEDED_JOB_STATUSES
