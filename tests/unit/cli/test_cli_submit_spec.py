"""What ``jobqctl submit`` sends: the file, the inline command and the options, merged."""

from __future__ import annotations

import click
import pytest
from jobq.cli.submitting import build_submit_spec
from jobq.spec import exec_command, job_spec_from_dict, task_spec
from jobq.v1 import types_pb2


def test_an_inline_command_is_one_exec_task_named_after_the_program() -> None:
    spec = build_submit_spec(
        None, ["./render.sh", "--frame", "1"], default_name="render.sh", env={"A": "1"}, cwd="/w"
    )

    assert spec.name == "render.sh"
    assert list(spec.tasks) == [
        task_spec(exec_command(["./render.sh", "--frame", "1"], env={"A": "1"}, cwd="/w"))
    ]


def test_an_inline_array_becomes_a_template() -> None:
    spec = build_submit_spec(None, ["r", "{index}"], default_name="r", array=(1, 100, 2), parallelism=10)

    assert not spec.tasks
    assert (spec.array.start, spec.array.end, spec.array.step, spec.parallelism) == (1, 100, 2, 10)
    assert spec.array.template == task_spec(exec_command(["r", "{index}"]))


def test_options_override_the_file_and_maps_merge() -> None:
    base = job_spec_from_dict(
        {
            "name": "from-file",
            "queue": "a",
            "priority": 1,
            "labels": {"project": "x", "shot": "1"},
            "resources": {"cpu": "1"},
            "depends_on": ["afterok:01JA"],
            "tasks": [{"commands": [{"noop": {}}]}],
        }
    )
    spec = build_submit_spec(
        base,
        [],
        default_name="job",
        name="renamed",
        queue="b",
        priority=-5,
        labels={"shot": "2"},
        resources={"memory": "1Gi"},
        node_selector={"gpu": "a100"},
        depends_on=[
            types_pb2.JobDependency(job_id="01JB", condition=types_pb2.DEPENDENCY_CONDITION_AFTERANY)
        ],
        max_attempts=5,
    )

    assert (spec.name, spec.queue, spec.priority) == ("renamed", "b", -5)
    assert dict(spec.labels) == {"project": "x", "shot": "2"}
    assert dict(spec.resources) == {"cpu": "1", "memory": "1Gi"}
    assert dict(spec.node_selector) == {"gpu": "a100"}
    assert [d.job_id for d in spec.depends_on] == ["01JA", "01JB"]
    assert spec.failure_policy.max_attempts == 5
    assert len(spec.tasks) == 1
    assert base.name == "from-file"  # the file's spec is not modified


def test_a_file_without_a_name_gets_the_default() -> None:
    spec = build_submit_spec(
        job_spec_from_dict({"tasks": [{"commands": [{"noop": {}}]}]}), [], default_name="render"
    )
    assert spec.name == "render"


def test_array_with_a_one_task_file_uses_that_task_as_template_and_overrides_an_array_range() -> None:
    one = job_spec_from_dict({"name": "j", "tasks": [{"commands": [{"exec": ["r", "{index}"]}]}]})
    spec = build_submit_spec(one, [], default_name="j", array=(1, 9, 1))
    assert (not spec.tasks, spec.array.template.commands[0].params["argv"][1]) == (True, "{index}")

    arr = job_spec_from_dict(
        {"name": "j", "array": {"start": 1, "end": 99, "template": {"commands": [{"noop": {}}]}}}
    )
    spec = build_submit_spec(arr, [], default_name="j", array=(1, 9, 1))
    assert (spec.array.start, spec.array.end) == (1, 9)


@pytest.mark.parametrize(
    ("base", "argv", "kwargs", "message"),
    [
        (None, [], {}, "nothing to run"),
        ({"tasks": [{"commands": [{"noop": {}}]}]}, ["ls"], {}, "has tasks already"),
        ({"tasks": [{"commands": [{"noop": {}}]}]}, [], {"cwd": "/x"}, "apply to a command given after --"),
        ({"tasks": [{"commands": [{"noop": {}}]}] * 2}, [], {"array": (1, 2, 1)}, "--array needs a command"),
    ],
)
def test_conflicting_inputs_are_usage_errors(
    base: dict[str, object] | None, argv: list[str], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(click.UsageError, match=message):
        build_submit_spec(job_spec_from_dict(base) if base else None, argv, default_name="j", **kwargs)  # type: ignore[arg-type]
