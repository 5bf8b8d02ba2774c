"""Flag parsing that maps onto NodeSettings, and which command types a node advertises."""

from __future__ import annotations

import pytest
from jobq.node.attempts import scrubbed_environment, work_dir_name
from jobq.node.service import command_types
from jobq.node.settings import build_capacity, check_quantity, parse_labels, parse_list


def test_labels() -> None:
    assert parse_labels("zone=eu-1, gpu=yes,,example.com/tier=a") == {
        "zone": "eu-1",
        "gpu": "yes",
        "example.com/tier": "a",
    }
    assert parse_labels(["a=1", "b=2,c="]) == {"a": "1", "b": "2", "c": ""}
    assert parse_labels("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zone", "expected key=value"),
        ("-zone=a", "label key '-zone'"),
        ("zone=a b", "label value 'a b'"),
        ("Bad_Prefix/x=1", "invalid prefix"),
        ("k=" + "v" * 64, "at most 63 characters"),
    ],
)
def test_bad_labels(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_labels(text)


def test_lists_from_commas_spaces_and_repeats() -> None:
    assert parse_list(["exec,echo", "noop echo"]) == ("exec", "echo", "noop")
    assert parse_list("") == ()


@pytest.mark.parametrize("value", ["2", "500m", "16Gi", "1.5", "128974848", "1e3"])
def test_quantities(value: str) -> None:
    assert check_quantity("--memory", value) == value


@pytest.mark.parametrize("value", ["", "lots", "16GB", "-1"])
def test_bad_quantities(value: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        check_quantity("--memory", value)


def test_capacity_always_has_slots_and_defaults_cpu_and_memory() -> None:
    capacity = build_capacity(slots=4, cpu=None, memory=None, gpu=None)
    assert capacity["slots"] == "4"
    assert int(capacity["cpu"]) >= 1
    assert capacity["memory"].endswith("Mi")
    assert "gpu" not in capacity
    assert build_capacity(slots=1, cpu="500m", memory="1Gi", gpu=2) == {
        "slots": "1",
        "cpu": "500m",
        "memory": "1Gi",
        "gpu": "2",
    }


def test_command_types_shell_only_when_allowed_plugins_included() -> None:
    assert command_types(plugins=["render"], allow_shell=False) == ("exec", "sleep", "echo", "noop", "render")
    assert "shell" in command_types(plugins=[], allow_shell=True)


def test_command_types_can_be_narrowed() -> None:
    assert command_types(plugins=["render"], allow_shell=False, restrict_to=["render", "noop"]) == (
        "noop",
        "render",
    )


def test_narrowing_to_something_unavailable_is_an_error() -> None:
    with pytest.raises(
        ValueError, match=r"not available on this node: shell \(shell also needs --allow-shell\)"
    ):
        command_types(plugins=[], allow_shell=False, restrict_to=["shell"])


def test_environment_is_scrubbed_to_the_passthrough_list() -> None:
    source = {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "LC_TIME": "x", "AWS_SECRET": "s", "LANG": "C"}
    assert scrubbed_environment(source, ("PATH", "HOME", "LC_*", "USER")) == {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_ALL": "C",
        "LC_TIME": "x",
    }


def test_work_dir_names_are_safe() -> None:
    assert work_dir_name("01JABC.7", 2) == "01JABC.7.2"
    assert work_dir_name("../../etc/x y", 1) == ".._.._etc_x_y.1"
