"""Output rendering: protobuf JSON with proto field names, arrays for lists, readable tables."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from jobq.cli import tables
from jobq.cli.context import AppContext
from jobq.cli.exits import ExitCode, error_line, exit_code_for
from jobq.cli.rendering import emit, fmt_age, fmt_map, message_to_dict
from jobq.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from jobq.spec import job_spec_from_yaml, load_job_spec
from jobq.v1 import types_pb2
from rich.console import Console

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def _stamp(seconds_ago: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromSeconds(int(NOW.timestamp()) - seconds_ago)
    return stamp


JOB = types_pb2.Job(
    id="01JA",
    spec=types_pb2.JobSpec(name="render", queue="gpu", priority=7, labels={"p": "x"}),
    status=types_pb2.JOB_STATUS_CANCEL_REQUESTED,
    admission=types_pb2.ADMISSION_PHASE_INADMISSIBLE,
    status_reason="queue gpu is held",
    total_tasks=10,
    task_counts=types_pb2.TaskCounts(completed=7, active=2, soft_failed=1),
    submit_time=_stamp(3 * 3600 + 5),
)


def _render(table: object, data: object) -> str:
    console = Console(record=True, width=200, color_system=None, file=io.StringIO())
    table(console, data)  # type: ignore[operator]
    return console.export_text()


def test_json_is_the_messages_protobuf_json_with_proto_field_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit(AppContext(server="x", timeout=1, output="json"), JOB, tables.job_detail)
    printed = json.loads(capsys.readouterr().out)

    assert printed == message_to_dict(JOB)
    assert printed["status_reason"] == "queue gpu is held"
    assert printed["status"] == "JOB_STATUS_CANCEL_REQUESTED"
    assert printed["total_tasks"] == "10"  # int64 as a string, as protobuf JSON has it
    assert printed["archived"] is False  # fields at their default are printed too
    assert json_format.ParseDict(printed, types_pb2.Job()) == JOB  # and it parses back


def test_a_list_prints_a_json_array_and_yaml_the_same_data(capsys: pytest.CaptureFixture[str]) -> None:
    emit(AppContext(server="x", timeout=1, output="json"), [JOB, JOB], tables.jobs_table)
    assert json.loads(capsys.readouterr().out) == [message_to_dict(JOB)] * 2

    emit(AppContext(server="x", timeout=1, output="json"), [], tables.jobs_table)
    assert json.loads(capsys.readouterr().out) == []

    emit(AppContext(server="x", timeout=1, output="yaml"), [JOB], tables.jobs_table)
    assert yaml.safe_load(capsys.readouterr().out) == [message_to_dict(JOB)]


def test_tables_use_the_seed_state_names() -> None:
    text = _render(lambda c, d: tables.jobs_table(c, d, now=NOW), [JOB])

    header, row = text.splitlines()[:2]
    assert header.split() == ["ID", "NAME", "QUEUE", "PRI", "STATUS", "ADMISSION", "TASKS", "AGE", "REASON"]
    for shown in ("cancel-requested", "inadmissible", "7/10 (2 active)", " 3h ", "queue gpu is held"):
        assert shown in row


def test_job_detail_counts_every_task_status() -> None:
    text = _render(tables.job_detail, JOB)

    assert "10 (2 active, 7 completed, 1 soft-failed)" in text
    assert "p=x" in text


def test_task_and_event_lines() -> None:
    task = types_pb2.Task(
        id="01JA.3",
        status=types_pb2.TASK_STATUS_SOFT_FAILED,
        attempt=2,
        node="n1",
        exit_code=2,
        message="boom",
    )
    text = _render(tables.tasks_table, [task])
    for shown in ("soft-failed", "boom", " 2 "):
        assert shown in text

    event = types_pb2.Event(
        sequence=42,
        type=types_pb2.EVENT_TYPE_TASK_STATUS_CHANGED,
        job_id="01JA",
        task_id="01JA.3",
        task_status=types_pb2.TASK_STATUS_FAILED,
        node="n1",
        attempt=3,
        reason="exit code 2",
    )
    line = tables.event_line(event)
    assert line.startswith("42 ")
    assert line.endswith(
        "task-status-changed task=01JA.3 status=failed node=n1 attempt=3 reason='exit code 2'"
    )


def test_ages_and_maps() -> None:
    assert [fmt_age(_stamp(s), NOW) for s in (5, 600, 7200, 3 * 86400)] == ["5s", "10m", "2h", "3d"]
    assert fmt_age(Timestamp(), NOW) == "-"
    assert fmt_map({"memory": "1Gi", "cpu": "2"}) == "cpu=2,memory=1Gi"
    assert fmt_map({}) == "-"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgument("x"), ExitCode.USAGE),
        (FailedPrecondition("x"), ExitCode.REFUSED),
        (NotFound("x"), ExitCode.REFUSED),
        (AlreadyExists("x"), ExitCode.REFUSED),
        (PermissionDenied("x"), ExitCode.REFUSED),
        (Unauthenticated("x"), ExitCode.REFUSED),
        (InternalError("x"), ExitCode.REFUSED),
        (Unavailable("x"), ExitCode.UNREACHABLE),
        (DeadlineExceeded("x"), ExitCode.UNREACHABLE),
    ],
)
def test_exit_codes(error: Exception, code: ExitCode) -> None:
    assert exit_code_for(error) == code  # type: ignore[arg-type]


def test_exit_code_values_are_the_documented_ones() -> None:
    assert (ExitCode.OK, ExitCode.JOB_FAILED, ExitCode.REFUSED, ExitCode.USAGE, ExitCode.UNREACHABLE) == (
        0,
        1,
        1,
        2,
        3,
    )


def test_error_lines() -> None:
    refused = FailedPrecondition("job 01JA is queued; requeue needs completed, failed or canceled")
    assert error_line(refused, server="s:1", timeout=30) == (
        "error: FAILED_PRECONDITION: job 01JA is queued; requeue needs completed, failed or canceled"
    )
    assert error_line(Unavailable("connection refused"), server="127.0.0.1:7070", timeout=30) == (
        "error: cannot reach jobqd at 127.0.0.1:7070 (connection refused)"
    )
    assert "did not answer within 2.5s" in error_line(
        DeadlineExceeded("Deadline Exceeded"), server="s", timeout=2.5
    )


def test_a_job_printed_as_yaml_can_be_submitted_again() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    for name in ("render.yaml", "array.yaml"):
        spec = load_job_spec(examples / name)
        printed = yaml.safe_dump(message_to_dict(types_pb2.Job(id="01JA", spec=spec)))
        assert job_spec_from_yaml(printed) == spec
