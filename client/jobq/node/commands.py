"""Validating the commands of an Assign before anything runs.

Commands arrive as ``{type, params}`` with params a ``google.protobuf.Struct``. Each is checked
here, up front, into a small typed spec, so a typo in the third command fails the attempt at once
with a precise message instead of after the first two ran. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import struct_pb2

BUILTIN_TYPES = ("exec", "shell", "sleep", "echo", "noop")
"""Command types every node has (``shell`` only when allowed)."""

PROCESS_TYPES = frozenset({"exec", "shell"})
"""Command types that spawn a process (and so need a working directory)."""


class CommandError(ValueError):
    """A command cannot be run as given; the message says why, for the task's status."""


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """``exec``: run ``argv`` directly (no shell)."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    """Working directory; relative paths are relative to the attempt's work dir."""
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class ShellSpec:
    """``shell``: run ``script`` with ``/bin/sh -c``."""

    script: str
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class SleepSpec:
    """``sleep``: wait, in-process."""

    seconds: float


@dataclass(frozen=True, slots=True)
class EchoSpec:
    """``echo``: write ``message`` to the task's log, in-process."""

    message: str


@dataclass(frozen=True, slots=True)
class NoopSpec:
    """``noop``: do nothing, successfully."""


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """A command type provided by an entry point; params are handed over as plain Python data."""

    type: str
    params: dict[str, Any]


CommandSpec = ExecSpec | ShellSpec | SleepSpec | EchoSpec | NoopSpec | PluginSpec

_NOOP = NoopSpec()


def value_to_python(value: struct_pb2.Value) -> Any:
    """A ``google.protobuf.Value`` as plain Python (dict, list, str, float, bool, None)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_python(value.struct_value)
    if kind == "list_value":
        return [value_to_python(item) for item in value.list_value.values]
    return None


def struct_to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as a plain dict."""
    return {key: value_to_python(value) for key, value in struct.fields.items()}


def parse_command(
    type_: str,
    params: Mapping[str, Any],
    *,
    supported: Collection[str],
    shell_allowed: bool,
) -> CommandSpec:
    """Check one command and return its spec; raise :class:`CommandError` with the reason.

    ``supported`` is what this node advertises (built-ins and plugins), ``shell_allowed`` whether
    ``--allow-shell`` was given (so a refused ``shell`` gets a message that says how to allow it).
    """
    if type_ == "shell" and not shell_allowed:
        raise CommandError("shell commands are not allowed on this node (start it with --allow-shell)")
    if type_ not in supported:
        known = ", ".join(sorted(supported))
        raise CommandError(f"unknown command type {type_!r} (this node supports: {known})")
    if type_ == "noop":
        _check_keys(params, ())
        return _NOOP
    if type_ == "echo":
        _check_keys(params, ("message",))
        return EchoSpec(message=_string(params, "message") or "")
    if type_ == "sleep":
        _check_keys(params, ("seconds",))
        seconds = _number(params, "seconds")
        if seconds is None or seconds < 0:
            raise CommandError("params.seconds must be a number >= 0")
        return SleepSpec(seconds=seconds)
    if type_ == "exec":
        _check_keys(params, ("argv", "env", "cwd", "timeout_s"))
        return ExecSpec(
            argv=_argv(params),
            env=_env(params),
            cwd=_string(params, "cwd") or None,
            timeout_s=_timeout(params),
        )
    if type_ == "shell":
        _check_keys(params, ("script", "timeout_s"))
        script = _string(params, "script")
        if not script:
            raise CommandError("params.script is required")
        return ShellSpec(script=script, timeout_s=_timeout(params))
    return PluginSpec(type=type_, params=dict(params))


def _check_keys(params: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(known))
    if unknown:
        allowed = ", ".join(known) if known else "none"
        raise CommandError(f"unknown parameter(s) {', '.join(unknown)} (known: {allowed})")


def _scalar_text(value: Any) -> str | None:
    """Strings as they are; numbers as written in JSON (Struct numbers are all doubles)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not isinstance(value, bool) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _string(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CommandError(f"params.{key} must be a string")
    return value


def _number(params: Mapping[str, Any], key: str) -> float | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CommandError(f"params.{key} must be a finite number")
    return float(value)


def _timeout(params: Mapping[str, Any]) -> float | None:
    timeout = _number(params, "timeout_s")
    if timeout is not None and timeout <= 0:
        raise CommandError("params.timeout_s must be > 0")
    return timeout


def _argv(params: Mapping[str, Any]) -> tuple[str, ...]:
    argv = params.get("argv")
    if not isinstance(argv, list) or not argv:
        raise CommandError("params.argv is required: a non-empty list of strings")
    out: list[str] = []
    for index, item in enumerate(argv):
        text = _scalar_text(item)
        if text is None:
            raise CommandError(f"params.argv[{index}] must be a string")
        if "\0" in text:
            raise CommandError(f"params.argv[{index}] contains a NUL character")
        out.append(text)
    if not out[0]:
        raise CommandError("params.argv[0] must not be empty")
    return tuple(out)


def _env(params: Mapping[str, Any]) -> dict[str, str]:
    env = params.get("env")
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise CommandError("params.env must be a map of strings")
    out: dict[str, str] = {}
    for key, value in env.items():
        text = _scalar_text(value)
        if not key or "=" in key or "\0" in key:
            raise CommandError(f"params.env has an invalid variable name {key!r}")
        if text is None or "\0" in text:
            raise CommandError(f"params.env.{key} must be a string")
        out[key] = text
    return out
