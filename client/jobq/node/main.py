"""``jobq-node``: the command line. Flags (and ``JOBQ_NODE_<FLAG>`` environment variables) map
onto :class:`~jobq.node.settings.NodeSettings`; everything else happens in :mod:`jobq.node.service`.

Exit codes: 0 stopped cleanly, 1 a part of the node failed, 2 bad usage.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from pathlib import Path

import click
import structlog

from jobq.node.commands import BUILTIN_TYPES
from jobq.node.limits import MEMORY_LIMITS, RLIMITS, LimitSettings, MemoryLimit, parse_rlimit
from jobq.node.log_setup import LEVELS, configure_logging
from jobq.node.plugins import CommandPlugin, load_plugins
from jobq.node.service import NodeService, command_types, isolation
from jobq.node.settings import (
    DEFAULT_ENV_PASSTHROUGH,
    ConnectionSettings,
    ExecutionSettings,
    NodeSettings,
    build_capacity,
    default_name,
    default_slots,
    default_work_dir,
    parse_labels,
    parse_list,
)

ENV_PREFIX = "JOBQ_NODE"

log = structlog.get_logger(__name__)


def _positive_float(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value < 0:
        raise click.BadParameter("must be >= 0")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--server", required=True, metavar="HOST:PORT", help="jobqd's address.")
@click.option("--name", default=default_name, show_default="host name", help="Unique node name.")
@click.option(
    "--labels", default="", show_default=False, metavar="K=V,...", help="Node labels jobs can select on."
)
@click.option(
    "--slots",
    type=click.IntRange(min=1),
    default=default_slots,
    show_default="CPU count",
    help="Attempts run at once.",
)
@click.option("--cpu", metavar="QUANTITY", show_default="CPU count", help="CPU capacity to advertise.")
@click.option("--memory", metavar="QUANTITY", show_default="RAM", help="Memory capacity to advertise.")
@click.option("--gpu", type=click.IntRange(min=0), help="GPUs to advertise.")
@click.option(
    "--task-types",
    multiple=True,
    metavar="TYPE,...",
    show_default="all this node has",
    help="Only advertise and run these command types.",
)
@click.option(
    "--allow-command",
    "allow_commands",
    multiple=True,
    metavar="GLOB",
    envvar=f"{ENV_PREFIX}_ALLOW_COMMAND",
    show_default="any program",
    help="Absolute program path glob exec may run (repeatable; in the env, space-separated).",
)
@click.option("--allow-shell", is_flag=True, help="Allow 'shell' commands (they bypass --allow-command).")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_work_dir,
    show_default="~/.cache/jobq-node/work",
    help="Parent of per-attempt working directories.",
)
@click.option("--keep-work-dirs", is_flag=True, help="Keep attempt working directories afterwards.")
@click.option(
    "--run-as",
    metavar="USER",
    show_default="the node's user",
    help="Run commands as this user (name or uid); the node must run as root to switch.",
)
@click.option(
    "--pass-env",
    "pass_env",
    multiple=True,
    metavar="NAME",
    help=(
        "Also pass this variable of the node's environment to commands (repeatable; NAME_* for a "
        f"prefix). Always passed: {' '.join(DEFAULT_ENV_PASSTHROUGH)}."
    ),
)
@click.option(
    "--memory-limit",
    type=click.Choice(MEMORY_LIMITS),
    default="data",
    help="Which RLIMIT a task's memory request sets on each of its processes (off: none).",
)
@click.option(
    "--rlimit",
    "rlimits",
    multiple=True,
    metavar="NAME=VALUE",
    help=f"A fixed RLIMIT for every command, e.g. core=0, nofile=4096 (repeatable; {', '.join(RLIMITS)}).",
)
@click.option(
    "--grace-period",
    type=float,
    default=10.0,
    callback=_positive_float,
    metavar="SECONDS",
    help="SIGTERM to SIGKILL delay on timeouts, shutdown, and aborts that carry none.",
)
@click.option(
    "--token",
    metavar="TOKEN",
    envvar=[f"{ENV_PREFIX}_TOKEN", "JOBQ_TOKEN"],
    help="Bearer token (role node). Prefer JOBQ_NODE_TOKEN (or JOBQ_TOKEN) or --token-file.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read the bearer token from this file.",
)
@click.option("--tls", is_flag=True, help="Connect with TLS (system CA roots).")
@click.option(
    "--tls-ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CA bundle for jobqd's certificate (implies --tls).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Client certificate for mutual TLS (with --tls-key; implies --tls).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Private key of --tls-cert.",
)
@click.option(
    "--keepalive",
    type=float,
    default=360.0,
    callback=_positive_float,
    metavar="SECONDS",
    help="HTTP/2 keepalive ping interval, 0 = off (jobqd must permit pings this often).",
)
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default="info")
@click.version_option(package_name="jobq", prog_name="jobq-node")
def cli(
    *,
    server: str,
    name: str,
    labels: str,
    slots: int,
    cpu: str | None,
    memory: str | None,
    gpu: int | None,
    task_types: tuple[str, ...],
    allow_commands: tuple[str, ...],
    allow_shell: bool,
    work_dir: Path,
    keep_work_dirs: bool,
    run_as: str | None,
    pass_env: tuple[str, ...],
    memory_limit: MemoryLimit,
    rlimits: tuple[str, ...],
    grace_period: float,
    token: str | None,
    token_file: Path | None,
    tls: bool,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    keepalive: float,
    log_level: str,
) -> None:
    """Run tasks from jobqd on this machine.

    Connects out to jobqd (no inbound port), advertises labels, capacity and command types, runs
    what jobqd assigns and streams output and results back. Every option can also be set with an
    environment variable JOBQ_NODE_<OPTION>, e.g. JOBQ_NODE_SERVER=jobqd:7070.
    """
    configure_logging(log_level.lower())
    try:
        if token_file is not None:
            token = token_file.read_text().strip()
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("--tls-cert and --tls-key: give both (mutual TLS) or neither")
        settings = NodeSettings(
            name=name,
            labels=parse_labels(labels),
            slots=slots,
            capacity=build_capacity(slots=slots, cpu=cpu, memory=memory, gpu=gpu),
            connection=ConnectionSettings(
                server=server,
                token=token or None,
                tls=tls,
                tls_ca=tls_ca,
                tls_cert=tls_cert,
                tls_key=tls_key,
                keepalive_s=keepalive,
            ),
            execution=ExecutionSettings(
                work_dir=work_dir.expanduser().absolute(),
                keep_work_dirs=keep_work_dirs,
                grace_period_s=grace_period,
                allow_commands=parse_list(allow_commands),
                allow_shell=allow_shell,
                task_types=parse_list(task_types),
                env_passthrough=(*DEFAULT_ENV_PASSTHROUGH, *parse_list(pass_env)),
                run_as=run_as or None,
                limits=LimitSettings(memory=memory_limit, fixed=dict(parse_rlimit(r) for r in rlimits)),
            ),
            log_level=log_level.lower(),
        )
        plugins = load_plugins(reserved=BUILTIN_TYPES)
        command_types(
            plugins=list(plugins), allow_shell=allow_shell, restrict_to=settings.execution.task_types
        )
        for pattern in settings.execution.allow_commands:
            if not pattern.startswith("/"):
                raise ValueError(f"--allow-command {pattern!r}: must be an absolute path glob")
        isolation(settings.execution)
    except (ValueError, OSError) as err:
        raise click.UsageError(str(err)) from err
    raise SystemExit(asyncio.run(_run(settings, plugins)))


async def _run(settings: NodeSettings, plugins: Mapping[str, CommandPlugin]) -> int:
    structlog.contextvars.bind_contextvars(node=settings.name)  # also for the signal handlers
    service = NodeService(settings, plugins=plugins)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.request_stop)
    return await service.run()


def main() -> None:
    """Console-script entry point."""
    cli(auto_envvar_prefix=ENV_PREFIX)
