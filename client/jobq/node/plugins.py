"""Extra command types from Python entry points (group ``jobq.commands``).

A plugin is an async callable that receives the command's params (plain Python data) and a log sink,
and returns an exit code (0 = success). It runs inside the node's event loop, so it must not block:
use ``asyncio.to_thread`` or a subprocess for heavy work. On Abort or node shutdown it is cancelled
(``asyncio.CancelledError``) and gets the grace period to clean up.

Example, in the plugin's ``pyproject.toml``::

    [project.entry-points."jobq.commands"]
    render = "mystudio.jobq:render"

and ``mystudio/jobq.py``::

    async def render(params: dict[str, Any], log: jobq.node.LogSink) -> int:
        await log(f"rendering frame {params['frame']}", "PROGRESS: 50")
        return 0
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

import structlog

ENTRY_POINT_GROUP = "jobq.commands"

log = structlog.get_logger(__name__)


class LogSink(Protocol):
    """Where a command writes its output: each argument is one line (no trailing newline).

    Awaiting it applies backpressure: it returns once the lines are queued for jobqd. A line
    ``PROGRESS: <0-100>`` also reports progress.
    """

    async def __call__(self, *lines: str) -> None: ...


@runtime_checkable
class CommandPlugin(Protocol):
    """An extra command type: ``await plugin(params, log)`` returns the exit code (0 = success)."""

    async def __call__(self, params: dict[str, Any], log: LogSink, /) -> int: ...


def load_plugins(
    *, reserved: Collection[str], found: Iterable[EntryPoint] | None = None
) -> dict[str, CommandPlugin]:
    """Load the command plugins installed in this environment, by command type name.

    A plugin that fails to load, is not callable, or reuses a ``reserved`` (built-in) name is
    logged and skipped: one broken package must not keep the node from running everything else.
    """
    if found is None:
        found = entry_points(group=ENTRY_POINT_GROUP)
    plugins: dict[str, CommandPlugin] = {}
    for entry in found:
        if entry.name in reserved:
            log.warning("plugin skipped: name is reserved", command_type=entry.name, value=entry.value)
            continue
        if entry.name in plugins:
            log.warning("plugin skipped: duplicate name", command_type=entry.name, value=entry.value)
            continue
        try:
            loaded = entry.load()
            if inspect.isclass(loaded):
                loaded = loaded()
        except Exception as err:
            log.error("plugin failed to load", command_type=entry.name, value=entry.value, error=repr(err))
            continue
        if not callable(loaded):
            log.error("plugin skipped: not callable", command_type=entry.name, value=entry.value)
            continue
        plugins[entry.name] = loaded
        log.debug("plugin loaded", command_type=entry.name, value=entry.value)
    return plugins
