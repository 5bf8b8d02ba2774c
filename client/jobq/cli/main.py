"""The ``jobqctl`` entry point: global options, the command list, and errors → exit codes.

Every option can also come from the environment (click's ``auto_envvar_prefix``): a global
option from ``JOBQ_<OPTION>`` (``JOBQ_SERVER``, ``JOBQ_TOKEN``, ``JOBQ_OUTPUT``), a command's
option from ``JOBQ_<COMMAND>_<OPTION>`` (``JOBQ_SUBMIT_QUEUE``).
"""

from __future__ import annotations

from typing import Any, TextIO

import click

from jobq.cli import completion, events, jobs, nodes, queues, submitting, tasks, waiting
from jobq.cli.context import OUTPUT_FORMATS, AppContext, OutputFormat
from jobq.cli.exits import ExitCode, error_line, exit_code_for
from jobq.errors import JobqError
from jobq.sdk.channels import DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S

__all__ = ["cli", "main"]


class JobqctlGroup(click.Group):
    """Turns the SDK's errors into one stderr line and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JobqError as err:
            app = ctx.find_object(AppContext)
            server = app.server if app is not None else DEFAULT_ADDRESS
            timeout = app.timeout if app is not None else DEFAULT_TIMEOUT_S
            click.echo(error_line(err, server=server, timeout=timeout), err=True)
            ctx.exit(exit_code_for(err))
        except KeyboardInterrupt:
            click.echo(err=True)  # end the ^C line
            ctx.exit(ExitCode.INTERRUPTED)


@click.group(
    cls=JobqctlGroup,
    context_settings={
        "auto_envvar_prefix": "JOBQ",
        "help_option_names": ["-h", "--help"],
        "max_content_width": 110,
    },
)
@click.option(
    "-s",
    "--server",
    default=DEFAULT_ADDRESS,
    show_default=True,
    show_envvar=True,
    metavar="HOST:PORT",
    help="jobqd address.",
)
@click.option("--token", show_envvar=True, help="API token, sent as 'authorization: Bearer'.")
@click.option(
    "--token-file",
    type=click.File("r"),
    show_envvar=True,
    help="Read the API token from this file (keeps it out of 'ps' and shell history).",
)
@click.option(
    "--tls-ca",
    type=click.Path(exists=True, dir_okay=False),
    show_envvar=True,
    help="CA bundle (PEM): connect with TLS.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    show_envvar=True,
    help="Client certificate (PEM) for mutual TLS.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    show_envvar=True,
    help="Client key (PEM) for mutual TLS.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    show_envvar=True,
    metavar="SECONDS",
    help="Deadline of each call.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="table",
    show_default=True,
    show_envvar=True,
    help="Output format.",
)
@click.version_option(package_name="jobq", prog_name="jobqctl")
@click.pass_context
def cli(
    ctx: click.Context,
    *,
    server: str,
    token: str | None,
    token_file: TextIO | None,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    timeout: float,
    output: OutputFormat,
) -> None:
    """jobqctl: submit, inspect and manage jobs, queues and nodes of a jobqd job queue.

    Exit codes: 0 ok; 1 job failed or canceled (wait, submit --wait) or jobqd refused the action;
    2 usage error or invalid input; 3 jobqd unreachable; 130 interrupted.
    """
    if token_file is not None:  # wins over JOBQ_TOKEN; next to --token it is a mistake
        if token and ctx.get_parameter_source("token") is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("--token and --token-file: give one")
        token = token_file.read().strip()
        if not token:
            raise click.UsageError(f"--token-file {token_file.name}: the file is empty")
    app = AppContext(
        server=server,
        timeout=timeout,
        token=token,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        output=output,
    )
    ctx.obj = app
    ctx.call_on_close(app.close)


for command in (
    submitting.submit,
    jobs.jobs,
    jobs.job,
    *jobs.ACTIONS,
    jobs.priority,
    jobs.delete,
    waiting.wait,
    tasks.tasks,
    tasks.task,
    tasks.logs,
    events.watch,
    queues.queues,
    queues.queue,
    nodes.nodes,
    nodes.node,
    nodes.blocklist,
    completion.completion,
):
    cli.add_command(command)


def main() -> None:
    """Console script ``jobqctl``."""
    cli(prog_name="jobqctl")
