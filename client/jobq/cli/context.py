"""What every command gets from the global options: where jobqd is, how to authenticate, how to print.

The client is created on first use, so ``--help`` and argument errors never touch the network,
and closed when the command ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import click

from jobq.sdk.sync import Client

__all__ = ["OUTPUT_FORMATS", "AppContext", "OutputFormat", "output_option", "pass_app"]

F = TypeVar("F", bound=Callable[..., Any])

OutputFormat = Literal["table", "json", "yaml"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("table", "json", "yaml")


@dataclass
class AppContext:
    server: str
    timeout: float
    token: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    output: OutputFormat = "table"
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(
                self.server,
                timeout=self.timeout,
                token=self.token,
                tls_ca=self.tls_ca,
                tls_cert=self.tls_cert,
                tls_key=self.tls_key,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


pass_app = click.make_pass_decorator(AppContext)


def output_option(f: F) -> F:
    """``-o/--output`` on a command, so ``jobqctl jobs -o json`` works as well as ``jobqctl -o json jobs``."""

    def remember(ctx: click.Context, _param: click.Parameter, value: OutputFormat | None) -> None:
        app = ctx.find_object(AppContext)
        if value is not None and app is not None:
            app.output = value

    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUT_FORMATS),
        default=None,
        expose_value=False,
        callback=remember,
        help="Output format (default: the global --output, else table).",
    )(f)
