"""Command validation: what an Assign's commands become, and the messages for what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2
from jobq.node.commands import (
    CommandError,
    EchoSpec,
    ExecSpec,
    NoopSpec,
    PluginSpec,
    ShellSpec,
    SleepSpec,
    parse_command,
    struct_to_python,
)

SUPPORTED = ("exec", "shell", "sleep", "echo", "noop", "render")


def parse(type_: str, params: dict[str, Any] | None = None, *, shell_allowed: bool = True) -> object:
    return parse_command(type_, params or {}, supported=SUPPORTED, shell_allowed=shell_allowed)


@pytest.mark.parametrize(
    ("type_", "params", "expected"),
    [
        ("noop", {}, NoopSpec()),
        ("echo", {"message": "hi"}, EchoSpec(message="hi")),
        ("echo", {}, EchoSpec(message="")),
        ("sleep", {"seconds": 1.5}, SleepSpec(seconds=1.5)),
        ("sleep", {"seconds": 0}, SleepSpec(seconds=0.0)),
        ("exec", {"argv": ["/bin/echo", "a b"]}, ExecSpec(argv=("/bin/echo", "a b"))),
        # Struct numbers are doubles: integral ones become "5", as a user wrote them
        ("exec", {"argv": ["sleep", 5.0]}, ExecSpec(argv=("sleep", "5"))),
        (
            "exec",
            {"argv": ["x"], "env": {"A": "1", "N": 2.0}, "cwd": "sub", "timeout_s": 3},
            ExecSpec(argv=("x",), env={"A": "1", "N": "2"}, cwd="sub", timeout_s=3.0),
        ),
        ("shell", {"script": "echo hi", "timeout_s": 1}, ShellSpec(script="echo hi", timeout_s=1.0)),
        (
            "render",
            {"frame": 3.0, "opts": {"a": [1.0]}},
            PluginSpec("render", {"frame": 3.0, "opts": {"a": [1.0]}}),
        ),
    ],
)
def test_valid_commands(type_: str, params: dict[str, Any], expected: object) -> None:
    assert parse(type_, params) == expected


@pytest.mark.parametrize(
    ("type_", "params", "message"),
    [
        ("exec", {}, "params.argv is required: a non-empty list of strings"),
        ("exec", {"argv": []}, "params.argv is required"),
        ("exec", {"argv": "ls -l"}, "params.argv is required"),
        ("exec", {"argv": ["ls", {"a": 1}]}, "params.argv[1] must be a string"),
        ("exec", {"argv": ["ls", True]}, "params.argv[1] must be a string"),
        ("exec", {"argv": [""]}, "params.argv[0] must not be empty"),
        ("exec", {"argv": ["a\0b"]}, "contains a NUL character"),
        ("exec", {"argv": ["ls"], "env": ["A=1"]}, "params.env must be a map of strings"),
        ("exec", {"argv": ["ls"], "env": {"A=B": "1"}}, "invalid variable name 'A=B'"),
        ("exec", {"argv": ["ls"], "env": {"A": None}}, "params.env.A must be a string"),
        ("exec", {"argv": ["ls"], "timeout_s": 0}, "params.timeout_s must be > 0"),
        ("exec", {"argv": ["ls"], "timeout_s": "5"}, "params.timeout_s must be a finite number"),
        ("exec", {"argv": ["ls"], "timeout_s": float("inf")}, "must be a finite number"),
        ("exec", {"argv": ["ls"], "cwd": 3.0}, "params.cwd must be a string"),
        (
            "exec",
            {"argv": ["ls"], "args": []},
            "unknown parameter(s) args (known: argv, env, cwd, timeout_s)",
        ),
        ("sleep", {}, "params.seconds must be a number >= 0"),
        ("sleep", {"seconds": -1}, "params.seconds must be a number >= 0"),
        ("sleep", {"seconds": True}, "params.seconds must be a finite number"),
        ("noop", {"x": 1}, "unknown parameter(s) x (known: none)"),
        ("echo", {"message": 3.0}, "params.message must be a string"),
        ("shell", {}, "params.script is required"),
        (
            "bake",
            {},
            "unknown command type 'bake' (this node supports: echo, exec, noop, render, shell, sleep)",
        ),
    ],
)
def test_invalid_commands_say_why(type_: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse(type_, params)
    assert message in str(caught.value)


def test_shell_is_refused_with_a_hint_unless_allowed() -> None:
    with pytest.raises(CommandError, match=r"not allowed on this node \(start it with --allow-shell\)"):
        parse("shell", {"script": "true"}, shell_allowed=False)


def test_struct_becomes_plain_python() -> None:
    struct = struct_pb2.Struct()
    struct.update({"s": "x", "n": 1.5, "b": False, "z": None, "l": [1, "a", {"k": []}], "m": {"i": {}}})
    assert struct_to_python(struct) == {
        "s": "x",
        "n": 1.5,
        "b": False,
        "z": None,
        "l": [1.0, "a", {"k": []}],
        "m": {"i": {}},
    }
