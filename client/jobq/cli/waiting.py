"""``jobqctl wait`` (and ``submit --wait``): a progress bar until the job is finished, then an exit
code that says how it ended (0 completed, 1 failed or canceled)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jobq.cli.context import AppContext, output_option, pass_app
from jobq.cli.exits import ExitCode
from jobq.cli.rendering import emit_data
from jobq.sdk.lifecycle import succeeded
from jobq.sdk.names import JOB_STATUS
from jobq.v1 import types_pb2

__all__ = ["wait", "wait_for_job"]


def _finished_tasks(job: types_pb2.Job) -> int:
    counts = job.task_counts
    return counts.completed + counts.failed + counts.canceled


def _outcome(job: types_pb2.Job) -> str:
    """``job 01J… failed: 7 of 10 tasks completed, 3 failed (3 of 10 tasks failed)``"""
    counts = job.task_counts
    text = (
        f"job {job.id} {JOB_STATUS.name(job.status)}: {counts.completed} of {job.total_tasks} tasks completed"
    )
    if counts.failed:
        text += f", {counts.failed} failed"
    if job.status_reason and not succeeded(job):
        text += f" ({job.status_reason})"
    return text


def wait_for_job(app: AppContext, job_id: str, *, interval: float) -> ExitCode:
    """Follow the job until it is finished, drawing progress on stderr when it is a terminal."""
    stderr = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=app.output != "table" or not stderr.is_terminal,
    )
    job = types_pb2.Job()
    with progress:
        bar = progress.add_task(job_id, total=None)
        for job in app.client.follow_job(job_id, poll_interval=interval):
            progress.update(
                bar,
                description=f"{job.id} {JOB_STATUS.name(job.status)}",
                total=job.total_tasks or None,
                completed=_finished_tasks(job),
            )
    if app.output == "table":
        click.echo(_outcome(job))
    else:
        emit_data(app, job)
    return ExitCode.OK if succeeded(job) else ExitCode.JOB_FAILED


@click.command("wait")
@click.argument("job_id")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between checks.",
)
@output_option
@pass_app
def wait(app: AppContext, job_id: str, interval: float) -> None:
    """Wait until a job is completed (exit 0), failed or canceled (exit 1)."""
    click.get_current_context().exit(wait_for_job(app, job_id, interval=interval))
