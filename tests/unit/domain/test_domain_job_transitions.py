"""Job status transitions, every ordered pair, against a table written out here (DESIGN §4.1).

The expectation is not read from `jobqd.domain.states`: it is the seed table
(shared/seeds/flamenco-jobs-tasks-commands.md, "Possible next status") plus DESIGN's extensions,
each with the reason it exists. A pair missing from the table must be rejected with the current
status in the error.
"""

from __future__ import annotations

import itertools

import pytest

from jobqd.domain.errors import InvalidTransition
from jobqd.domain.states import JOB_SEED, JobStatus, check_job, job_can

J = JobStatus

#: Flamenco's "Possible next status" column, verbatim.
SEED: dict[JobStatus, set[JobStatus]] = {
    J.UNDER_CONSTRUCTION: {J.QUEUED, J.ACTIVE},
    J.QUEUED: {J.ACTIVE, J.CANCELED},
    J.ACTIVE: {J.COMPLETED, J.CANCELED, J.FAILED},
    J.COMPLETED: {J.QUEUED},
    J.FAILED: {J.QUEUED, J.CANCELED},
    J.CANCEL_REQUESTED: {J.CANCELED},
    J.CANCELED: {J.QUEUED},
    J.REQUEUEING: {J.QUEUED},
    J.PAUSE_REQUESTED: set(),  # not in the seed
    J.PAUSED: set(),  # seed: "not yet implemented"
}

#: DESIGN §4.1 extensions, one line each with its reason.
EXTENSIONS: dict[JobStatus, set[JobStatus]] = {
    J.UNDER_CONSTRUCTION: set(),  # a draft is deleted, which is not a status
    J.QUEUED: {
        J.PAUSED,  # pause before start
        J.FAILED,  # a dependency that can never be satisfied fails the job before it starts (§3)
    },
    J.ACTIVE: {
        J.CANCEL_REQUESTED,  # cancel while tasks still run on nodes
        J.PAUSE_REQUESTED,  # pause while tasks still run on nodes
        J.PAUSED,  # pause with no task on a node: nothing to wait for (as the seed's active → canceled)
        J.QUEUED,  # its admission was evicted (§4.3)
    },
    J.COMPLETED: {J.REQUEUEING},  # "via requeueing"
    J.FAILED: {J.REQUEUEING},  # "via requeueing"
    J.CANCEL_REQUESTED: set(),
    J.CANCELED: {J.REQUEUEING},  # "via requeueing"
    J.REQUEUEING: set(),
    J.PAUSE_REQUESTED: {
        J.PAUSED,  # the active tasks finished
        J.ACTIVE,  # resume withdraws a pause that has not completed
        J.CANCEL_REQUESTED,  # cancel wins over pause; tasks still running
        J.CANCELED,  # cancel wins over pause; nothing running
        J.COMPLETED,  # the tasks still running finished the job (outcome rules)
        J.FAILED,  # the tasks still running failed the job (outcome rules)
    },
    J.PAUSED: {
        J.QUEUED,  # resume
        J.CANCELED,  # cancel
    },
}

EXPECTED = {s: SEED[s] | EXTENSIONS[s] for s in J}
PAIRS = [
    pytest.param(cur, new, new in EXPECTED[cur], id=f"{cur.value}->{new.value}")
    for cur, new in itertools.product(J, J)
]


def test_the_table_names_every_status() -> None:
    assert set(SEED) == set(J) == set(EXTENSIONS)


def test_seed_edges_are_the_seed_documents() -> None:
    assert {s: set(n) for s, n in JOB_SEED.items()} == SEED


@pytest.mark.parametrize(("current", "new", "legal"), PAIRS)
def test_job_transition(current: JobStatus, new: JobStatus, legal: bool) -> None:
    assert job_can(current, new) is legal
    if legal:
        check_job("j-1", current, new, "move")
        return
    with pytest.raises(InvalidTransition) as err:
        check_job("j-1", current, new, "move")
    assert err.value.current == current.value
    assert f"it is {current.value}" in str(err.value)
    assert "job j-1" in str(err.value)


@pytest.mark.parametrize("status", list(J))
def test_no_status_moves_to_itself(status: JobStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"it is {status.value}"):
        check_job("j-1", status, status, "move")
