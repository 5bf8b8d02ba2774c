"""The small pure pieces: job arrays, task counters, task references, quantities, labels and
intra-job dependencies."""

from __future__ import annotations

import pytest

from jobqd.domain.errors import InvalidArgument, InvalidTransition
from jobqd.domain.graph import resolve_dependencies
from jobqd.domain.labels import label_key_problem, label_value_problem, queue_name_problem
from jobqd.domain.model import ArrayDef, CommandDef, Job, JobDef, TaskDef, parse_task_ref
from jobqd.domain.quantity import format_milli, parse_milli
from jobqd.domain.states import TaskStatus

T = TaskStatus

# -- job arrays ------------------------------------------------------------------------------------

ECHO = TaskDef(name="t-{index}", type="exec", commands=(CommandDef("echo", {"text": "{index}"}),))


@pytest.mark.parametrize(
    ("start", "end", "step", "indices"),
    [
        (0, 0, 1, [0]),
        (1, 5, 1, [1, 2, 3, 4, 5]),
        (1, 10, 3, [1, 4, 7, 10]),
        (0, 10, 4, [0, 4, 8]),  # end not on a step: the last index is 8
        (5, 5, 7, [5]),
        (-2, 2, 2, [-2, 0, 2]),
    ],
)
def test_array_positions_and_indices(start: int, end: int, step: int, indices: list[int]) -> None:
    a = ArrayDef(ECHO, start, end, step)
    assert a.count == len(indices)
    assert [a.index_of(p) for p in range(a.count)] == indices
    assert [a.pos_of(i) for i in indices] == list(range(a.count))
    strays = {start - step, start - 1, end + 1, end + step, indices[-1] + step} - set(indices)
    if step > 1:
        strays.add(start + 1)
    assert {i: a.pos_of(i) for i in strays} == dict.fromkeys(strays)


def test_a_million_task_array_round_trips_without_expanding() -> None:
    a = ArrayDef(ECHO, 1, 2_000_000 - 1, 2)
    assert a.count == 1_000_000
    for pos in (0, 1, 499_999, 999_999):
        assert a.pos_of(a.index_of(pos)) == pos
    assert a.index_of(999_999) == 1_999_999
    assert a.pos_of(2_000_001) is None


def test_index_is_substituted_in_nested_params_and_the_name() -> None:
    template = TaskDef(
        name="frame-{index}",
        type="render",
        commands=(
            CommandDef(
                "exec",
                {
                    "argv": ["render", "--frame={index}", "-o", "out/{index}/{index}.png"],
                    "env": {"FRAME": "{index}", "N": 3, "ON": True},
                    "steps": [{"args": ["{index}"], "none": None}],
                    "timeout_s": 60,
                },
            ),
            CommandDef("echo", {"text": "done {index}"}),
        ),
    )
    a = ArrayDef(template, 10, 30, 10)
    t = a.expand(1)
    assert (t.name, t.type) == ("frame-20", "render")
    assert t.commands[0] == CommandDef(
        "exec",
        {
            "argv": ["render", "--frame=20", "-o", "out/20/20.png"],
            "env": {"FRAME": "20", "N": 3, "ON": True},
            "steps": [{"args": ["20"], "none": None}],
            "timeout_s": 60,
        },
    )
    assert t.commands[1].params == {"text": "done 20"}
    # the template is shared by every task: expanding must not change it
    assert template.commands[0].params["argv"][1] == "--frame={index}"
    assert template.commands[0].params["steps"][0]["args"] == ["{index}"]


def test_an_unnamed_array_task_is_named_by_its_index() -> None:
    a = ArrayDef(TaskDef(name="", type="exec", commands=()), 3, 9, 3)
    assert [a.expand(p).name for p in range(a.count)] == ["3", "6", "9"]


def test_job_def_of_an_array() -> None:
    d = JobDef(name="arr", tasks=None, array=ArrayDef(ECHO, 0, 99, 3))
    assert d.task_count == 34
    assert (d.index_of(2), d.pos_of(6), d.pos_of(7)) == (6, 2, None)
    assert d.task_def(33).name == "t-99"
    assert d.task_types() == frozenset({"echo"})


# -- job counters ----------------------------------------------------------------------------------


