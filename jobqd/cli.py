"""The `jobqd` command: run the daemon (and, later, its admin subcommands)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from jobqd import settings as settings_mod
from jobqd.domain.errors import JobqError
from jobqd.log_config import configure_logging


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--listen", metavar="HOST:PORT", help="gRPC address. [default: 127.0.0.1:7070; env JOBQD_LISTEN]"
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="State directory. [default: .jobq; env JOBQD_DATA_DIR]",
)
@click.option(
    "--admission", type=click.Choice(["local", "kueue"]), help="Admission backend. [default: local]"
)
@click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), help="kueue mode: kubeconfig (default: in-cluster)."
)
@click.option("--namespace", help="kueue mode: namespace of Workloads and LocalQueues.")
@click.option(
    "--synchronous", type=click.Choice(["full", "normal"]), help="SQLite durability. [default: full]"
)
@click.option(
    "--node-timeout", type=float, metavar="SECONDS", help="Silence before a node is lost. [default: 60]"
)
@click.option(
    "--heartbeat-interval", type=float, metavar="SECONDS", help="Node heartbeat period. [default: 5]"
)
@click.option(
    "--abort-grace",
    type=float,
    metavar="SECONDS",
    help="SIGTERM→SIGKILL grace for aborted tasks. [default: 10]",
)
@click.option(
    "--retention",
    type=float,
    metavar="SECONDS",
    help="Archive finished jobs older than this. [default: 7 days]",
)
@click.option(
    "--group-commit-max-batch",
    type=int,
    metavar="N",
    help="Write sets per commit (1 = no group commit). [default: 1024]",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", type=click.Choice(["auto", "console", "json"]))
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True),
    help="TOML settings file (env JOBQD_CONFIG).",
)
@click.pass_context
def main(ctx: click.Context, /, config_file: str | None, **flags: object) -> None:
    """jobqd — the jobq daemon: job and task state, admission, dispatch to nodes, the gRPC API.

    Settings come from flags, then JOBQD_<FLAG> environment variables, then the TOML file.
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        s = settings_mod.load(flags, config_file=Path(config_file) if config_file else None)
    except settings_mod.SettingsError as err:
        raise click.UsageError(str(err)) from None
    configure_logging(level=s.log.level, fmt=s.log.format)  # type: ignore[arg-type]
    from jobqd.daemon import serve

    try:
        code = asyncio.run(serve(s))
    except JobqError as err:
        click.echo(f"jobqd: {err.message}", err=True)
        sys.exit(1)
    except OSError as err:
        click.echo(f"jobqd: {err}", err=True)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
