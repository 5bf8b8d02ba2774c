"""Node commands: ``nodes``, ``node show|drain|resume`` and ``blocklist clear``."""

from __future__ import annotations

import click

from jobq.cli.context import AppContext, output_option, pass_app
from jobq.cli.rendering import emit, emit_data
from jobq.cli.tables import node_detail, nodes_table
from jobq.sdk.names import NODE_STATE
from jobq.v1 import node_service_pb2, types_pb2

__all__ = ["blocklist", "node", "nodes"]


def _show(app: AppContext, node_: types_pb2.Node) -> None:
    if app.output == "table":
        click.echo(f"node {node_.name} {NODE_STATE.name(node_.state)}")
    else:
        emit_data(app, node_)


@click.command("nodes")
@output_option
@pass_app
def nodes(app: AppContext) -> None:
    """List nodes."""
    emit(app, app.client.list_nodes(), nodes_table)


@click.group("node")
def node() -> None:
    """Show, drain and resume one node."""


@node.command("show")
@click.argument("name")
@output_option
@pass_app
def show(app: AppContext, name: str) -> None:
    """Show a node."""
    emit(app, app.client.get_node(name), node_detail)


@node.command("drain")
@click.argument("name")
@click.option("--stop", is_flag=True, help="Also stop running tasks now (they are requeued, not failed).")
@output_option
@pass_app
def drain(app: AppContext, name: str, stop: bool) -> None:
    """Give a node no new tasks (e.g. before maintenance)."""
    _show(app, app.client.drain_node(name, stop=stop))


@node.command("resume")
@click.argument("name")
@output_option
@pass_app
def resume(app: AppContext, name: str) -> None:
    """Give a drained node tasks again."""
    _show(app, app.client.resume_node(name))


@click.group("blocklist")
def blocklist() -> None:
    """Per-job blocklists of nodes that failed a task type too often."""


@blocklist.command("clear")
@click.option("--job", "job_id", default="", help="Only entries of this job.")
@click.option("--node", "node_name", default="", help="Only entries of this node.")
@click.option("--type", "task_type", default="", help="Only entries of this task type.")
@output_option
@pass_app
def clear(app: AppContext, job_id: str, node_name: str, task_type: str) -> None:
    """Forget blocklist entries (all of them, or those matching every option given)."""
    cleared = app.client.clear_blocklist(job_id=job_id, node=node_name, task_type=task_type)
    if app.output == "table":
        click.echo(f"cleared {cleared} blocklist {'entry' if cleared == 1 else 'entries'}")
    else:
        emit_data(app, node_service_pb2.ClearBlocklistResponse(cleared=cleared))
