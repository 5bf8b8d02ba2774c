"""Option and argument values: ``--array 1-100:2``, ``--resources cpu=2,memory=1Gi``, task
references, status names. Every mistake is a ``click.BadParameter`` (exit code 2) that says what
was expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem

from jobq.errors import InvalidArgument
from jobq.sdk.names import EnumNames
from jobq.spec import parse_dependency
from jobq.v1 import types_pb2

__all__ = [
    "EnumList",
    "dependencies_option",
    "flatten",
    "key_values_option",
    "parse_dependencies",
    "parse_key_values",
    "parse_range",
    "range_option",
    "resolve_task_id",
]

_RANGE = re.compile(r"^(\d+)-(\d+)(?::(\d+))?$")
_INDEX = re.compile(r"^\d+$")


def parse_range(text: str) -> tuple[int, int, int]:
    """``"1-100:2"`` → (1, 100, 2); the step defaults to 1 and both ends are included (as Slurm)."""
    match = _RANGE.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: expected START-END or START-END:STEP, e.g. 1-100:2")
    start, end, step = int(match[1]), int(match[2]), int(match[3] or 1)
    if end < start:
        raise click.BadParameter(f"{text!r}: END must not be below START")
    if step < 1:
        raise click.BadParameter(f"{text!r}: STEP must be at least 1")
    return start, end, step


def parse_key_values(items: Iterable[str]) -> dict[str, str]:
    """``("cpu=2,memory=1Gi", "gpu=1")`` → {"cpu": "2", "memory": "1Gi", "gpu": "1"}; later wins."""
    result: dict[str, str] = {}
    for item in items:
        for pair in item.split(","):
            if not pair.strip():
                continue
            key, sep, value = pair.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key:
                raise click.BadParameter(f"{pair!r}: expected KEY=VALUE")
            result[key] = value
    return result


def range_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, int, int] | None:
    """Option callback: ``--array 1-100:2`` (errors then name the option)."""
    return parse_range(value) if value else None


def key_values_option(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    """Option callback for repeatable ``KEY=VALUE[,KEY=VALUE]`` options."""
    return parse_key_values(value)


def dependencies_option(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> list[types_pb2.JobDependency]:
    """Option callback for ``--depends-on``."""
    return parse_dependencies(value)


def parse_dependencies(items: Iterable[str]) -> list[types_pb2.JobDependency]:
    """``("afterok:01J…", "afterany:01K…")`` → JobDependency list (a bare id means afterok)."""
    try:
        return [parse_dependency(item) for item in items]
    except InvalidArgument as err:
        raise click.BadParameter(err.message) from err


def resolve_task_id(first: str, second: str | None = None) -> str:
    """A task given as its id (``JOB.INDEX``), or as ``JOB INDEX``, or as ``JOB JOB.INDEX``."""
    if second is None:
        if "." not in first:
            raise click.BadParameter(f"{first!r}: expected a task id JOB.INDEX, or JOB INDEX")
        return first
    if _INDEX.match(second):
        return f"{first}.{second}"
    if second.startswith(f"{first}."):
        return second
    raise click.BadParameter(
        f"{second!r}: expected the task's index within job {first} or its id {first}.INDEX"
    )


if TYPE_CHECKING:  # click < 8.2 (still supported) has no generic ParamType at runtime
    _ParamType = click.ParamType[list[int], Any]
else:
    _ParamType = click.ParamType


class EnumList(_ParamType):
    """Enum names, repeatable and comma-separated (``--status queued,active``), with completion."""

    name = "names"

    def __init__(self, names: EnumNames[Any]) -> None:
        self.names = names

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            return [self.names.value(part) for part in str(value).split(",") if part.strip()]
        except InvalidArgument as err:
            self.fail(err.message, param, ctx)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        done, _, last = incomplete.rpartition(",")
        prefix = f"{done}," if done else ""
        return [CompletionItem(prefix + name) for name in self.names.names() if name.startswith(last)]

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "[" + "|".join(self.names.names()) + "]"


def flatten(lists: Iterable[list[int]]) -> list[int]:
    """Values of a repeatable EnumList option, in order, without repeats."""
    seen: dict[int, None] = {}
    for values in lists:
        seen.update(dict.fromkeys(values))
    return list(seen)
