"""Task status transitions, every ordered pair, against a table written out here (DESIGN §4.2).

Seed edges from shared/seeds/flamenco-jobs-tasks-commands.md plus DESIGN's extensions, each with
its reason; everything else must be rejected with the current status in the error.
"""

from __future__ import annotations

import itertools

import pytest

from jobqd.domain.errors import InvalidTransition
from jobqd.domain.states import TASK_SEED, TaskStatus, check_task, task_can

T = TaskStatus

SEED: dict[TaskStatus, set[TaskStatus]] = {
    T.QUEUED: {T.ACTIVE, T.CANCELED},
    T.ACTIVE: {T.COMPLETED, T.CANCELED, T.FAILED, T.SOFT_FAILED},
    T.COMPLETED: {T.QUEUED},
    T.SOFT_FAILED: {T.QUEUED, T.COMPLETED, T.FAILED, T.CANCELED},
    T.FAILED: {T.QUEUED, T.CANCELED},
    T.CANCELED: {T.QUEUED},
    T.PAUSED: set(),  # seed: "not yet implemented"
}

EXTENSIONS: dict[TaskStatus, set[TaskStatus]] = {
    T.QUEUED: {T.PAUSED},  # its job was paused
    T.ACTIVE: {T.QUEUED},  # interrupted (eviction, node lost, drain --stop): not a failure
    T.COMPLETED: set(),
    T.SOFT_FAILED: {
        T.ACTIVE,  # "same as queued": runnable (DESIGN §5), dispatched to another node
        T.PAUSED,  # its job was paused
    },
    T.FAILED: set(),
    T.CANCELED: set(),
    T.PAUSED: {
        T.QUEUED,  # resume
        T.CANCELED,  # cancel
    },
}

EXPECTED = {s: SEED[s] | EXTENSIONS[s] for s in T}
PAIRS = [
    pytest.param(cur, new, new in EXPECTED[cur], id=f"{cur.value}->{new.value}")
    for cur, new in itertools.product(T, T)
]


def test_the_table_names_every_status() -> None:
    assert set(SEED) == set(T) == set(EXTENSIONS)


def test_seed_edges_are_the_seed_documents() -> None:
    assert {s: set(n) for s, n in TASK_SEED.items()} == SEED


@pytest.mark.parametrize(("current", "new", "legal"), PAIRS)
def test_task_transition(current: TaskStatus, new: TaskStatus, legal: bool) -> None:
    assert task_can(current, new) is legal
    if legal:
        check_task("j-1.7", current, new, "move")
        return
    with pytest.raises(InvalidTransition) as err:
        check_task("j-1.7", current, new, "move")
    assert err.value.current == current.value
    assert f"it is {current.value}" in str(err.value)
    assert "task j-1.7" in str(err.value)


@pytest.mark.parametrize("status", list(T))
def test_no_status_moves_to_itself(status: TaskStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"it is {status.value}"):
        check_task("j-1.7", status, status, "move")
