"""How results reach stdout: ``--output json`` and ``yaml`` print the API's own messages as protobuf
JSON with proto field names (a list is a JSON array; a stream is one JSON object per line, or one
YAML document each), ``table`` prints rich tables that fit the terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console

from jobq.cli.context import AppContext

__all__ = [
    "emit",
    "emit_data",
    "emit_stream_item",
    "fmt_age",
    "fmt_map",
    "fmt_time",
    "message_to_dict",
    "stdout_console",
]

M = TypeVar("M", bound=Message)


def message_to_dict(message: Message) -> dict[str, Any]:
    """The protobuf JSON form with proto field names; fields at their default are printed too,
    so scripts can rely on every field being present."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


#: Width when stdout is not a terminal: one row per line for grep and awk, as kubectl does.
_PIPE_WIDTH = 4096


def stdout_console() -> Console:
    # Created per call, not at import: click's test runner swaps sys.stdout.
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = _PIPE_WIDTH
    return console


def emit(app: AppContext, data: M | Sequence[M], table: Callable[[Console, Any], None]) -> None:
    """Print one message or a list of them in the chosen output format."""
    if app.output == "table":
        table(stdout_console(), data)
    else:
        emit_data(app, data)


def emit_data(app: AppContext, data: M | Sequence[M]) -> None:
    """Print one message or a list of them as JSON or YAML (for commands whose table output is a
    sentence rather than a table)."""
    plain: Any = message_to_dict(data) if isinstance(data, Message) else [message_to_dict(m) for m in data]
    if app.output == "json":
        click.echo(json.dumps(plain, indent=2, ensure_ascii=False))
    else:
        click.echo(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True), nl=False)


def emit_stream_item(app: AppContext, message: Message, line: Callable[[Any], str]) -> None:
    """Print one item of a stream (events, log chunks) as soon as it arrives."""
    if app.output == "table":
        click.echo(line(message))
    elif app.output == "json":
        click.echo(json.dumps(message_to_dict(message), ensure_ascii=False))
    else:
        click.echo(
            "---\n" + yaml.safe_dump(message_to_dict(message), sort_keys=False, allow_unicode=True), nl=False
        )
    # A stream is read by a person or a pipe as it happens, not when a buffer fills.
    sys.stdout.flush()


def _datetime(stamp: Timestamp) -> datetime | None:
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def fmt_time(stamp: Timestamp) -> str:
    """Local time to the second, or ``-`` when unset."""
    when = _datetime(stamp)
    return "-" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_age(stamp: Timestamp, now: datetime) -> str:
    """How long ago, kubectl style: ``45s``, ``12m``, ``3h``, ``5d``; ``-`` when unset."""
    when = _datetime(stamp)
    if when is None:
        return "-"
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def fmt_map(values: Mapping[str, str]) -> str:
    """``cpu=2,memory=1Gi`` (sorted), or ``-`` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"