def make_job(n: int = 5, *, array: bool = False) -> Job:
    if array:
        defn = JobDef(name="j", tasks=None, array=ArrayDef(ECHO, 0, n - 1))
    else:
        defn = JobDef(name="j", tasks=tuple(TaskDef(f"t{i}", "exec", ()) for i in range(n)))
    return Job(job_id="j-1", seq=1, defn=defn, owner="me", submit_ts=0.0)


def assert_consistent(job: Job) -> None:
    assert sum(job.counts.values()) == job.total
    for status in T:
        materialized = sum(1 for t in job.tasks.values() if t.status is status)
        rest = job.unmaterialized if job.rest_status is status else 0
        assert job.counts[status] == materialized + rest, status


def test_task_counters_follow_every_change() -> None:
    job = make_job(5)
    assert job.counts[T.QUEUED] == 5 and job.unmaterialized == 5
    steps = [
        (0, T.ACTIVE),
        (0, T.SOFT_FAILED),
        (0, T.ACTIVE),
        (0, T.COMPLETED),
        (1, T.ACTIVE),
        (1, T.FAILED),
        (2, T.CANCELED),
        (1, T.QUEUED),
        (3, T.PAUSED),
        (3, T.QUEUED),
        (3, T.ACTIVE),
        (3, T.QUEUED),  # interrupted
    ]
    for pos, new in steps:
        task = job.task(pos)
        old = task.status
        assert job.set_task_status(task, new, action="test") is old
        assert task.status is new
        assert_consistent(job)
    assert job.counts == {
        T.QUEUED: 3,  # 1, 3 and the unmaterialized 4
        T.ACTIVE: 0,
        T.COMPLETED: 1,
        T.SOFT_FAILED: 0,
        T.FAILED: 0,
        T.CANCELED: 1,
        T.PAUSED: 0,
    }
    assert job.active_tasks == 0


@pytest.mark.parametrize(
    ("start", "new"),
    [(T.QUEUED, T.COMPLETED), (T.QUEUED, T.FAILED), (T.COMPLETED, T.CANCELED), (T.PAUSED, T.ACTIVE)],
)
def test_an_illegal_task_change_raises_and_changes_nothing(start: TaskStatus, new: TaskStatus) -> None:
    job = make_job(3)
    task = job.task(1)
    path = {
        T.QUEUED: [],
        T.COMPLETED: [T.ACTIVE, T.COMPLETED],
        T.PAUSED: [T.PAUSED],
    }[start]
    for s in path:
        job.set_task_status(task, s, action="test")
    before = dict(job.counts)
    with pytest.raises(InvalidTransition) as err:
        job.set_task_status(task, new, action="finish")
    assert err.value.current == start.value
    assert f"task j-1.1: it is {start.value}" in str(err.value)
    assert task.status is start
    assert job.counts == before


def test_runnable_tasks_enter_the_ready_heap() -> None:
    job = make_job(3)
    for pos in (2, 0):
        t = job.task(pos)
        job.set_task_status(t, T.ACTIVE, action="test")
        job.set_task_status(t, T.SOFT_FAILED, action="test")
    assert sorted(job.ready) == [0, 2]


def test_rest_status_moves_every_unmaterialized_task_at_once() -> None:
    job = make_job(1_000_000, array=True)
    first = job.task(0)
    job.set_task_status(first, T.ACTIVE, action="dispatch")
    job.set_rest_status(T.PAUSED)
    assert (job.counts[T.PAUSED], job.counts[T.ACTIVE]) == (999_999, 1)
    assert_consistent(job)
    assert job.task(500_000).status is T.PAUSED  # materialized in the rest status
    assert job.status_of(999_999) is T.PAUSED
    job.set_rest_status(T.QUEUED)
    assert (job.counts[T.QUEUED], job.counts[T.PAUSED]) == (999_998, 1)
    assert_consistent(job)
    before = dict(job.counts)
    with pytest.raises(InvalidTransition, match="it is queued"):
        job.set_rest_status(T.COMPLETED)
    assert job.counts == before and job.rest_status is T.QUEUED


def test_rest_status_of_a_fully_materialized_job_moves_no_counter() -> None:
    job = make_job(2)
    for pos in range(2):
        job.task(pos)
    job.set_rest_status(T.CANCELED)
    assert job.counts[T.QUEUED] == 2 and job.counts[T.CANCELED] == 0


# -- task references -------------------------------------------------------------------------------


