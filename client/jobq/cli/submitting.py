"""``jobqctl submit``: a job from a command line, a job file, or a file with command-line overrides."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from jobq.cli.context import AppContext, output_option, pass_app
from jobq.cli.parsing import dependencies_option, key_values_option, range_option
from jobq.cli.rendering import emit_data
from jobq.cli.waiting import wait_for_job
from jobq.spec import exec_command, job_spec_from_yaml, load_job_spec, task_spec
from jobq.v1 import types_pb2

__all__ = ["build_submit_spec", "submit"]


def build_submit_spec(
    base: types_pb2.JobSpec | None,
    argv: Sequence[str],
    *,
    default_name: str,
    array: tuple[int, int, int] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    task_timeout: float | None = None,
    name: str | None = None,
    queue: str | None = None,
    priority: int | None = None,
    labels: Mapping[str, str] | None = None,
    resources: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    depends_on: Sequence[types_pb2.JobDependency] = (),
    max_attempts: int | None = None,
    parallelism: int | None = None,
) -> types_pb2.JobSpec:
    """The spec ``submit`` sends: the file's spec (if any), the inline command (if any), then the
    options, which win over the file (maps are merged key by key, dependencies appended)."""
    spec = types_pb2.JobSpec()
    if base is not None:
        spec.CopyFrom(base)
    if argv:
        if spec.tasks or spec.HasField("array"):
            raise click.UsageError(
                "the job file has tasks already: give a command after -- or a file, not both"
            )
        template = task_spec(exec_command(argv, env=env, cwd=cwd, timeout_s=task_timeout))
        if array is None:
            spec.tasks.append(template)
        else:
            spec.array.template.CopyFrom(template)
    else:
        if env or cwd or task_timeout is not None:
            raise click.UsageError("--env, --cwd and --task-timeout apply to a command given after --")
        if base is None:
            raise click.UsageError(
                "nothing to run: give a command (jobqctl submit -- echo hi) or a job file (-f job.yaml)"
            )
        if array is not None and not spec.HasField("array"):
            if len(spec.tasks) != 1:
                raise click.UsageError(
                    "--array needs a command, or a job file with one task (the template) or an array"
                )
            spec.array.template.CopyFrom(spec.tasks[0])
            del spec.tasks[:]
    if array is not None:
        spec.array.start, spec.array.end, spec.array.step = array
    if name:
        spec.name = name
    elif not spec.name:
        spec.name = default_name
    if queue:
        spec.queue = queue
    if priority is not None:
        spec.priority = priority
    spec.labels.update(labels or {})
    spec.resources.update(resources or {})
    spec.node_selector.update(node_selector or {})
    spec.depends_on.extend(depends_on)
    if max_attempts is not None:
        spec.failure_policy.max_attempts = max_attempts
    if parallelism is not None:
        spec.parallelism = parallelism
    return spec


def _read_spec(path: str) -> types_pb2.JobSpec:
    if path == "-":
        return job_spec_from_yaml(sys.stdin.read(), source="<stdin>")
    return load_job_spec(path)


@click.command("submit", context_settings={"allow_interspersed_args": False})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="[--] [COMMAND [ARG]...]")
@click.option(
    "-f",
    "--file",
    "spec_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Job file (YAML or JSON; - = stdin).",
)
@click.option("--name", help="Job name (default: the command's name, or the file's name).")
@click.option("--queue", "-q", help="Queue (default: the file's, else 'default').")
@click.option("--priority", "-p", type=int, help="Higher runs first and may preempt lower.")
@click.option(
    "--array",
    "array",
    callback=range_option,
    metavar="START-END[:STEP]",
    help="Job array: one task per index; {index} in the command is replaced.",
)
@click.option("--parallelism", type=click.IntRange(min=0), help="Max tasks running at once (0 = no limit).")
@click.option(
    "--label",
    "labels",
    multiple=True,
    callback=key_values_option,
    metavar="KEY=VALUE",
    help="Job label (repeatable).",
)
@click.option(
    "--resources",
    multiple=True,
    callback=key_values_option,
    metavar="cpu=2,memory=1Gi",
    help="Resources per task.",
)
@click.option(
    "--node-selector",
    multiple=True,
    callback=key_values_option,
    metavar="KEY=VALUE",
    help="Only nodes with these labels (repeatable).",
)
@click.option(
    "--depends-on",
    multiple=True,
    callback=dependencies_option,
    metavar="[afterok|afterany|afternotok:]JOBID",
    help="Start after another job (repeatable).",
)
@click.option(
    "--max-attempts", type=click.IntRange(min=1), help="Distinct nodes that may fail a task before it fails."
)
@click.option(
    "--env",
    multiple=True,
    callback=key_values_option,
    metavar="KEY=VALUE",
    help="Environment of the command.",
)
@click.option("--cwd", help="Working directory of the command on the node.")
@click.option(
    "--task-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Kill the command after this long (a failure).",
)
@click.option("--request-id", help="Idempotency key: resubmitting with the same id returns the first job.")
@click.option(
    "--wait", "wait", is_flag=True, help="Wait until the job finished; exit 1 if it failed or was canceled."
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="With --wait: seconds between checks.",
)
@output_option
@pass_app
def submit(
    app: AppContext,
    *,
    argv: tuple[str, ...],
    spec_file: str | None,
    name: str | None,
    queue: str | None,
    priority: int | None,
    array: tuple[int, int, int] | None,
    parallelism: int | None,
    labels: dict[str, str],
    resources: dict[str, str],
    node_selector: dict[str, str],
    depends_on: list[types_pb2.JobDependency],
    max_attempts: int | None,
    env: dict[str, str],
    cwd: str | None,
    task_timeout: float | None,
    request_id: str | None,
    wait: bool,
    interval: float,
) -> None:
    """Submit a job: a COMMAND run as one task (or one task per --array index), or a job file.

    \b
      jobqctl submit -- ./render.sh --frame 1
      jobqctl submit --array 1-100:2 --parallelism 10 -- ./render.sh --frame {index}
      jobqctl submit -f job.yaml --priority 10 --wait
    """
    base = _read_spec(spec_file) if spec_file else None
    if argv:
        default_name = Path(argv[0]).name
    elif spec_file and spec_file != "-":
        default_name = Path(spec_file).stem
    else:
        default_name = "job"
    spec = build_submit_spec(
        base,
        argv,
        default_name=default_name,
        array=array,
        env=env,
        cwd=cwd,
        task_timeout=task_timeout,
        name=name,
        queue=queue,
        priority=priority,
        labels=labels,
        resources=resources,
        node_selector=node_selector,
        depends_on=depends_on,
        max_attempts=max_attempts,
        parallelism=parallelism,
    )
    response = app.client.submit_job(spec, request_id=request_id)
    job = response.job
    if app.output == "table":
        again = "" if response.created else "; already submitted with this request id"
        click.echo(f"submitted job {job.id} ({job.total_tasks} tasks{again})")
    if wait:
        click.get_current_context().exit(wait_for_job(app, job.id, interval=interval))
    if app.output != "table":
        emit_data(app, job)
