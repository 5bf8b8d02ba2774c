"""Bad input gets a precise status naming the field; the daemon keeps serving; nothing is stored."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import types_pb2 as pb

from tests.support.procs import Jobqd


def cmd(type_: str = "exec", **params: object) -> pb.Command:
    s = struct_pb2.Struct()
    s.update(params)
    return pb.Command(type=type_, params=s)


def job(**kw: object) -> pb.JobSpec:
    base: dict[str, object] = {"name": "j", "tasks": [pb.TaskSpec(commands=[cmd(argv=["true"])])]}
    base.update(kw)
    return pb.JobSpec(**base)  # type: ignore[arg-type]


CASES = [
    (
        "empty argv",
        job(tasks=[pb.TaskSpec(commands=[cmd(argv=[])])]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.tasks[0].commands[0].params.argv",
    ),
    (
        "missing argv",
        job(tasks=[pb.TaskSpec(commands=[cmd()])]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.tasks[0].commands[0].params.argv",
    ),
    ("unknown queue", job(queue="nope"), grpc.StatusCode.INVALID_ARGUMENT, "spec.queue"),
    ("negative parallelism", job(parallelism=-1), grpc.StatusCode.INVALID_ARGUMENT, "spec.parallelism"),
    ("invalid label key", job(labels={"bad key!": "v"}), grpc.StatusCode.INVALID_ARGUMENT, "spec.labels"),
    ("invalid label value", job(labels={"k": "x" * 64}), grpc.StatusCode.INVALID_ARGUMENT, "spec.labels"),
    ("10 MB name", job(name="n" * 10_000_000), grpc.StatusCode.INVALID_ARGUMENT, "spec.name"),
    ("no name", job(name=""), grpc.StatusCode.INVALID_ARGUMENT, "spec.name"),
    ("no tasks", pb.JobSpec(name="j"), grpc.StatusCode.INVALID_ARGUMENT, "spec.tasks"),
    ("no commands", job(tasks=[pb.TaskSpec()]), grpc.StatusCode.INVALID_ARGUMENT, "spec.tasks[0].commands"),
    (
        "unknown exec param",
        job(tasks=[pb.TaskSpec(commands=[cmd(argv=["x"], bogus=1)])]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "params.bogus",
    ),
    ("bad resource", job(resources={"cpu": "lots"}), grpc.StatusCode.INVALID_ARGUMENT, "spec.resources"),
    (
        "cyclic task dependencies",
        job(
            tasks=[
                pb.TaskSpec(name="a", depends_on=["c"], commands=[cmd(argv=["x"])]),
                pb.TaskSpec(name="b", depends_on=["a"], commands=[cmd(argv=["x"])]),
                pb.TaskSpec(name="c", depends_on=["b"], commands=[cmd(argv=["x"])]),
            ]
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "cycle",
    ),
    (
        "unknown task dependency",
        job(tasks=[pb.TaskSpec(name="a", depends_on=["zz"], commands=[cmd(argv=["x"])])]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "depends_on[0]",
    ),
    (
        "array and tasks",
        job(array=pb.ArraySpec(template=pb.TaskSpec(commands=[cmd(argv=["x"])]), start=0, end=1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.array",
    ),
    (
        "array end before start",
        pb.JobSpec(
            name="a", array=pb.ArraySpec(template=pb.TaskSpec(commands=[cmd(argv=["x"])]), start=5, end=1)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.array.end",
    ),
    (
        "huge array",
        pb.JobSpec(
            name="a",
            array=pb.ArraySpec(template=pb.TaskSpec(commands=[cmd(argv=["x"])]), start=0, end=10**12),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.array",
    ),
    (
        "unknown dependency job",
        job(depends_on=[pb.JobDependency(job_id="0000000000000", condition=pb.DEPENDENCY_CONDITION_AFTEROK)]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.depends_on[0].job_id",
    ),
    (
        "malformed dependency job id",
        job(depends_on=[pb.JobDependency(job_id="../etc", condition=pb.DEPENDENCY_CONDITION_AFTEROK)]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.depends_on[0].job_id",
    ),
    (
        "bad fail_fraction",
        job(failure_policy=pb.FailurePolicy(fail_fraction=2.0)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.failure_policy.fail_fraction",
    ),
    (
        "zero max_attempts",
        job(failure_policy=pb.FailurePolicy(max_attempts=0)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.failure_policy.max_attempts",
    ),
    (
        "negative sleep",
        job(tasks=[pb.TaskSpec(commands=[cmd("sleep", seconds=-1)])]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "params.seconds",
    ),
    (
        "bad command type",
        job(tasks=[pb.TaskSpec(commands=[cmd("Rm -rf")])]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "commands[0].type",
    ),
]


@pytest.mark.parametrize(("spec", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_submit_is_refused_precisely_and_stores_nothing(
    jobqd: Jobqd, spec: pb.JobSpec, code: grpc.StatusCode, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=spec))
    assert err.value.code() == code, err.value.details()
    assert field in err.value.details()
    assert not jobqd.jobs.ListJobs(js.ListJobsRequest()).jobs
    # still serving
    assert jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=job())).job.id


def test_unknown_ids_and_malformed_tokens(jobqd: Jobqd) -> None:
    calls = [
        (
            lambda: jobqd.jobs.GetJob(js.GetJobRequest(job_id="0000000000000")),
            grpc.StatusCode.NOT_FOUND,
            "0000000000000",
        ),
        (lambda: jobqd.jobs.GetJob(js.GetJobRequest(job_id="")), grpc.StatusCode.INVALID_ARGUMENT, "job_id"),
        (
            lambda: jobqd.jobs.GetJob(js.GetJobRequest(job_id="x" * 5000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "job_id",
        ),
        (
            lambda: jobqd.jobs.ListJobs(js.ListJobsRequest(page_token="garbage")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        ),
        (
            lambda: jobqd.jobs.ListJobs(js.ListJobsRequest(page_size=-5)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_size",
        ),
        (
            lambda: jobqd.jobs.CancelJobs(js.JobActionRequest(job_ids=["0000000000000"])),
            grpc.StatusCode.NOT_FOUND,
            "0000000000000",
        ),
        (lambda: jobqd.jobs.CancelJobs(js.JobActionRequest()), grpc.StatusCode.INVALID_ARGUMENT, "job_ids"),
        (
            lambda: jobqd.jobs.GetTask(js.GetTaskRequest(task_id="nonsense")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "task_id",
        ),
        (
            lambda: jobqd.jobs.GetTask(js.GetTaskRequest(task_id="0000000000000.1")),
            grpc.StatusCode.NOT_FOUND,
            "0000000000000",
        ),
        (
            lambda: jobqd.jobs.DeleteJob(js.DeleteJobRequest(job_id="0000000000000")),
            grpc.StatusCode.NOT_FOUND,
            "0000000000000",
        ),
    ]
    for call, code, text in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code, (text, err.value.details())
        assert text in err.value.details()
    j = jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=job())).job
    with pytest.raises(grpc.RpcError) as err:
        jobqd.jobs.GetTask(js.GetTaskRequest(task_id=f"{j.id}.99"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "99" in err.value.details()
