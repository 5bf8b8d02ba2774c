"""Validated commands and tasks are cached by their wire bytes: a hit must give exactly what
validating again would, a task's default name must never leak to another position, and a task
that fails validation must fail again, naming its own field."""

from __future__ import annotations

import pytest
from google.protobuf.struct_pb2 import Struct
from jobq.v1 import types_pb2 as pb

from jobqd.api import validation
from jobqd.domain.errors import InvalidArgument


def task(*argv: str, name: str = "") -> pb.TaskSpec:
    params = Struct()
    params.update({"argv": list(argv)})
    return pb.TaskSpec(name=name, commands=[pb.Command(type="exec", params=params)])


def test_identical_tasks_keep_their_own_default_names_on_every_submit() -> None:
    spec = pb.JobSpec(name="j", tasks=[task("true")] * 3)
    first = validation.job_def(spec)
    again = validation.job_def(spec)
    assert first.tasks is not None and again.tasks is not None
    assert [t.name for t in first.tasks] == ["0", "1", "2"]
    assert again.tasks == first.tasks
    assert all(a is b for a, b in zip(again.tasks, first.tasks, strict=True))  # served from the cache
    named = validation.job_def(pb.JobSpec(name="j", tasks=[task("true", name="build"), task("true")]))
    assert named.tasks is not None and [t.name for t in named.tasks] == ["build", "1"]


def test_a_task_that_fails_fails_again_naming_its_own_position() -> None:
    bad = pb.TaskSpec(commands=[pb.Command(type="exec")])  # exec without argv
    for pos in (1, 2):
        tasks = [task("true")] * pos + [bad]
        with pytest.raises(InvalidArgument) as err:
            validation.job_def(pb.JobSpec(name="j", tasks=tasks))
        assert err.value.field == f"spec.tasks[{pos}].commands[0].params.argv"


def test_large_tasks_are_validated_every_time_not_kept() -> None:
    spec = pb.JobSpec(name="j", tasks=[task("echo", "x" * 20_000)])
    before = len(validation._TASK_CACHE), len(validation._COMMAND_CACHE)
    first = validation.job_def(spec)
    assert first.tasks is not None and first.tasks[0].commands[0].params["argv"][1] == "x" * 20_000
    assert (len(validation._TASK_CACHE), len(validation._COMMAND_CACHE)) == before
