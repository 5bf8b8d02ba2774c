"""``jobqctl watch``: stream state-change events as lines (or JSON objects, one per line)."""

from __future__ import annotations

import click

from jobq.cli.context import AppContext, output_option, pass_app
from jobq.cli.parsing import EnumList, flatten
from jobq.cli.rendering import emit_stream_item
from jobq.cli.tables import event_line
from jobq.errors import JobqError
from jobq.sdk.names import EVENT_TYPE

__all__ = ["watch"]


def _say_reconnecting(error: JobqError | None, delay: float) -> None:
    cause = str(error) if error is not None else "stream ended"
    click.echo(f"watch: connection lost ({cause}); reconnecting in {delay:.1f}s", err=True)


@click.command("watch")
@click.option(
    "--after",
    type=click.IntRange(min=-1),
    default=-1,
    show_default=True,
    help="Replay events after this sequence number (0 = all retained history, -1 = only new events).",
)
@click.option("--job", "job_ids", multiple=True, help="Only events of this job (repeatable).")
@click.option(
    "--type",
    "types",
    type=EnumList(EVENT_TYPE),
    multiple=True,
    help="Only events of this type (repeatable, or comma-separated).",
)
@click.option(
    "--reconnect/--no-reconnect",
    default=False,
    show_default=True,
    help="On a lost connection, reconnect and resume after the last event seen.",
)
@output_option
@pass_app
def watch(
    app: AppContext, after: int, job_ids: tuple[str, ...], types: tuple[list[int], ...], reconnect: bool
) -> None:
    """Print events as they happen, until Ctrl-C.

    \b
      jobqctl watch --job 01JABC
      jobqctl watch --after 0 -o json | jq 'select(.type == "EVENT_TYPE_JOB_STATUS_CHANGED")'
    """
    events = app.client.watch_events(
        after, job_ids=job_ids, types=flatten(types), reconnect=reconnect, on_reconnect=_say_reconnecting
    )
    for event in events:
        emit_stream_item(app, event, event_line)