@pytest.mark.parametrize(("ref", "pos"), [("j-1.4", 2), ("4", 2), ("j-1.0", 0), ("j-1.18", 9)])
def test_parse_task_ref(ref: str, pos: int) -> None:
    job = Job(
        job_id="j-1",
        seq=1,
        defn=JobDef(name="a", tasks=None, array=ArrayDef(ECHO, 0, 18, 2)),
        owner="",
        submit_ts=0,
    )
    assert parse_task_ref(job, ref) == pos


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("j-1.5", "has no task with index 5"),  # between two steps
        ("j-1.20", "has no task with index 20"),
        ("j-1.-2", "has no task with index -2"),
        ("j-1.x", "is not <job id>.<index>"),
        ("j-1", "is not <job id>.<index>"),
        ("", "is not <job id>.<index>"),
    ],
)
def test_parse_task_ref_refuses(ref: str, problem: str) -> None:
    job = Job(
        job_id="j-1",
        seq=1,
        defn=JobDef(name="a", tasks=None, array=ArrayDef(ECHO, 0, 18, 2)),
        owner="",
        submit_ts=0,
    )
    with pytest.raises(InvalidArgument) as err:
        parse_task_ref(job, ref)
    assert err.value.field == "task_id"
    assert problem in str(err.value)


def test_parse_task_ref_of_explicit_tasks() -> None:
    job = make_job(3)
    assert parse_task_ref(job, "j-1.2") == 2
    with pytest.raises(InvalidArgument, match="no task with index 3"):
        parse_task_ref(job, "j-1.3")


# -- quantities ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "milli"),
    [
        ("2", 2000),
        ("500m", 500),
        ("1.5", 1500),
        ("0.5", 500),
        (".5", 500),
        ("0", 0),
        ("1k", 1_000_000),
        ("1M", 10**9),
        ("1Ki", 1024 * 1000),
        ("1Gi", 2**30 * 1000),
        ("1.5Gi", 3 * 2**29 * 1000),
        ("4G", 4 * 10**12),
        ("0.1m", 1),  # rounded up, as Kubernetes does
        ("1.0001", 1001),
        (" 2 ", 2000),
    ],
)
def test_parse_quantity(text: str, milli: int) -> None:
    assert parse_milli(text) == milli


@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "-1", "+1", "1.5.2", "2 cpu", "1 Gi", "1gi", "1GB", "Gi", "m", "1e3", "10Ei", "0x10"],
)
def test_parse_quantity_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"quantity|too large"):
        parse_milli(text)


@pytest.mark.parametrize(
    ("milli", "text"), [(2000, "2"), (500, "500m"), (1500, "1500m"), (0, "0"), (1, "1m"), (10**9, "1000000")]
)
def test_format_quantity(milli: int, text: str) -> None:
    assert format_milli(milli) == text
    assert parse_milli(text) == milli


# -- labels and names ------------------------------------------------------------------------------

LONG63 = "a" + "b" * 61 + "c"
DNS253 = ".".join(["a" * 63] * 3 + ["b" * 61])  # 63*3 + 61 + 3 dots = 253


@pytest.mark.parametrize(
    "key",
    [
        "app",
        "a",
        "A-b_c.d9",
        LONG63,
        "example.com/app",
        "k8s.io/x",
        "a-b.c-d/Name_1",
        f"{DNS253}/x",
        f"{'p' * 63}/{LONG63}",
    ],
)
def test_valid_label_keys(key: str) -> None:
    assert label_key_problem(key) is None


@pytest.mark.parametrize(
    ("key", "part"),
    [
        ("", "name"),
        ("-app", "name"),
        ("app-", "name"),
        ("_app", "name"),
        ("a b", "name"),
        ("a" * 64, "name"),
        ("é", "name"),
        ("app\n", "name"),  # `$` alone would match before a trailing newline
        ("example.com/", "name"),
        ("example.com/-x", "name"),
        (f"example.com/{'a' * 64}", "name"),
        ("/app", "prefix"),
        ("Example.com/app", "prefix"),
        ("ex_ample.com/app", "prefix"),
        ("-example.com/app", "prefix"),
        ("example..com/app", "prefix"),
        ("a/b/c", "prefix"),
        ("example.com\n/app", "prefix"),
        (f"{'p' * 64}/app", "prefix"),  # a DNS label is at most 63 characters
        (f"{DNS253}b/app", "prefix"),  # 254 characters
    ],
)
def test_invalid_label_keys(key: str, part: str) -> None:
    problem = label_key_problem(key)
    assert problem is not None
    assert f"the {part} must" in problem
    assert repr(key) in problem


