"""Enum values ↔ the seed documents' state names, derived in one place."""

from __future__ import annotations

import pytest
from jobq.errors import InvalidArgument
from jobq.sdk import names
from jobq.v1 import types_pb2

ALL = [
    names.JOB_STATUS,
    names.TASK_STATUS,
    names.ADMISSION_PHASE,
    names.DEPENDENCY_CONDITION,
    names.QUEUEING_STRATEGY,
    names.PREEMPTION_POLICY,
    names.QUEUE_STATE,
    names.NODE_STATE,
    names.EVENT_TYPE,
]


def test_job_statuses_use_the_seed_names() -> None:
    assert names.JOB_STATUS.names() == [
        "under-construction",
        "queued",
        "active",
        "completed",
        "failed",
        "cancel-requested",
        "canceled",
        "requeueing",
        "pause-requested",
        "paused",
    ]


def test_task_statuses_and_admission_phases_use_the_seed_names() -> None:
    assert names.TASK_STATUS.names() == [
        "queued",
        "active",
        "completed",
        "soft-failed",
        "failed",
        "canceled",
        "paused",
    ]
    assert names.ADMISSION_PHASE.names() == ["submitted", "inadmissible", "pending", "admitted", "finished"]
    assert names.QUEUEING_STRATEGY.names() == ["best-effort-fifo", "strict-fifo"]
    assert names.PREEMPTION_POLICY.names() == ["never", "lower-priority"]


@pytest.mark.parametrize("enum", ALL, ids=lambda e: e.what)
def test_every_name_parses_back_to_its_value(enum: names.EnumNames[int]) -> None:
    for name in enum.names():
        assert enum.name(enum.value(name)) == name


@pytest.mark.parametrize(
    "spelling", ["soft-failed", "soft_failed", "SOFT-FAILED", "TASK_STATUS_SOFT_FAILED", " soft-failed "]
)
def test_parsing_accepts_the_usual_spellings(spelling: str) -> None:
    assert names.TASK_STATUS.value(spelling) == types_pb2.TASK_STATUS_SOFT_FAILED


def test_unknown_or_unspecified_names_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(
        InvalidArgument, match=r"unknown job status 'running' \(expected one of under-construction, queued"
    ):
        names.JOB_STATUS.value("running")
    with pytest.raises(InvalidArgument):
        names.JOB_STATUS.value("unspecified")


def test_a_value_newer_than_this_client_still_prints() -> None:
    assert names.JOB_STATUS.name(99) == "<99>"


def test_coerce_takes_values_and_names() -> None:
    assert names.ADMISSION_PHASE.coerce("admitted") == types_pb2.ADMISSION_PHASE_ADMITTED
    assert (
        names.ADMISSION_PHASE.coerce(types_pb2.ADMISSION_PHASE_PENDING) == types_pb2.ADMISSION_PHASE_PENDING
    )
    with pytest.raises(InvalidArgument):
        names.ADMISSION_PHASE.coerce(42)
