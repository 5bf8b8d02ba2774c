"""``jobqctl completion SHELL``: print the shell completion script (click's own completion)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

__all__ = ["completion"]


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL.

    \b
      eval "$(jobqctl completion bash)"       # in ~/.bashrc
      eval "$(jobqctl completion zsh)"        # in ~/.zshrc
      jobqctl completion fish > ~/.config/fish/completions/jobqctl.fish
    """
    completer = get_completion_class(shell)
    assert completer is not None  # the three choices are built into click
    root = ctx.find_root()
    click.echo(completer(root.command, {}, "jobqctl", "_JOBQCTL_COMPLETE").source())
