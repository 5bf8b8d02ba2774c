"""Option values: array ranges, KEY=VALUE lists, dependencies, task references, status names."""

from __future__ import annotations

import click
import pytest
from jobq.cli.parsing import (
    EnumList,
    flatten,
    parse_dependencies,
    parse_key_values,
    parse_range,
    resolve_task_id,
)
from jobq.sdk.names import JOB_STATUS
from jobq.v1 import types_pb2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1-100:2", (1, 100, 2)), ("1-100", (1, 100, 1)), ("0-0", (0, 0, 1)), (" 5-9:3 ", (5, 9, 3))],
)
def test_array_ranges(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:100", "expected START-END or START-END:STEP"),
        ("a-b", "expected START-END"),
        ("-1-5", "expected START-END"),
        ("9-1", "END must not be below START"),
        ("1-9:0", "STEP must be at least 1"),
    ],
)
def test_bad_array_ranges_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        parse_range(text)


def test_key_values_split_commas_and_merge_repeats() -> None:
    assert parse_key_values(["cpu=2,memory=1Gi", "gpu=1", "cpu=4"]) == {
        "cpu": "4",
        "memory": "1Gi",
        "gpu": "1",
    }
    assert parse_key_values(["", "a = b "]) == {"a": "b"}
    assert parse_key_values(["empty="]) == {"empty": ""}
    with pytest.raises(click.BadParameter, match="'cpu': expected KEY=VALUE"):
        parse_key_values(["cpu"])
    with pytest.raises(click.BadParameter, match="expected KEY=VALUE"):
        parse_key_values(["=2"])


def test_dependencies() -> None:
    deps = parse_dependencies(["afterok:01JA", "afterany:01JB", "01JC"])

    assert [(d.job_id, d.condition) for d in deps] == [
        ("01JA", types_pb2.DEPENDENCY_CONDITION_AFTEROK),
        ("01JB", types_pb2.DEPENDENCY_CONDITION_AFTERANY),
        ("01JC", types_pb2.DEPENDENCY_CONDITION_AFTEROK),
    ]
    with pytest.raises(click.BadParameter, match="unknown dependency condition 'after'"):
        parse_dependencies(["after:01JA"])


@pytest.mark.parametrize(
    ("args", "task_id"),
    [(("01JA.3",), "01JA.3"), (("01JA", "3"), "01JA.3"), (("01JA", "01JA.3"), "01JA.3")],
)
def test_a_task_is_its_id_or_its_index_within_the_job(args: tuple[str, ...], task_id: str) -> None:
    assert resolve_task_id(*args) == task_id


@pytest.mark.parametrize("args", [("01JA",), ("01JA", "x"), ("01JA", "01JB.3")])
def test_task_references_that_mean_nothing(args: tuple[str, ...]) -> None:
    with pytest.raises(click.BadParameter):
        resolve_task_id(*args)


def test_status_lists_take_commas_and_repeats() -> None:
    kind = EnumList(JOB_STATUS)
    values = [kind.convert("queued,active", None, None), kind.convert("cancel-requested", None, None)]

    assert flatten([*values, values[0]]) == [
        types_pb2.JOB_STATUS_QUEUED,
        types_pb2.JOB_STATUS_ACTIVE,
        types_pb2.JOB_STATUS_CANCEL_REQUESTED,
    ]
    with pytest.raises(click.BadParameter, match="unknown job status 'running'"):
        kind.convert("queued,running", None, None)