@pytest.mark.parametrize("value", ["", "v1", "a", "A.b-c_d", LONG63, "0"])
def test_valid_label_values(value: str) -> None:
    assert label_value_problem(value) is None


@pytest.mark.parametrize("value", ["a" * 64, "-v", "v-", ".v", "a b", "a/b", "é", "v\n"])
def test_invalid_label_values(value: str) -> None:
    problem = label_value_problem(value)
    assert problem is not None and "at most 63 characters" in problem


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("default", True),
        ("gpu-2", True),
        ("a", True),
        ("q" * 63, True),
        ("q" * 64, False),
        ("Default", False),
        ("a_b", False),
        ("a.b", False),
        ("-a", False),
        ("a-", False),
        ("", False),
        ("default\n", False),
    ],
)
def test_queue_names_are_dns_labels(name: str, ok: bool) -> None:
    assert (queue_name_problem(name) is None) is ok


# -- intra-job dependencies ------------------------------------------------------------------------


def tasks(*spec: tuple[str, tuple[str, ...]]) -> list[TaskDef]:
    return [TaskDef(name, "exec", (), depends_on=deps) for name, deps in spec]


def test_a_dag_resolves_to_positions() -> None:
    got = resolve_dependencies(
        tasks(("fetch", ()), ("build", ("fetch",)), ("test", ("build", "fetch")), ("lint", ("fetch",)))
    )
    assert got == ((), (0,), (1, 0), (0,))


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        pytest.param(
            [("a", ()), ("b", ()), ("a", ())],
            "spec.tasks[2].name",
            "duplicate task name 'a' (also tasks[0])",
            id="dup",
        ),
        pytest.param(
            [("a", ()), ("b", ("a", "zzz"))],
            "spec.tasks[1].depends_on[1]",
            "no task named 'zzz'",
            id="unknown",
        ),
        pytest.param(
            [("a", ()), ("b", ("a", "b"))], "spec.tasks[1].depends_on[1]", "depends on itself", id="self"
        ),
        pytest.param(
            [("a", ("c",)), ("b", ("a",)), ("c", ("b",))], "spec.tasks[0].depends_on", "cycle", id="3-cycle"
        ),
    ],
)
def test_bad_dependencies_name_the_field(
    spec: list[tuple[str, tuple[str, ...]]], field: str, words: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        resolve_dependencies(tasks(*spec))
    assert err.value.field == field
    assert words in err.value.problem
    assert str(err.value).startswith(f"{field}: ")


def test_a_cycle_error_names_a_task_on_the_cycle_not_one_behind_it() -> None:
    # "d" only waits for the cycle b → c → e → b; the error must point into the cycle itself
    spec = tasks(("a", ()), ("d", ("b",)), ("b", ("e",)), ("c", ("b",)), ("e", ("c",)))
    with pytest.raises(InvalidArgument) as err:
        resolve_dependencies(spec)
    on_cycle = {2: "b", 3: "c", 4: "e"}
    pos = int(err.value.field.removeprefix("spec.tasks[").removesuffix("].depends_on"))
    assert pos in on_cycle
    assert f"cycle through task {on_cycle[pos]!r}" in err.value.problem


def test_the_field_prefix_is_the_callers() -> None:
    with pytest.raises(InvalidArgument) as err:
        resolve_dependencies(tasks(("a", ("nope",))), field="tasks")
    assert err.value.field == "tasks[0].depends_on[0]"


def test_a_huge_queue_name_is_refused_with_a_short_message_and_not_remembered() -> None:
    from jobqd.domain import labels

    before = labels._short_queue_name_problem.cache_info().currsize
    problem = labels.queue_name_problem("q" * 10_000_000)
    assert problem is not None and len(problem) < 200 and "not a valid queue name" in problem
    assert labels._short_queue_name_problem.cache_info().currsize == before
    assert labels.queue_name_problem("gpu-a") is None
    assert labels.queue_name_problem("Gpu") is not None
    assert labels.queue_name_problem("gpu\n") is not None
