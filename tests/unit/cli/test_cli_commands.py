"""jobqctl as a user runs it, against a real gRPC server with canned replies."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner, Result
from jobq.cli.main import cli
from jobq.cli.rendering import message_to_dict
from jobq.sdk.names import JOB_STATUS
from jobq.v1 import job_service_pb2, node_service_pb2, queue_service_pb2, types_pb2

from tests.unit.sdk.fake_jobqd import Fail, FakeJobqd, Streams

pytestmark = pytest.mark.timeout(20)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run(jobqd: FakeJobqd, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["--server", jobqd.address, *args], env=env, input=stdin, catch_exceptions=False
    )


def _job(job_id: str = "01JA", status: int = types_pb2.JOB_STATUS_QUEUED, **kwargs: object) -> types_pb2.Job:
    return types_pb2.Job(id=job_id, status=status, **kwargs)  # type: ignore[arg-type]


def _submitted(jobqd: FakeJobqd, total: int = 1, created: bool = True) -> None:
    jobqd.replies["SubmitJob"] = job_service_pb2.SubmitJobResponse(
        job=_job(total_tasks=total), created=created
    )


def _get_job_sequence(jobqd: FakeJobqd, *statuses: int, reason: str = "") -> None:
    jobqd.replies["GetJob"] = [
        job_service_pb2.GetJobResponse(job=_job(status=s, total_tasks=2, status_reason=reason))
        for s in statuses
    ]


# --- submit ----------------------------------------------------------------------------------


def test_submit_an_inline_command_with_every_option(jobqd: FakeJobqd) -> None:
    _submitted(jobqd)

    result = run(
        jobqd, "submit", "--name", "hello", "--queue", "q", "--priority", "-5", "--label", "a=b",
        "--label", "c=d", "--resources", "cpu=2,memory=1Gi", "--node-selector", "gpu=yes",
        "--depends-on", "afterok:01JZ", "--max-attempts", "4", "--parallelism", "3", "--request-id", "r1",
        "--env", "X=1", "--", "echo", "-n", "hi",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "submitted job 01JA (1 tasks)\n"
    sent = jobqd.last("SubmitJob")
    assert sent.request_id == "r1"
    assert (sent.spec.name, sent.spec.queue, sent.spec.priority, sent.spec.parallelism) == (
        "hello",
        "q",
        -5,
        3,
    )
    assert dict(sent.spec.labels) == {"a": "b", "c": "d"}
    assert dict(sent.spec.resources) == {"cpu": "2", "memory": "1Gi"}
    assert dict(sent.spec.node_selector) == {"gpu": "yes"}
    assert sent.spec.depends_on[0] == types_pb2.JobDependency(
        job_id="01JZ", condition=types_pb2.DEPENDENCY_CONDITION_AFTEROK
    )
    assert sent.spec.failure_policy.max_attempts == 4
    command = message_to_dict(sent.spec.tasks[0].commands[0])
    assert command == {"type": "exec", "params": {"argv": ["echo", "-n", "hi"], "env": {"X": "1"}}}


def test_submit_without_double_dash_takes_everything_after_the_program_as_its_arguments(
    jobqd: FakeJobqd,
) -> None:
    _submitted(jobqd)

    result = run(jobqd, "submit", "--queue", "q", "ls", "-l", "--queue", "x")

    assert result.exit_code == 0, result.stderr
    sent = jobqd.last("SubmitJob").spec
    assert (sent.name, sent.queue) == ("ls", "q")
    assert list(sent.tasks[0].commands[0].params["argv"]) == ["ls", "-l", "--queue", "x"]


def test_submit_an_array(jobqd: FakeJobqd) -> None:
    _submitted(jobqd, total=50)

    result = run(jobqd, "submit", "--array", "1-100:2", "--", "render", "--frame", "{index}")

    assert result.stdout == "submitted job 01JA (50 tasks)\n"
    array = jobqd.last("SubmitJob").spec.array
    assert (array.start, array.end, array.step) == (1, 100, 2)
    assert list(array.template.commands[0].params["argv"]) == ["render", "--frame", "{index}"]


def test_submit_a_file_with_overrides_prints_the_job_as_json(jobqd: FakeJobqd) -> None:
    _submitted(jobqd, total=4)

    result = run(jobqd, "submit", "-f", str(EXAMPLES / "render.yaml"), "--priority", "9", "-o", "json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == message_to_dict(_job(total_tasks=4))
    sent = jobqd.last("SubmitJob").spec
    assert (sent.name, sent.priority, len(sent.tasks)) == ("shot-042-render", 9, 4)


def test_submit_a_file_from_stdin(jobqd: FakeJobqd) -> None:
    _submitted(jobqd)

    result = run(jobqd, "submit", "-f", "-", stdin="tasks:\n  - commands: [{sleep: 1}]\n")

    assert result.exit_code == 0, result.stderr
    assert jobqd.last("SubmitJob").spec.name == "job"


def test_a_resubmitted_request_id_says_so(jobqd: FakeJobqd) -> None:
    _submitted(jobqd, created=False)

    result = run(jobqd, "submit", "--request-id", "r1", "--", "true")

    assert result.stdout == "submitted job 01JA (1 tasks; already submitted with this request id)\n"


def test_a_bad_job_file_is_exit_2_naming_the_place(jobqd: FakeJobqd, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntasks:\n  - commands:\n      - {run: [ls]}\n")

    result = run(jobqd, "submit", "-f", str(bad))

    assert result.exit_code == 2
    assert result.stderr == (
        f"error: INVALID_ARGUMENT: {bad}: tasks[0].commands[0]: unknown command type key 'run' "
        "(expected one of exec, shell, sleep, echo, noop, or type and params)\n"
    )
    assert "SubmitJob" not in jobqd.requests


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit"], "nothing to run"),
        (
            ["submit", "--array", "9-1", "--", "x"],
            "Invalid value for '--array': '9-1': END must not be below START",
        ),
        (
            ["submit", "--resources", "cpu", "--", "x"],
            "Invalid value for '--resources': 'cpu': expected KEY=VALUE",
        ),
        (["submit", "--depends-on", "soon:01JA", "--", "x"], "unknown dependency condition 'soon'"),
    ],
)
def test_usage_errors_are_exit_2(jobqd: FakeJobqd, args: list[str], message: str) -> None:
    result = run(jobqd, *args)

    assert result.exit_code == 2
    assert message in result.stderr


def test_the_servers_invalid_argument_is_exit_2(jobqd: FakeJobqd) -> None:
    jobqd.replies["SubmitJob"] = Fail(
        grpc.StatusCode.INVALID_ARGUMENT, "spec.resources.cpu: not a quantity: 'lots'"
    )

    result = run(jobqd, "submit", "--resources", "cpu=lots", "--", "x")

    assert result.exit_code == 2
    assert result.stderr == "error: INVALID_ARGUMENT: spec.resources.cpu: not a quantity: 'lots'\n"


@pytest.mark.parametrize(
    ("final", "exit_code"),
    [
        (types_pb2.JOB_STATUS_COMPLETED, 0),
        (types_pb2.JOB_STATUS_FAILED, 1),
        (types_pb2.JOB_STATUS_CANCELED, 1),
    ],
)
def test_submit_and_wait_exits_with_how_the_job_ended(jobqd: FakeJobqd, final: int, exit_code: int) -> None:
    _submitted(jobqd, total=2)
    _get_job_sequence(
        jobqd, types_pb2.JOB_STATUS_QUEUED, types_pb2.JOB_STATUS_ACTIVE, final, reason="2 tasks failed"
    )

    result = run(jobqd, "submit", "--wait", "--interval", "0.05", "--", "x")

    assert result.exit_code == exit_code
    lines = result.stdout.splitlines()
    assert lines[0] == "submitted job 01JA (2 tasks)"
    assert lines[1].startswith(f"job 01JA {JOB_STATUS.name(final)}: 0 of 2 tasks completed")
    assert lines[1].endswith("(2 tasks failed)") == (exit_code == 1)
    assert len(jobqd.requests["GetJob"]) == 3


# --- jobs ------------------------------------------------------------------------------------


def test_jobs_sends_the_filters_and_prints_a_json_array(jobqd: FakeJobqd) -> None:
    jobqd.replies["ListJobs"] = job_service_pb2.ListJobsResponse(
        jobs=[_job("a"), _job("b")], next_page_token="more"
    )

    result = run(
        jobqd, "jobs", "--status", "queued,active", "--status", "paused", "--queue", "q",
        "--label", "p=x", "--name-prefix", "shot-", "--all", "--limit", "2", "-o", "json",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [message_to_dict(_job("a")), message_to_dict(_job("b"))]
    sent = jobqd.last("ListJobs")
    assert list(sent.filter.statuses) == [
        types_pb2.JOB_STATUS_QUEUED,
        types_pb2.JOB_STATUS_ACTIVE,
        types_pb2.JOB_STATUS_PAUSED,
    ]
    assert (list(sent.filter.queues), dict(sent.filter.labels), sent.filter.name_prefix) == (
        ["q"],
        {"p": "x"},
        "shot-",
    )
    assert sent.include_archived
    assert len(jobqd.requests["ListJobs"]) == 1  # the limit was reached on the first page


def test_jobs_table_and_an_unknown_status(jobqd: FakeJobqd) -> None:
    jobqd.replies["ListJobs"] = job_service_pb2.ListJobsResponse(
        jobs=[_job("01JA", types_pb2.JOB_STATUS_PAUSE_REQUESTED, spec=types_pb2.JobSpec(name="n"))]
    )

    assert "pause-requested" in run(jobqd, "jobs").stdout
    refused = run(jobqd, "jobs", "--status", "running")
    assert refused.exit_code == 2
    assert "unknown job status 'running'" in refused.stderr


def test_an_unknown_job_is_exit_1_with_the_servers_message(jobqd: FakeJobqd) -> None:
    jobqd.replies["GetJob"] = Fail(grpc.StatusCode.NOT_FOUND, "job 01JX not found")

    result = run(jobqd, "job", "01JX")

    assert result.exit_code == 1
    assert result.stderr == "error: NOT_FOUND: job 01JX not found\n"
    assert result.stdout == ""


def test_output_format_may_come_before_or_after_the_command_or_from_the_environment(jobqd: FakeJobqd) -> None:
    jobqd.replies["GetJob"] = job_service_pb2.GetJobResponse(job=_job())
    expected = message_to_dict(_job())

    assert json.loads(run(jobqd, "-o", "json", "job", "01JA").stdout) == expected
    assert json.loads(run(jobqd, "job", "01JA", "--output", "json").stdout) == expected
    assert json.loads(run(jobqd, "job", "01JA", env={"JOBQ_OUTPUT": "json"}).stdout) == expected
    assert run(jobqd, "job", "01JA", "-o", "yaml").stdout.startswith("id: 01JA\n")


def test_server_and_token_come_from_the_environment(jobqd: FakeJobqd) -> None:
    jobqd.replies["ListNodes"] = node_service_pb2.ListNodesResponse()
    _submitted(jobqd)

    result = CliRunner().invoke(cli, ["nodes"], env={"JOBQ_SERVER": jobqd.address, "JOBQ_TOKEN": "tok"})
    assert result.exit_code == 0, result.stderr
    assert jobqd.metadata["ListNodes"][-1]["authorization"] == "Bearer tok"

    run(
        jobqd, "submit", "--", "x", env={"JOBQ_SUBMIT_QUEUE": "from-env"}
    )  # a command's option: JOBQ_<CMD>_<OPT>
    assert jobqd.last("SubmitJob").spec.queue == "from-env"


def test_token_file_wins_over_the_environment_and_conflicts_with_token(
    jobqd: FakeJobqd, tmp_path: Path
) -> None:
    jobqd.replies["ListNodes"] = node_service_pb2.ListNodesResponse()
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    env = {"JOBQ_SERVER": jobqd.address, "JOBQ_TOKEN": "from-env"}

    result = CliRunner().invoke(cli, ["--token-file", str(token_file), "nodes"], env=env)
    assert result.exit_code == 0, result.stderr
    assert jobqd.metadata["ListNodes"][-1]["authorization"] == "Bearer from-file"

    result = CliRunner().invoke(cli, ["--token", "x", "--token-file", str(token_file), "nodes"], env=env)
    assert result.exit_code == 2
    assert "--token and --token-file: give one" in result.stderr

    token_file.write_text("  \n")
    result = CliRunner().invoke(cli, ["--token-file", str(token_file), "nodes"], env=env)
    assert result.exit_code == 2
    assert "the file is empty" in result.stderr

    result = CliRunner().invoke(cli, ["--token-file", str(tmp_path / "missing"), "nodes"], env=env)
    assert result.exit_code == 2
    assert "No such file or directory" in result.stderr


def test_an_unreachable_server_is_exit_3() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"

    result = CliRunner().invoke(cli, ["--server", address, "jobs"])

    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: cannot reach jobqd at {address} (")


# --- actions ---------------------------------------------------------------------------------


def test_cancel_by_ids(jobqd: FakeJobqd) -> None:
    jobqd.replies["CancelJobs"] = job_service_pb2.JobActionResponse(
        jobs=[_job("a", types_pb2.JOB_STATUS_CANCELED), _job("b", types_pb2.JOB_STATUS_CANCEL_REQUESTED)]
    )

    result = run(jobqd, "cancel", "a", "b", "--reason", "oops")

    assert result.stdout == "job a canceled\njob b cancel-requested\n"
    sent = jobqd.last("CancelJobs")
    assert (list(sent.job_ids), sent.reason, sent.HasField("filter")) == (["a", "b"], "oops", False)


def test_cancel_by_filter_reports_skipped_jobs(jobqd: FakeJobqd) -> None:
    jobqd.replies["CancelJobs"] = job_service_pb2.JobActionResponse(
        jobs=[_job("a", types_pb2.JOB_STATUS_CANCELED)], skipped=2
    )

    result = run(jobqd, "cancel", "--status", "queued", "--queue", "q")

    assert (
        result.stdout == "job a canceled\nskipped 2 matching job(s) that cannot be canceled in their status\n"
    )
    sent = jobqd.last("CancelJobs")
    assert (list(sent.job_ids), list(sent.filter.statuses), list(sent.filter.queues)) == (
        [],
        [types_pb2.JOB_STATUS_QUEUED],
        ["q"],
    )


def test_cancel_prints_the_api_response_as_json(jobqd: FakeJobqd) -> None:
    response = job_service_pb2.JobActionResponse(jobs=[_job("a")], skipped=1)
    jobqd.replies["CancelJobs"] = response

    assert json.loads(run(jobqd, "cancel", "a", "-o", "json").stdout) == message_to_dict(response)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cancel"], "give job ids, or filter options"),
        (["cancel", "a", "--queue", "q"], "give ids or filter options, not both"),
        (["cancel", "a", "a.1"], "give job ids or task ids, not both"),
        (["pause", "a.1"], "pause applies to jobs; a.1 is a task"),
    ],
)
def test_bulk_actions_refuse_ambiguous_selections(jobqd: FakeJobqd, args: list[str], message: str) -> None:
    result = run(jobqd, *args)

    assert result.exit_code == 2
    assert message in result.stderr
    assert not jobqd.requests


def test_task_ids_act_on_tasks_one_call_per_job(jobqd: FakeJobqd) -> None:
    jobqd.replies["RequeueTasks"] = lambda req: job_service_pb2.TaskActionResponse(
        tasks=[types_pb2.Task(id=t, status=types_pb2.TASK_STATUS_QUEUED) for t in req.task_ids]
    )

    result = run(jobqd, "requeue", "a.1", "b.2", "a.3", "-o", "json")

    assert [t["id"] for t in json.loads(result.stdout)] == ["a.1", "a.3", "b.2"]
    assert [list(r.task_ids) for r in jobqd.requests["RequeueTasks"]] == [["a.1", "a.3"], ["b.2"]]


def test_an_illegal_transition_prints_the_servers_reason_and_exits_1(jobqd: FakeJobqd) -> None:
    jobqd.replies["RequeueJobs"] = Fail(
        grpc.StatusCode.FAILED_PRECONDITION, "job 01JA is queued; requeue needs completed, failed or canceled"
    )

    result = run(jobqd, "requeue", "01JA")

    assert result.exit_code == 1
    assert result.stderr == (
        "error: FAILED_PRECONDITION: job 01JA is queued; requeue needs completed, failed or canceled\n"
    )


def test_pause_resume_priority_delete(jobqd: FakeJobqd) -> None:
    jobqd.replies["PauseJobs"] = job_service_pb2.JobActionResponse(
        jobs=[_job("a", types_pb2.JOB_STATUS_PAUSED)]
    )
    jobqd.replies["ResumeJobs"] = job_service_pb2.JobActionResponse()
    jobqd.replies["SetJobPriority"] = job_service_pb2.SetJobPriorityResponse(
        job=_job("a", spec=types_pb2.JobSpec(priority=-5))
    )
    jobqd.replies["DeleteJob"] = job_service_pb2.DeleteJobResponse()

    assert run(jobqd, "pause", "a").stdout == "job a paused\n"
    assert run(jobqd, "resume", "--status", "paused").stdout == "no job matched\n"
    assert run(jobqd, "priority", "a", "--", "-5").stdout == "job a priority -5\n"
    assert jobqd.last("SetJobPriority").priority == -5
    assert run(jobqd, "delete", "a", "b").stdout == "deleted job a\ndeleted job b\n"
    assert [r.job_id for r in jobqd.requests["DeleteJob"]] == ["a", "b"]


# --- wait, tasks, logs, watch ----------------------------------------------------------------


def test_wait_prints_the_final_job(jobqd: FakeJobqd) -> None:
    _get_job_sequence(jobqd, types_pb2.JOB_STATUS_ACTIVE, types_pb2.JOB_STATUS_COMPLETED)

    done = run(jobqd, "wait", "01JA", "--interval", "0.05", "-o", "json")

    assert done.exit_code == 0
    assert json.loads(done.stdout)["status"] == "JOB_STATUS_COMPLETED"


def test_tasks_and_task_by_id_or_index(jobqd: FakeJobqd) -> None:
    task = types_pb2.Task(id="01JA.3", job_id="01JA", index=3, status=types_pb2.TASK_STATUS_SOFT_FAILED)
    jobqd.replies["ListTasks"] = job_service_pb2.ListTasksResponse(tasks=[task])
    jobqd.replies["GetTask"] = job_service_pb2.GetTaskResponse(task=task)

    listed = run(jobqd, "tasks", "01JA", "--status", "soft-failed,failed")
    assert "soft-failed" in listed.stdout
    assert list(jobqd.last("ListTasks").statuses) == [
        types_pb2.TASK_STATUS_SOFT_FAILED,
        types_pb2.TASK_STATUS_FAILED,
    ]

    for args in (["01JA", "3"], ["01JA.3"], ["01JA", "01JA.3"]):
        assert run(jobqd, "task", *args).exit_code == 0
        assert jobqd.last("GetTask").task_id == "01JA.3"
    assert run(jobqd, "task", "01JA").exit_code == 2


def test_logs_of_a_one_task_job(jobqd: FakeJobqd) -> None:
    jobqd.replies["ListTasks"] = job_service_pb2.ListTasksResponse(tasks=[types_pb2.Task(id="01JA.0")])
    jobqd.replies["TailTaskLog"] = [
        job_service_pb2.TailTaskLogResponse(attempt=1, lines=["one", "two"]),
        job_service_pb2.TailTaskLogResponse(attempt=1, lines=[]),
        job_service_pb2.TailTaskLogResponse(attempt=1, lines=["three"]),
    ]

    result = run(jobqd, "logs", "01JA")

    assert result.stdout == "one\ntwo\nthree\n"
    assert jobqd.last("TailTaskLog") == job_service_pb2.TailTaskLogRequest(task_id="01JA.0", lines=100)


def test_logs_of_a_named_task_with_options(jobqd: FakeJobqd) -> None:
    jobqd.replies["TailTaskLog"] = [job_service_pb2.TailTaskLogResponse(attempt=2, lines=["x"])]

    result = run(jobqd, "logs", "01JA", "4", "-f", "--attempt", "2", "--lines", "0", "-o", "json")

    assert json.loads(result.stdout) == {"attempt": 2, "lines": ["x"]}
    assert jobqd.last("TailTaskLog") == job_service_pb2.TailTaskLogRequest(
        task_id="01JA.4", attempt=2, lines=0, follow=True
    )


def test_logs_of_a_job_with_several_tasks_asks_which(jobqd: FakeJobqd) -> None:
    jobqd.replies["ListTasks"] = job_service_pb2.ListTasksResponse(
        tasks=[types_pb2.Task(id="01JA.0"), types_pb2.Task(id="01JA.1")], next_page_token="x"
    )

    result = run(jobqd, "logs", "01JA")

    assert result.exit_code == 2
    assert "job 01JA has several tasks; name one: jobqctl logs 01JA INDEX" in result.stderr


def _events(*sequences: int) -> list[job_service_pb2.WatchEventsResponse]:
    return [
        job_service_pb2.WatchEventsResponse(
            event=types_pb2.Event(
                sequence=s,
                type=types_pb2.EVENT_TYPE_JOB_STATUS_CHANGED,
                job_id="01JA",
                job_status=types_pb2.JOB_STATUS_ACTIVE,
            )
        )
        for s in sequences
    ]


def test_watch_prints_one_json_object_per_line(jobqd: FakeJobqd) -> None:
    jobqd.replies["WatchEvents"] = _events(7, 8)

    result = run(
        jobqd, "watch", "--after", "6", "--job", "01JA", "--type", "job-status-changed", "-o", "json"
    )

    assert result.exit_code == 0
    assert [json.loads(line)["sequence"] for line in result.stdout.splitlines()] == ["7", "8"]
    sent = jobqd.last("WatchEvents")
    assert (sent.after_sequence, list(sent.job_ids), list(sent.types)) == (
        6,
        ["01JA"],
        [types_pb2.EVENT_TYPE_JOB_STATUS_CHANGED],
    )


def test_watch_lines_and_a_lost_connection(jobqd: FakeJobqd) -> None:
    jobqd.replies["WatchEvents"] = [*_events(1), Fail(grpc.StatusCode.UNAVAILABLE, "server shutting down")]

    result = run(jobqd, "watch")

    assert result.exit_code == 3
    assert result.stdout.split()[2:] == ["job-status-changed", "job=01JA", "status=active"]
    assert "server shutting down" in result.stderr
    assert jobqd.last("WatchEvents").after_sequence == -1


def test_watch_reconnects_when_asked(jobqd: FakeJobqd) -> None:
    jobqd.replies["WatchEvents"] = Streams(
        [
            [*_events(1), Fail(grpc.StatusCode.UNAVAILABLE, "restart")],
            [*_events(2), Fail(grpc.StatusCode.PERMISSION_DENIED, "no")],
        ]
    )

    result = run(jobqd, "watch", "--reconnect", "-o", "json")

    assert result.exit_code == 1
    assert [json.loads(line)["sequence"] for line in result.stdout.splitlines()] == ["1", "2"]
    assert "reconnecting in" in result.stderr
    assert [r.after_sequence for r in jobqd.requests["WatchEvents"]] == [-1, 1]


# --- queues and nodes ------------------------------------------------------------------------


def test_queues_and_queue_commands(jobqd: FakeJobqd) -> None:
    current = types_pb2.Queue(
        name="render",
        quotas={"cpu": "4"},
        strategy=types_pb2.QUEUEING_STRATEGY_STRICT_FIFO,
        preemption=types_pb2.PREEMPTION_POLICY_NEVER,
        state=types_pb2.QUEUE_STATE_HELD,
    )
    jobqd.replies["ListQueues"] = queue_service_pb2.ListQueuesResponse(queues=[current])
    jobqd.replies["GetQueue"] = queue_service_pb2.GetQueueResponse(queue=current)
    jobqd.replies["CreateQueue"] = lambda req: queue_service_pb2.CreateQueueResponse(queue=req.queue)
    jobqd.replies["UpdateQueue"] = lambda req: queue_service_pb2.UpdateQueueResponse(queue=req.queue)
    jobqd.replies["HoldQueue"] = queue_service_pb2.HoldQueueResponse(queue=current)
    jobqd.replies["ReleaseQueue"] = queue_service_pb2.ReleaseQueueResponse(queue=current)
    jobqd.replies["DeleteQueue"] = queue_service_pb2.DeleteQueueResponse()

    table = run(jobqd, "queues").stdout
    for shown in ("render", "held", "strict-fifo", "cpu=4", "0 pending, 0 admitted"):
        assert shown in table

    created = run(
        jobqd, "queue", "create", "gpu", "--quota", "cpu=8,memory=32Gi", "--strategy", "best-effort-fifo",
        "--preemption", "lower-priority",
    )  # fmt: skip
    assert created.stdout == "queue gpu created\n"
    assert jobqd.last("CreateQueue").queue == types_pb2.Queue(
        name="gpu",
        quotas={"cpu": "8", "memory": "32Gi"},
        strategy=types_pb2.QUEUEING_STRATEGY_BEST_EFFORT_FIFO,
        preemption=types_pb2.PREEMPTION_POLICY_LOWER_PRIORITY,
    )

    run(jobqd, "queue", "update", "render", "--preemption", "lower-priority")
    kept = jobqd.last("UpdateQueue").queue
    assert (dict(kept.quotas), kept.strategy, kept.preemption) == (
        {"cpu": "4"},
        types_pb2.QUEUEING_STRATEGY_STRICT_FIFO,
        types_pb2.PREEMPTION_POLICY_LOWER_PRIORITY,
    )
    run(jobqd, "queue", "update", "render", "--quota", "")
    assert dict(jobqd.last("UpdateQueue").queue.quotas) == {}

    assert run(jobqd, "queue", "hold", "render", "--drain").stdout == "queue render draining\n"
    assert jobqd.last("HoldQueue").drain
    assert run(jobqd, "queue", "release", "render").stdout == "queue render released\n"
    assert run(jobqd, "queue", "delete", "render").stdout == "queue render deleted\n"
    assert json.loads(run(jobqd, "queue", "show", "render", "-o", "json").stdout) == message_to_dict(current)


def test_queue_changes_in_kueue_mode_are_refused(jobqd: FakeJobqd) -> None:
    jobqd.replies["CreateQueue"] = Fail(
        grpc.StatusCode.FAILED_PRECONDITION, "queues are Kueue LocalQueues in kueue mode"
    )

    result = run(jobqd, "queue", "create", "x")

    assert result.exit_code == 1
    assert result.stderr == "error: FAILED_PRECONDITION: queues are Kueue LocalQueues in kueue mode\n"


def test_nodes_node_and_blocklist(jobqd: FakeJobqd) -> None:
    node = types_pb2.Node(
        name="n1", state=types_pb2.NODE_STATE_DRAINING, capacity={"cpu": "8"}, task_types=["exec"]
    )
    jobqd.replies["ListNodes"] = node_service_pb2.ListNodesResponse(nodes=[node])
    jobqd.replies["GetNode"] = node_service_pb2.GetNodeResponse(node=node)
    jobqd.replies["DrainNode"] = node_service_pb2.DrainNodeResponse(node=node)
    jobqd.replies["ResumeNode"] = node_service_pb2.ResumeNodeResponse(
        node=types_pb2.Node(name="n1", state=types_pb2.NODE_STATE_ONLINE)
    )
    jobqd.replies["ClearBlocklist"] = node_service_pb2.ClearBlocklistResponse(cleared=3)

    table = run(jobqd, "nodes").stdout
    for shown in ("n1", "draining", "cpu=8"):
        assert shown in table
    assert "draining" in run(jobqd, "node", "show", "n1").stdout
    assert run(jobqd, "node", "drain", "n1", "--stop").stdout == "node n1 draining\n"
    assert jobqd.last("DrainNode").stop
    assert run(jobqd, "node", "resume", "n1").stdout == "node n1 online\n"
    assert (
        run(jobqd, "blocklist", "clear", "--job", "01JA", "--type", "render").stdout
        == "cleared 3 blocklist entries\n"
    )
    sent = jobqd.last("ClearBlocklist")
    assert (sent.job_id, sent.node, sent.task_type) == ("01JA", "", "render")
    assert json.loads(run(jobqd, "blocklist", "clear", "-o", "json").stdout) == {"cleared": "3"}


def test_shell_completion_scripts() -> None:
    for shell in ("bash", "zsh", "fish"):
        result = CliRunner().invoke(cli, ["completion", shell])
        assert result.exit_code == 0
        assert "_JOBQCTL_COMPLETE" in result.stdout
