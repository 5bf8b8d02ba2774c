"""The one place where jobqd's logging is set up.

jobqd logs through structlog, but much of what happens in the process is logged by libraries that use
the standard library (grpc, aiosqlite, asyncio, kubernetes_asyncio). An operator reading the journal
must not have to parse two formats, so both populations go through the *same* processors and the same
renderer: structlog events are handed to a :class:`structlog.stdlib.ProcessorFormatter` installed on
the root stdlib logger, and foreign ``logging`` records are normalised by the same shared processors
before rendering (the pattern of pypi/warehouse ``warehouse/logging.py``).

Output is human-friendly columns on a terminal and JSON, one object per line, everywhere else (under
systemd stdout is the journal, so production gets JSON without being told).

Context such as ``job_id``, ``task_id`` and ``node`` is carried in :mod:`contextvars`, so every line
logged while handling a job carries it without threading a logger through every call; asyncio copies
the context into each task it creates, so a value bound inside one task never leaks into another.

The node service (package ``jobq``) must not import ``jobqd`` and has its own small setup.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token
from typing import Any, Final, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor

__all__ = [
    "LogFormat",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "get_logger",
    "reset_logging",
    "unbind_context",
]

LogFormat = Literal["auto", "console", "json"]

_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Libraries that log per operation or per frame. Their debug output drowns everything else, so they
# never go below INFO even when jobqd itself runs at debug; raise them by hand when debugging them.
_NOISY_LOGGERS: Final[tuple[str, ...]] = (
    "aiosqlite",  # one DEBUG line per executed statement
    "hpack",  # HTTP/2 header (de)compression, per frame
    "h2",
    "grpc._cython",
    "kubernetes_asyncio.client.rest",  # request/response bodies at DEBUG
    "urllib3",
)

# Marks the handler we install, so a second configure_logging() replaces it instead of stacking a
# second one (which would print every line twice) and leaves other handlers (pytest's) alone.
_HANDLER_MARK: Final = "_jobqd_log_handler"


# Levels configure_logging() overrode, by logger name ("" is the root), so reset_logging() can put
# them back.
_saved_levels: dict[str, int] = {}


def _shared_processors() -> list[Processor]:
    # Applied to structlog-born events and to foreign stdlib records alike, so both come out with
    # the same keys.
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _renderer_chain(*, console: bool, colors: bool) -> list[Processor]:
    if console:
        # Locals are off: a traceback with locals would print tokens and whole job specs. Rich
        # always emits colour codes, so without colours the traceback is plain text.
        formatter: structlog.typing.ExceptionRenderer = (
            structlog.dev.RichTracebackFormatter(show_locals=False)
            if colors
            else structlog.dev.plain_traceback
        )
        return [structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=formatter)]
    # format_exc_info only here: ConsoleRenderer renders exc_info itself and warns if it was already
    # turned into text. In JSON the traceback becomes one escaped string, keeping one line per event.
    return [
        structlog.processors.format_exc_info,
        _leading_keys_first,
        structlog.processors.JSONRenderer(),
    ]


# Raw JSON lines are read by people too (journalctl -o cat): put what identifies a line first.
_LEADING_KEYS: Final[tuple[str, ...]] = ("timestamp", "level", "logger", "event", "job_id", "task_id", "node")


def _leading_keys_first(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def configure_logging(
    *,
    level: str = "info",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging through one formatter writing to *stream*.

    *level* is a stdlib level name (``debug`` … ``critical``, case-insensitive). *fmt* ``auto``
    picks the console renderer when *stream* is a TTY and JSON lines otherwise. *stream* defaults
    to ``sys.stderr``. Safe to call more than once: each call replaces the previous setup.

    Raises ValueError for an unknown level or format.
    """
    try:
        numeric_level = _LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(_LEVELS)}") from None
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"unknown log format {fmt!r}; expected auto, console or json")
    out: TextIO = stream if stream is not None else sys.stderr
    tty = _isatty(out)
    console = fmt == "console" or (fmt == "auto" and tty)
    # https://no-color.org: any non-empty NO_COLOR turns colours off.
    colors = tty and not os.environ.get("NO_COLOR")

    shared = _shared_processors()
    formatter = structlog.stdlib.ProcessorFormatter(
        # ExtraAdder lifts `extra={...}` of foreign records into the event, as structlog kwargs are.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer_chain(console=console, colors=colors),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(_late_status_filter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    _remove_our_handlers(root)
    root.addHandler(handler)
    _set_level("", numeric_level)
    quiet_level = max(numeric_level, logging.INFO)
    for name in _NOISY_LOGGERS:
        _set_level(name, quiet_level)

    structlog.configure(
        processors=[
            # Checks the stdlib logger's level at call time, so level changes need no reconfigure.
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a cached logger keeps the processor chain it first saw, which would make
        # structlog.testing.capture_logs() (and any later configure_logging()) silently miss loggers
        # used before. The cost is one cheap bind per call, far below the cost of rendering a line.
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo :func:`configure_logging`: remove its handler, restore levels and structlog defaults.

    Meant for tests, so one test's configuration does not leak into the next.
    """
    _remove_our_handlers(logging.getLogger())
    for name, previous in _saved_levels.items():
        logging.getLogger(name).setLevel(previous)
    _saved_levels.clear()
    structlog.reset_defaults()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named *name* (use ``__name__``), rendered by the shared formatter."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind_context(**values: Any) -> Mapping[str, Token[Any]]:
    """Bind *values* (e.g. ``job_id=…, task_id=…, node=…``) to every log line of this context.

    Returns tokens for :func:`structlog.contextvars.reset_contextvars`; prefer :func:`bound_context`
    when the binding has a clear end.
    """
    return structlog.contextvars.bind_contextvars(**values)


@contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """Bind *values* for the duration of a ``with`` block, restoring previous values afterwards."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def unbind_context(*keys: str) -> None:
    """Remove *keys* from the logging context of the current task."""
    structlog.contextvars.unbind_contextvars(*keys)


def clear_context() -> None:
    """Remove every value bound in the logging context of the current task."""
    structlog.contextvars.clear_contextvars()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _late_status_filter(record: logging.LogRecord) -> bool:
    """grpc logs ERROR with a traceback when a handler's final status cannot be sent because the
    transport already ended the call — the peer went away, or grpc itself refused an over-limit
    message and failed the stream. Nothing is lost then (the peer has its status, jobqd's state is
    unchanged), so it is a warning without the traceback, not an error."""
    if record.name == "grpc._cython.cygrpc" and str(record.msg).startswith(
        "ExecuteBatchError raised in core"
    ):
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "a stream ended before its final status could be sent: " + str(record.msg)
        record.exc_info = record.exc_text = None
    return True


def _set_level(name: str, level: int) -> None:
    logger = logging.getLogger(name)
    _saved_levels.setdefault(name, logger.level)
    logger.setLevel(level)


def _remove_our_handlers(root: logging.Logger) -> None:
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
            existing.close()
