"""Queue commands: ``queues`` and ``queue show|create|update|delete|hold|release``.

In kueue mode queues are Kueue LocalQueues; jobqd then refuses the changing commands
(FAILED_PRECONDITION, exit 1).
"""

from __future__ import annotations

import click

from jobq.cli.context import AppContext, output_option, pass_app
from jobq.cli.parsing import parse_key_values
from jobq.cli.rendering import emit, emit_data
from jobq.cli.tables import queue_detail, queues_table
from jobq.sdk.names import PREEMPTION_POLICY, QUEUEING_STRATEGY
from jobq.v1 import types_pb2

__all__ = ["queue", "queues"]


def _quotas(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> dict[str, str] | None:
    # None when --quota was not given, so that `queue update` can keep the current quotas.
    return parse_key_values(value) if value else None


_quota = click.option(
    "--quota",
    "quotas",
    multiple=True,
    callback=_quotas,
    metavar="cpu=4,memory=8Gi",
    help="Per-resource quota (repeatable); a resource not listed is unlimited.",
)
_strategy = click.option(
    "--strategy", type=click.Choice(QUEUEING_STRATEGY.names()), help="Queueing strategy."
)
_preemption = click.option(
    "--preemption", type=click.Choice(PREEMPTION_POLICY.names()), help="Preemption policy."
)


def _show(app: AppContext, queue_: types_pb2.Queue, verb: str) -> None:
    if app.output == "table":
        click.echo(f"queue {queue_.name} {verb}")
    else:
        emit_data(app, queue_)


@click.command("queues")
@output_option
@pass_app
def queues(app: AppContext) -> None:
    """List queues with their usage."""
    emit(app, app.client.list_queues(), queues_table)


@click.group("queue")
def queue() -> None:
    """Show and manage one queue."""


@queue.command("show")
@click.argument("name")
@output_option
@pass_app
def show(app: AppContext, name: str) -> None:
    """Show a queue: jobqctl queue show render."""
    emit(app, app.client.get_queue(name), queue_detail)


@queue.command("create")
@click.argument("name")
@_quota
@_strategy
@_preemption
@output_option
@pass_app
def create(
    app: AppContext, name: str, quotas: dict[str, str] | None, strategy: str | None, preemption: str | None
) -> None:
    """Create a queue: jobqctl queue create render --quota cpu=64,memory=256Gi --preemption lower-priority."""
    created = app.client.create_queue(name, quotas=quotas, strategy=strategy, preemption=preemption)
    _show(app, created, "created")


@queue.command("update")
@click.argument("name")
@_quota
@_strategy
@_preemption
@output_option
@pass_app
def update(
    app: AppContext, name: str, quotas: dict[str, str] | None, strategy: str | None, preemption: str | None
) -> None:
    """Change a queue; what is not given stays. --quota replaces all quotas (--quota '' = unlimited)."""
    current = app.client.get_queue(name)
    updated = app.client.update_queue(
        name,
        quotas=current.quotas if quotas is None else quotas,
        strategy=strategy or current.strategy,
        preemption=preemption or current.preemption,
    )
    _show(app, updated, "updated")


@queue.command("delete")
@click.argument("name")
@pass_app
def delete(app: AppContext, name: str) -> None:
    """Delete a queue without unfinished jobs."""
    app.client.delete_queue(name)
    if app.output == "table":
        click.echo(f"queue {name} deleted")


@queue.command("hold")
@click.argument("name")
@click.option(
    "--drain", is_flag=True, help="Also evict admitted jobs (their tasks are interrupted, not failed)."
)
@output_option
@pass_app
def hold(app: AppContext, name: str, drain: bool) -> None:
    """Stop admitting jobs from a queue."""
    _show(app, app.client.hold_queue(name, drain=drain), "draining" if drain else "held")


@queue.command("release")
@click.argument("name")
@output_option
@pass_app
def release(app: AppContext, name: str) -> None:
    """Admit jobs from a held queue again."""
    _show(app, app.client.release_queue(name), "released")
