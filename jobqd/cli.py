"""The `jobqd` command: run the daemon, manage API tokens, back up the database.

`jobqd token …` and `jobqd backup` work on the data directory directly, with their own SQLite
connection, while the daemon runs or not (WAL mode lets them): a token created or revoked here is
seen by a running daemon within a second (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import structlog

from jobqd import settings as settings_mod
from jobqd.domain.errors import JobqError
from jobqd.log_config import configure_logging

T = TypeVar("T")


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
@click.option(
    "--auth",
    type=click.Choice(["auto", "required"]),
    help="auto: on once any token exists; required: always on. [default: auto]",
)
@click.option(
    "--token-refresh",
    type=float,
    metavar="SECONDS",
    help="Re-read the tokens table this often (a revoke takes effect within it). [default: 1]",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate chain: serve TLS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option(
    "--tls-client-ca",
    type=click.Path(dir_okay=False),
    help="PEM CA bundle: require client certificates signed by it (mutual TLS).",
)
@click.option(
    "--metrics-listen", metavar="HOST:PORT", help="Serve Prometheus metrics at /metrics. [default: off]"
)
@click.option(
    "--max-inflight-submits", type=int, metavar="N", help="Submits processed at once. [default: 1024]"
)
@click.option(
    "--max-inflight-submit-bytes",
    type=int,
    metavar="BYTES",
    help="Bytes of submits processed at once. [default: 256 MiB]",
)
@click.option(
    "--max-streams-per-identity",
    type=int,
    metavar="N",
    help="Open streams per token (or connection without auth). [default: 128]",
)
@click.option(
    "--maintenance-interval",
    type=float,
    metavar="SECONDS",
    help="quick_check + WAL checkpoint period. [default: 300]",
)
@click.option(
    "--event-loop",
    type=click.Choice(["uvloop", "asyncio"]),
    help="asyncio event loop implementation. [default: uvloop]",
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
        ctx.obj = (flags, config_file)
        return
    try:
        s = settings_mod.load(flags, config_file=Path(config_file) if config_file else None)
    except settings_mod.SettingsError as err:
        raise click.UsageError(str(err)) from None
    configure_logging(level=s.log.level, fmt=s.log.format)  # type: ignore[arg-type]
    from jobqd.daemon import serve

    try:
        with asyncio.Runner(loop_factory=_loop_factory(s.server.event_loop)) as runner:
            code = runner.run(serve(s))
    except JobqError as err:
        click.echo(f"jobqd: {err.message}", err=True)
        sys.exit(1)
    except OSError as err:
        click.echo(f"jobqd: {err}", err=True)
        sys.exit(1)
    sys.exit(code)


# -- admin subcommands ------------------------------------------------------------------------------

_data_dir_option = click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(file_okay=False),
    help="State directory. [default: as `jobqd` would use: flag, JOBQD_DATA_DIR, config, .jobq]",
)


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, or None (the standard one) when asked for or when uvloop is not installed."""
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        # logging is set up by now: under systemd this is a JSON record like every other line
        structlog.get_logger("jobqd.cli").warning(
            "uvloop is not installed; using the standard asyncio event loop"
        )
        return None
    return uvloop.new_event_loop


def _data_dir(ctx: click.Context, given: str | None) -> Path:
    if given:
        return Path(given)
    flags, config_file = ctx.find_root().obj or ({}, None)
    try:
        return settings_mod.load(flags, config_file=Path(config_file) if config_file else None).store.data_dir
    except settings_mod.SettingsError as err:
        raise click.UsageError(str(err)) from None


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Errors a user can act on become one line on stderr and exit status 1."""
    try:
        yield
    except JobqError as err:
        click.echo(f"jobqd: {err.message}", err=True)
        sys.exit(1)
    except OSError as err:
        click.echo(f"jobqd: {err}", err=True)
        sys.exit(1)


async def _with_tokens(data_dir: Path, *, create: bool, use: Callable[[Any], Awaitable[T]]) -> T:
    from jobqd.auth.tokens import TokenStore
    from jobqd.domain.errors import FailedPrecondition
    from jobqd.store.database import DB_NAME, open_db

    if not create and not (data_dir / DB_NAME).exists():
        raise FailedPrecondition(f"no database at {data_dir / DB_NAME} (is --data-dir right?)")
    conn = await open_db(data_dir)
    try:
        return await use(TokenStore(conn))
    finally:
        await conn.close()


@main.group()
def token() -> None:
    """API tokens: create (shown once), list, revoke. Only their SHA-256 is stored."""


@token.command("create")
@click.option(
    "--role",
    type=click.Choice(["client", "node", "admin"]),
    required=True,
    help="client: own jobs only; node: a jobq-node; admin: everything.",
)
@click.option("--name", required=True, help="Who it is for; a client's jobs are owned by this name.")
@_data_dir_option
@click.pass_context
def token_create(ctx: click.Context, role: str, name: str, data_dir: str | None) -> None:
    """Create a token and print it on stdout — the only time it is shown.

    A node token's name must be the node's name (jobq-node --name): it connects only as that node.
    """
    from jobqd.auth.tokens import parse_role

    with _reported():
        secret: str = asyncio.run(
            _with_tokens(
                _data_dir(ctx, data_dir),
                create=True,
                use=lambda store: store.create(name=name, role=parse_role(role)),
            )
        )
    click.echo(secret)
    click.echo(f"token {name!r} ({role}) created; it is shown only this once.", err=True)


@token.command("list")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_data_dir_option
@click.pass_context
def token_list(ctx: click.Context, output: str, data_dir: str | None) -> None:
    """Names, roles and creation times (never the tokens)."""
    with _reported():
        infos: list[Any] = asyncio.run(
            _with_tokens(_data_dir(ctx, data_dir), create=False, use=lambda st: st.all())
        )
    if output == "json":
        click.echo(
            json.dumps(
                [{"name": i.name, "role": i.role.value, "created": _iso(i.created_ts)} for i in infos],
                indent=2,
            )
        )
        return
    if not infos:
        click.echo("no tokens (authentication is off unless jobqd runs with --auth required)", err=True)
        return
    width = max(4, *(len(i.name) for i in infos))
    click.echo(f"{'NAME':<{width}}  {'ROLE':<6}  CREATED")
    for i in infos:
        click.echo(f"{i.name:<{width}}  {i.role.value:<6}  {_iso(i.created_ts)}")


@token.command("revoke")
@click.argument("name")
@_data_dir_option
@click.pass_context
def token_revoke(ctx: click.Context, name: str, data_dir: str | None) -> None:
    """Delete token NAME. A running jobqd refuses it within a second and ends its open streams."""
    with _reported():
        asyncio.run(_with_tokens(_data_dir(ctx, data_dir), create=False, use=lambda st: st.revoke(name)))
    click.echo(f"token {name!r} revoked", err=True)


@main.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
@_data_dir_option
@click.pass_context
def backup_cmd(ctx: click.Context, path: str, data_dir: str | None) -> None:
    """Copy the database to PATH (a new file) while jobqd serves; restore: docs/operations.md."""
    from jobqd.store.backup import backup

    with _reported():
        result = backup(_data_dir(ctx, data_dir), Path(path))
    click.echo(
        f"backup written to {result.path}: {result.bytes} bytes, schema {result.schema_version}, "
        f"{result.jobs} jobs, events up to {result.last_event}"
    )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


if __name__ == "__main__":
    main()
