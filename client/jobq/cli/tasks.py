"""Task commands: ``tasks``, ``task`` and ``logs``. A task is given as its id (``JOB.INDEX``) or as
``JOB INDEX``."""

from __future__ import annotations

import sys
from itertools import islice

import click

from jobq.cli.context import AppContext, output_option, pass_app
from jobq.cli.parsing import EnumList, flatten, resolve_task_id
from jobq.cli.rendering import emit, emit_stream_item
from jobq.cli.tables import task_detail, tasks_table
from jobq.sdk.names import TASK_STATUS

__all__ = ["logs", "task", "tasks"]


@click.command("tasks")
@click.argument("job_id")
@click.option(
    "--status",
    "statuses",
    type=EnumList(TASK_STATUS),
    multiple=True,
    help="Task status (repeatable, or comma-separated).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="At most this many (0 = all).",
)
@output_option
@pass_app
def tasks(app: AppContext, job_id: str, statuses: tuple[list[int], ...], limit: int) -> None:
    """List a job's tasks.

    \b
      jobqctl tasks 01JABC --status failed,soft-failed
    """
    found = app.client.iter_tasks(job_id, statuses=flatten(statuses), page_size=min(limit or 1000, 1000))
    emit(app, list(islice(found, limit or None)), tasks_table)


@click.command("task")
@click.argument("task_ref", metavar="TASK_ID | JOB INDEX")
@click.argument("index", required=False)
@output_option
@pass_app
def task(app: AppContext, task_ref: str, index: str | None) -> None:
    """Show one task: jobqctl task 01JABC.3, or jobqctl task 01JABC 3."""
    emit(app, app.client.get_task(resolve_task_id(task_ref, index)), task_detail)


def _task_of(app: AppContext, job_ref: str, index: str | None) -> str:
    """The task ``logs`` means; the job alone is enough when it has exactly one task."""
    if index is not None or "." in job_ref:
        return resolve_task_id(job_ref, index)
    page = app.client.list_tasks(job_ref, page_size=2)
    if len(page.tasks) == 1 and not page.next_page_token:
        return page.tasks[0].id
    if not page.tasks:
        raise click.UsageError(f"job {job_ref} has no tasks yet")
    raise click.UsageError(f"job {job_ref} has several tasks; name one: jobqctl logs {job_ref} INDEX")


@click.command("logs")
@click.argument("job_ref", metavar="JOB | TASK_ID")
@click.argument("index", required=False, metavar="[INDEX]")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the attempt ends.")
@click.option(
    "--attempt", type=click.IntRange(min=0), default=0, help="Attempt number (default: the latest)."
)
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Last N lines (0 = all kept).",
)
@output_option
@pass_app
def logs(app: AppContext, *, job_ref: str, index: str | None, follow: bool, attempt: int, lines: int) -> None:
    """Print a task's log.

    \b
      jobqctl logs 01JABC 3 -f
      jobqctl logs 01JABC.3 --attempt 1 --lines 0
    """
    task_id = _task_of(app, job_ref, index)
    for chunk in app.client.tail_task_log(task_id, attempt=attempt, lines=lines, follow=follow):
        if app.output != "table":
            emit_stream_item(app, chunk, str)
            continue
        for line in chunk.lines:
            click.echo(line)
        sys.stdout.flush()
