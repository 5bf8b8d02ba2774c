"""Job specs from dicts and YAML: the canonical proto form, the sugar, and precise errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from jobq import spec
from jobq.errors import InvalidArgument
from jobq.v1 import types_pb2

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _command(data: dict[str, Any]) -> dict[str, Any]:
    """The canonical dict of the first command of a one-task spec written with ``data``."""
    parsed = spec.job_spec_from_dict({"name": "j", "tasks": [{"commands": [data]}]})
    return json_format.MessageToDict(parsed.tasks[0].commands[0], preserving_proto_field_name=True)


def test_the_canonical_proto_json_form_parses_unchanged() -> None:
    data = {
        "name": "j",
        "priority": 5,
        "tasks": [{"name": "a", "commands": [{"type": "exec", "params": {"argv": ["echo", "hi"]}}]}],
        "depends_on": [{"job_id": "01J", "condition": "DEPENDENCY_CONDITION_AFTERANY"}],
    }
    parsed = spec.job_spec_from_dict(data)

    assert json_format.MessageToDict(parsed, preserving_proto_field_name=True) == data


@pytest.mark.parametrize(
    ("sugar", "canonical"),
    [
        ({"exec": ["echo", "hi"]}, {"type": "exec", "params": {"argv": ["echo", "hi"]}}),
        ({"exec": ["sleep", 5]}, {"type": "exec", "params": {"argv": ["sleep", "5"]}}),
        (
            {"exec": ["make"], "env": {"N": 4}, "cwd": "/src", "timeout_s": 60},
            {
                "type": "exec",
                "params": {"argv": ["make"], "env": {"N": "4"}, "cwd": "/src", "timeout_s": 60.0},
            },
        ),
        ({"shell": "ls | wc -l"}, {"type": "shell", "params": {"script": "ls | wc -l"}}),
        ({"sleep": 5}, {"type": "sleep", "params": {"seconds": 5.0}}),
        ({"echo": "hi"}, {"type": "echo", "params": {"message": "hi"}}),
        ({"noop": {}}, {"type": "noop", "params": {}}),
        ({"noop": None}, {"type": "noop", "params": {}}),
        ({"type": "blender", "params": {"frame": 3}}, {"type": "blender", "params": {"frame": 3.0}}),
    ],
)
def test_command_sugar_becomes_the_canonical_command(
    sugar: dict[str, Any], canonical: dict[str, Any]
) -> None:
    assert _command(sugar) == canonical


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"exe": ["ls"]},
            "tasks[0].commands[0]: unknown command type key 'exe' (expected one of exec, shell",
        ),
        ({"exec": ["ls"], "echo": "x"}, "tasks[0].commands[0]: one command per item, found exec and echo"),
        (
            {"exec": "ls -l"},
            "tasks[0].commands[0].exec: expected a non-empty list of strings (for a command line use shell:)",
        ),
        ({"exec": []}, "tasks[0].commands[0].exec: expected a non-empty list of strings"),
        ({"exec": ["ls", True]}, "tasks[0].commands[0].exec[1]: expected a string, got a boolean"),
        ({"exec": ["ls"], "script": "x"}, "tasks[0].commands[0]: unexpected key(s) script beside exec"),
        ({"sleep": "long"}, "tasks[0].commands[0].sleep: expected a non-negative number of seconds"),
        ({"noop": {"x": 1}}, "tasks[0].commands[0].noop: takes no parameters"),
        ("ls", "tasks[0].commands[0]: expected a mapping such as {exec: [argv…]}, got a string"),
        (
            {"type": "exec", "argv": ["ls"]},
            "tasks[0].commands[0].argv: unknown field (expected one of type, params)",
        ),
    ],
)
def test_command_mistakes_name_their_place(data: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        spec.job_spec_from_dict({"name": "j", "tasks": [{"commands": [data]}]})
    assert caught.value.message.startswith(message)


def test_errors_in_later_tasks_and_array_templates_name_the_index() -> None:
    ok = {"commands": [{"noop": {}}]}
    with pytest.raises(
        InvalidArgument, match=r"^INVALID_ARGUMENT: tasks\[2\]\.commands\[1\]: unknown command type key 'run'"
    ):
        spec.job_spec_from_dict({"tasks": [ok, ok, {"commands": [{"noop": {}}, {"run": "x"}]}]})
    with pytest.raises(
        InvalidArgument, match=r"^INVALID_ARGUMENT: array\.template\.commands\[0\]: unknown command type key"
    ):
        spec.job_spec_from_dict({"array": {"start": 1, "end": 2, "template": {"commands": [{"go": 1}]}}})


def test_unknown_fields_are_named_with_the_expected_ones() -> None:
    with pytest.raises(
        InvalidArgument,
        match=r"^INVALID_ARGUMENT: taks: unknown field \(expected one of name, queue, priority",
    ):
        spec.job_spec_from_dict({"taks": []})
    with pytest.raises(InvalidArgument, match=r"^INVALID_ARGUMENT: tasks\[0\]\.cmds: unknown field"):
        spec.job_spec_from_dict({"tasks": [{"cmds": []}]})


def test_wrong_value_types_are_invalid_arguments_naming_the_field() -> None:
    with pytest.raises(InvalidArgument, match="priority"):
        spec.job_spec_from_dict({"priority": "high"})
    with pytest.raises(
        InvalidArgument, match=r"^INVALID_ARGUMENT: resources\.gpu: expected a string, got a boolean"
    ):
        spec.job_spec_from_dict({"resources": {"gpu": True}})
    with pytest.raises(InvalidArgument, match=r"^INVALID_ARGUMENT: job spec: expected a mapping, got a list"):
        spec.job_spec_from_dict([])  # type: ignore[arg-type]


def test_numbers_in_string_maps_become_strings() -> None:
    parsed = spec.job_spec_from_dict({"resources": {"cpu": 2, "memory": "1Gi"}, "labels": {"shot": 42}})

    assert dict(parsed.resources) == {"cpu": "2", "memory": "1Gi"}
    assert dict(parsed.labels) == {"shot": "42"}


@pytest.mark.parametrize(
    ("item", "job_id", "condition"),
    [
        ("afterok:01JA", "01JA", types_pb2.DEPENDENCY_CONDITION_AFTEROK),
        ("afternotok:01JA", "01JA", types_pb2.DEPENDENCY_CONDITION_AFTERNOTOK),
        ("01JA", "01JA", types_pb2.DEPENDENCY_CONDITION_AFTEROK),
        ({"job_id": "01JA", "condition": "afterany"}, "01JA", types_pb2.DEPENDENCY_CONDITION_AFTERANY),
    ],
)
def test_dependencies_take_short_forms(item: Any, job_id: str, condition: int) -> None:
    parsed = spec.job_spec_from_dict({"depends_on": [item]})

    assert parsed.depends_on[0] == types_pb2.JobDependency(job_id=job_id, condition=condition)


def test_bad_dependencies_name_their_place() -> None:
    with pytest.raises(
        InvalidArgument,
        match=r"^INVALID_ARGUMENT: depends_on\[0\]: dependency 'afterwards:01J': unknown dependency",
    ):
        spec.job_spec_from_dict({"depends_on": ["afterwards:01J"]})
    with pytest.raises(
        InvalidArgument,
        match=r"^INVALID_ARGUMENT: depends_on\[0\]\.condition: unknown dependency condition 'soon'",
    ):
        spec.job_spec_from_dict({"depends_on": [{"job_id": "x", "condition": "soon"}]})
    with pytest.raises(InvalidArgument, match="expected CONDITION:JOBID"):
        spec.parse_dependency("afterok:")


def test_a_whole_job_document_is_accepted_for_its_spec() -> None:
    parsed = spec.job_spec_from_dict(
        {"id": "01J", "status": "JOB_STATUS_FAILED", "spec": {"name": "again", "priority": 3}}
    )

    assert parsed.name == "again"
    assert parsed.priority == 3


def test_yaml_text_and_files(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: y\ntasks:\n  - commands:\n      - exec: [true]\n")

    with pytest.raises(
        InvalidArgument,
        match=r"job.yaml: tasks\[0\]\.commands\[0\]\.exec\[0\]: expected a string, got a boolean",
    ):
        spec.load_job_spec(path)

    path.write_text("name: y\ntasks:\n  - commands:\n      - exec: ['true']\n")
    assert spec.load_job_spec(path).tasks[0].commands[0] == spec.exec_command(["true"])


def test_yaml_problems_are_invalid_arguments_naming_the_source(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"^INVALID_ARGUMENT: job\.yaml: not valid YAML"):
        spec.job_spec_from_yaml("name: [unclosed", source="job.yaml")
    with pytest.raises(InvalidArgument, match="expected one YAML document, found 2"):
        spec.job_spec_from_yaml("name: a\n---\nname: b\n")
    with pytest.raises(InvalidArgument, match="cannot read job spec"):
        spec.load_job_spec(tmp_path / "missing.yaml")


def test_helpers_build_the_documented_commands() -> None:
    cmd = spec.exec_command(["make", "-j4"], env={"CC": "clang"}, cwd="/src", timeout_s=30)

    assert json_format.MessageToDict(cmd) == {
        "type": "exec",
        "params": {"argv": ["make", "-j4"], "env": {"CC": "clang"}, "cwd": "/src", "timeout_s": 30.0},
    }
    assert spec.shell_command("ls").params["script"] == "ls"
    assert spec.sleep_command(2).params["seconds"] == 2
    assert spec.echo_command("hi").params["message"] == "hi"
    assert spec.noop_command() == types_pb2.Command(type="noop")
    task = spec.task_spec(spec.noop_command(), name="a", depends_on=["b"])
    assert (task.name, list(task.depends_on), len(task.commands)) == ("a", ["b"], 1)
    with pytest.raises(InvalidArgument, match="argv: must be a non-empty list"):
        spec.exec_command("ls -l")


def test_the_examples_parse() -> None:
    render = spec.load_job_spec(EXAMPLES / "render.yaml")
    array = spec.load_job_spec(EXAMPLES / "array.yaml")

    assert [t.name for t in render.tasks] == ["frame-1", "frame-2", "frame-3", "assemble"]
    assert list(render.tasks[3].depends_on) == ["frame-1", "frame-2", "frame-3"]
    assert render.tasks[0].commands[0].params["argv"][6] == "1"  # a bare YAML number became a string
    assert (array.array.start, array.array.end, array.array.step) == (1, 99, 2)
    assert array.array.template.commands[0].params["argv"][3] == "{index}"
