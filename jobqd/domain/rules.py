"""The rules that decide outcomes: job actions, job outcome, task failure and interruption.

Each is a small pure function so it is decided in exactly one place and pinned by table tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from jobqd.domain.errors import InvalidTransition
from jobqd.domain.model import FailurePolicy
from jobqd.domain.states import JobStatus, TaskStatus

J = JobStatus
T = TaskStatus


class JobAction(StrEnum):
    CANCEL = "cancel"
    REQUEUE = "requeue"
    PAUSE = "pause"
    RESUME = "resume"


#: Which statuses each action starts from (for the error message).
_ACTION_FROM: dict[JobAction, tuple[JobStatus, ...]] = {
    JobAction.CANCEL: (J.QUEUED, J.ACTIVE, J.FAILED, J.PAUSE_REQUESTED, J.PAUSED),
    JobAction.REQUEUE: (J.COMPLETED, J.FAILED, J.CANCELED),
    JobAction.PAUSE: (J.QUEUED, J.ACTIVE),
    JobAction.RESUME: (J.PAUSED, J.PAUSE_REQUESTED),
}


def plan_job_action(*, job_id: str, status: JobStatus, action: JobAction, active_tasks: int) -> JobStatus:
    """The status a job moves to when a user asks for `action`.

    Cancel and pause wait for running tasks: with tasks still active the job goes to
    cancel-requested / pause-requested and is finished later by `settle_requested`.
    Requeue passes through `requeueing` to `queued` (the engine records both).
    """
    allowed = _ACTION_FROM[action]
    if status not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise InvalidTransition(
            kind="job", ident=job_id, current=status.value, action=action.value, allowed_from=names
        )
    if action is JobAction.CANCEL:
        return J.CANCEL_REQUESTED if active_tasks else J.CANCELED
    if action is JobAction.PAUSE:
        return J.PAUSE_REQUESTED if active_tasks else J.PAUSED
    if action is JobAction.REQUEUE:
        return J.QUEUED
    # resume: a paused job queues again; a pause that has not completed is simply withdrawn
    return J.QUEUED if status is J.PAUSED else J.ACTIVE


def requeue_all_tasks(status: JobStatus) -> bool:
    """Seed note: a completed job requeues all its tasks; otherwise only the non-completed ones."""
    return status is J.COMPLETED


def fail_threshold(total: int, fail_fraction: float) -> int:
    """Hard-failed tasks that fail the job: ceil(fail_fraction × tasks), at least 1."""
    return max(1, math.ceil(fail_fraction * total - 1e-9))


def job_outcome(
    *, status: JobStatus, counts: Mapping[TaskStatus, int], total: int, policy: FailurePolicy
) -> JobStatus | None:
    """The terminal status a running job has reached, or None while it can still progress.

    * completed when every task completed;
    * failed when failed tasks reach the threshold, or when nothing can progress any more and at
      least one task failed (a job is never left `active` with nothing to run);
    * canceled when every task ended and some were canceled (and none failed).
    A job being paused or canceled is settled by `settle_requested`, not here.
    """
    if status not in (J.QUEUED, J.ACTIVE):
        return None
    failed = counts[T.FAILED]
    if total and counts[T.COMPLETED] == total:
        return J.COMPLETED
    if failed >= fail_threshold(total, policy.fail_fraction):
        return J.FAILED
    live = counts[T.QUEUED] + counts[T.ACTIVE] + counts[T.SOFT_FAILED] + counts[T.PAUSED]
    if live == 0 and total:
        if failed:
            return J.FAILED
        if counts[T.CANCELED]:
            return J.CANCELED
    return None


def settle_requested(status: JobStatus, active_tasks: int) -> JobStatus | None:
    """cancel-requested / pause-requested become final once no task is active any more."""
    if active_tasks:
        return None
    if status is J.CANCEL_REQUESTED:
        return J.CANCELED
    if status is J.PAUSE_REQUESTED:
        return J.PAUSED
    return None


@dataclass(frozen=True, slots=True)
class FailureDecision:
    status: TaskStatus
    failed_by: tuple[str, ...]
    reason: str


def decide_failure(
    *, failed_by: tuple[str, ...], node: str, exit_code: int | None, policy: FailurePolicy, message: str
) -> FailureDecision:
    """A node reported a failed attempt. DESIGN §4.2:

    * an exit code in fail_fast_exit_codes, or outside a non-empty retry_on_exit_codes, fails at once;
    * otherwise the node joins `failed_by`; reaching max_attempts distinct nodes fails the task
      (the max_attempts-th distinct node's failure is the last), else it soft-fails and will not be
      given to a node in failed_by again.
    """
    nodes = failed_by if node in failed_by else (*failed_by, node)
    code = f"exit code {exit_code}" if exit_code is not None else "failure"
    if exit_code is not None and exit_code in policy.fail_fast_exit_codes:
        return FailureDecision(T.FAILED, nodes, f"{code} is fail-fast: {message}".rstrip(": "))
    if exit_code is not None and policy.retry_on_exit_codes and exit_code not in policy.retry_on_exit_codes:
        return FailureDecision(T.FAILED, nodes, f"{code} is not retryable: {message}".rstrip(": "))
    if len(nodes) >= policy.max_attempts:
        return FailureDecision(
            T.FAILED, nodes, f"failed on {len(nodes)} distinct nodes ({', '.join(nodes)}); last: {message}"
        )
    return FailureDecision(T.SOFT_FAILED, nodes, f"failed on {node} ({message}); will retry on another node")


def decide_interruption(
    *, interruptions: int, max_interruptions: int, reason: str
) -> tuple[TaskStatus, int, str]:
    """An active task was interrupted (eviction, node lost, drain --stop): not a failure, but a task
    lost `max_interruptions` times fails."""
    n = interruptions + 1
    if n >= max_interruptions:
        return T.FAILED, n, f"interrupted {n} times; last: {reason}"
    return T.QUEUED, n, f"interrupted: {reason}"


def blocklisted(failures: int, threshold: int) -> bool:
    """A (job, task type, node) with `failures` ≥ threshold gets no more tasks of that type."""
    return failures >= threshold
