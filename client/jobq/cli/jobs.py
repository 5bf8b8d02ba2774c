"""Job commands: ``jobs``, ``job``, ``cancel``, ``requeue``, ``pause``, ``resume``, ``priority``, ``delete``.

The bulk actions take job ids, or task ids (``JOB.INDEX``, for cancel and requeue), or filter
options; a filter must say something, so that a bare ``jobqctl cancel`` cannot cancel every job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from itertools import islice
from typing import Any, TypeVar

import click

from jobq.cli.context import AppContext, output_option, pass_app
from jobq.cli.parsing import EnumList, flatten, key_values_option
from jobq.cli.rendering import emit, emit_data
from jobq.cli.tables import job_detail, jobs_table, tasks_table
from jobq.sdk.messages import job_filter
from jobq.sdk.names import ADMISSION_PHASE, JOB_STATUS
from jobq.sdk.sync import Client
from jobq.v1 import job_service_pb2, types_pb2

__all__ = ["ACTIONS", "delete", "job", "job_filter_options", "jobs", "priority"]

F = TypeVar("F", bound=Callable[..., Any])

_FILTER_OPTIONS = ("statuses", "queues", "labels", "name_prefix", "owner", "admission")


def job_filter_options(f: F) -> F:
    """The options that select jobs by what they are rather than by id."""
    decorators = [
        click.option(
            "--status",
            "statuses",
            type=EnumList(JOB_STATUS),
            multiple=True,
            help="Job status (repeatable, or comma-separated).",
        ),
        click.option("--queue", "queues", multiple=True, help="Queue name (repeatable)."),
        click.option(
            "--label",
            "labels",
            multiple=True,
            callback=key_values_option,
            metavar="KEY=VALUE",
            help="Label that must match (repeatable).",
        ),
        click.option("--name-prefix", default="", help="Job name starts with this."),
        click.option("--owner", default="", help="Submitted by this user."),
        click.option(
            "--admission", type=EnumList(ADMISSION_PHASE), multiple=True, help="Admission phase (repeatable)."
        ),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def filter_from_options(options: dict[str, Any]) -> types_pb2.JobFilter | None:
    """The JobFilter the filter options describe, or None when none was given."""
    if not any(options[name] for name in _FILTER_OPTIONS):
        return None
    return job_filter(
        statuses=flatten(options["statuses"]),
        queues=options["queues"],
        labels=options["labels"],
        name_prefix=options["name_prefix"],
        owner=options["owner"],
        admission=flatten(options["admission"]),
    )


@click.command("jobs")
@job_filter_options
@click.option("--all", "include_archived", is_flag=True, help="Include archived (old finished) jobs.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=100, show_default=True, help="At most this many (0 = all)."
)
@output_option
@pass_app
def jobs(app: AppContext, /, include_archived: bool, limit: int, **filters: Any) -> None:
    """List jobs.

    \b
      jobqctl jobs --status queued,active --queue render
      jobqctl jobs --label project=x -o json
    """
    found = app.client.iter_jobs(
        filter=filter_from_options(filters),
        include_archived=include_archived,
        page_size=min(limit or 1000, 1000),
    )
    emit(app, list(islice(found, limit or None)), jobs_table)


@click.command("job")
@click.argument("job_id")
@click.option("--full", is_flag=True, help="Include the task list of the spec (large for big jobs).")
@output_option
@pass_app
def job(app: AppContext, job_id: str, full: bool) -> None:
    """Show one job."""
    emit(app, app.client.get_job(job_id, full=full), job_detail)


JobAction = Callable[
    [Client, list[str] | None, types_pb2.JobFilter | None, str], job_service_pb2.JobActionResponse
]
TaskAction = Callable[[Client, list[str], str], list[types_pb2.Task]]


def _action(
    name: str, done: str, job_action: JobAction, task_action: TaskAction | None, doc: str
) -> click.Command:
    @click.command(name, help=doc)
    @click.argument("ids", nargs=-1)
    @job_filter_options
    @click.option("--reason", default="", help="Recorded as the job's status reason.")
    @output_option
    @pass_app
    def command(app: AppContext, /, ids: tuple[str, ...], reason: str, **filters: Any) -> None:
        flt = filter_from_options(filters)
        if ids and flt is not None:
            raise click.UsageError("give ids or filter options, not both")
        if not ids and flt is None:
            raise click.UsageError(
                "give job ids, or filter options (--status, --queue, --label, …) to select jobs"
            )
        task_ids = [i for i in ids if "." in i]
        if task_ids:
            if task_action is None:
                raise click.UsageError(f"{name} applies to jobs; {task_ids[0]} is a task")
            if len(task_ids) != len(ids):
                raise click.UsageError("give job ids or task ids, not both")
            by_job: dict[str, list[str]] = defaultdict(list)
            for task_id in task_ids:
                by_job[task_id.rpartition(".")[0]].append(task_id)
            tasks = [t for group in by_job.values() for t in task_action(app.client, group, reason)]
            emit(app, tasks, tasks_table)
            return
        response = job_action(app.client, list(ids) or None, flt, reason)
        if app.output != "table":
            emit_data(app, response)
            return
        for changed in response.jobs:
            click.echo(f"job {changed.id} {JOB_STATUS.name(changed.status)}")
        if response.skipped:
            click.echo(f"skipped {response.skipped} matching job(s) that cannot be {done} in their status")
        if not response.jobs and not response.skipped:
            click.echo("no job matched")

    return command


ACTIONS = [
    _action(
        "cancel",
        "canceled",
        lambda c, ids, f, r: c.cancel_jobs(ids, filter=f, reason=r),
        lambda c, ids, r: c.cancel_tasks(ids, reason=r),
        "Cancel jobs (or tasks, given as JOB.INDEX); running tasks are stopped.\n\n"
        "\b\n  jobqctl cancel 01JABC 01JDEF\n  jobqctl cancel 01JABC.7\n"
        "  jobqctl cancel --status queued --queue render",
    ),
    _action(
        "requeue",
        "requeued",
        lambda c, ids, f, r: c.requeue_jobs(ids, filter=f, reason=r),
        lambda c, ids, r: c.requeue_tasks(ids, reason=r),
        "Requeue finished jobs (or tasks, given as JOB.INDEX).\n\n"
        "\b\n  jobqctl requeue 01JABC\n  jobqctl requeue --status failed --label project=x",
    ),
    _action(
        "pause",
        "paused",
        lambda c, ids, f, r: c.pause_jobs(ids, filter=f, reason=r),
        None,
        "Pause jobs: queued tasks wait, running tasks finish.\n\n"
        "\b\n  jobqctl pause 01JABC\n  jobqctl pause --queue render",
    ),
    _action(
        "resume",
        "resumed",
        lambda c, ids, f, r: c.resume_jobs(ids, filter=f, reason=r),
        None,
        "Resume paused jobs.\n\n\b\n  jobqctl resume 01JABC\n  jobqctl resume --status paused",
    ),
]


@click.command("priority")
@click.argument("job_id")
@click.argument("value", type=int, metavar="PRIORITY")
@output_option
@pass_app
def priority(app: AppContext, job_id: str, value: int) -> None:
    """Set a job's priority (a negative one after --: jobqctl priority ID -- -5)."""
    changed = app.client.set_job_priority(job_id, value)
    if app.output == "table":
        click.echo(f"job {changed.id} priority {changed.spec.priority}")
    else:
        emit_data(app, changed)


@click.command("delete")
@click.argument("job_ids", nargs=-1, required=True)
@pass_app
def delete(app: AppContext, job_ids: tuple[str, ...]) -> None:
    """Delete finished jobs (completed, failed, canceled) or drafts."""
    for job_id in job_ids:
        app.client.delete_job(job_id)
        if app.output == "table":
            click.echo(f"deleted job {job_id}")
