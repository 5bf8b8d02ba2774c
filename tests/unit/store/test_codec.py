"""The SQLite text form of job definitions: what is written reads back equal, whichever JSON
reader takes it."""

from __future__ import annotations

import json

from jobqd import fastjson
from jobqd.domain.model import (
    ArrayDef,
    CommandDef,
    Dependency,
    DependencyCondition,
    FailurePolicy,
    JobDef,
    TaskDef,
)
from jobqd.store import codec

EXEC = (CommandDef("exec", {"argv": ["render", "--frame", "{index}"], "timeout_s": 30, "scale": 0.5}),)


def test_a_job_with_tasks_reads_back_equal() -> None:
    tasks = (TaskDef("a", "render", EXEC), TaskDef("b", "render", EXEC, ("a",)))
    d = JobDef(
        name="shot-010 ✓",
        queue="gpu",
        priority=-3,
        labels={"team": "fx"},
        tasks=tasks,
        resources={"cpu": 2500, "memory": 2**33 * 1000},
        resources_text={"cpu": "2500m", "memory": "8Gi"},
        node_selector={"gpu": "a100"},
        parallelism=4,
        policy=FailurePolicy(5, 2, 0.25, 3, (75,), (1, 2)),
        depends_on=(Dependency("1m8abc", DependencyCondition.AFTEROK),),
        priority_class="high",
    )
    assert codec.load_defn(codec.dump_defn(d), [codec.dump_tasks(tasks)]) == d


def test_an_array_reads_back_equal() -> None:
    d = JobDef(name="arr", tasks=None, array=ArrayDef(TaskDef("", "exec", EXEC), 1, 100_000, 7))
    assert codec.load_defn(codec.dump_defn(d), []) == d


def test_what_the_fast_reader_refuses_is_read_by_json() -> None:
    # never written by jobqd, but a stored document must never become unreadable
    weird = json.dumps([["t", "exec", [["exec", {"argv": ["x"], "big": 1e400, "s": "\ud800"}]], []]])
    [task] = [codec._task_from(v) for v in fastjson.loads(weird)]
    assert task.commands[0].params["big"] == float("inf")
    assert task.commands[0].params["s"] == "\ud800"
