"""One child process group: spawn it, read its output, time it out, terminate it.

Every command runs in a fresh session (``start_new_session=True``), so its process group holds
everything it starts, and terminating sends SIGTERM to the whole group, then SIGKILL after the
grace period. When the main process exits, whatever it left behind in its group is killed too:
a finished command must not leave work running on the node.

stdout and stderr share one pipe, so lines keep the order the child wrote them in. The pipe is read
through a small protocol that stops reading (``pause_reading``) while the log path is backed up, so
a child that prints faster than jobqd takes its output simply blocks on its own write.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from jobq.node.identity import RunAs
from jobq.node.output import LineSplitter, last_progress, parse_progress

log = structlog.get_logger(__name__)

READ_HIGH_WATER = 256 * 1024
"""Bytes read from the pipe but not yet turned into lines before reading pauses."""

STUCK_PIPE_S = 5.0
"""After the process group is gone, how long an open but silent pipe is waited for. It can only be
held by a process that left the group (e.g. a daemon that called setsid), which is not waited for."""


class LineWriter(Protocol):
    """Where the lines go (an AttemptLog)."""

    async def write(self, lines: list[str]) -> None: ...

    def set_progress(self, value: int) -> None: ...


class Ending(enum.Enum):
    """How a process run ended."""

    EXITED = "exited"
    TIMED_OUT = "timed out"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """The outcome of :func:`run_process`."""

    ending: Ending
    returncode: int | None
    """As asyncio reports it: negative for a signal."""


class _PipeReader(asyncio.SubprocessProtocol):
    """Collects the child's output; pauses the pipe while more than READ_HIGH_WATER is unread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.exited: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._transport: asyncio.SubprocessTransport | None = None
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.last_data_at = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        self._chunks.append(bytes(data))
        self._size += len(data)
        self.last_data_at = time.monotonic()
        if self._size >= READ_HIGH_WATER and not self._paused:
            self._set_reading(paused=True)
        self._wake()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._eof = True
            self._wake()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    @property
    def waiting_for_data(self) -> bool:
        """Whether the reader is idle on an open pipe (not held up by the log path)."""
        return self._waiter is not None and not self._eof

    async def read(self) -> bytes:
        """Whatever has arrived (waiting for some); b"" at end of output."""
        while not self._chunks and not self._eof:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self._paused:
            self._set_reading(paused=False)
        return data

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _set_reading(self, *, paused: bool) -> None:
        pipe = self._transport.get_pipe_transport(1) if self._transport is not None else None
        if not isinstance(pipe, asyncio.ReadTransport) or pipe.is_closing():
            return
        self._paused = paused
        if paused:
            pipe.pause_reading()
        else:
            pipe.resume_reading()


async def _pump(reader: _PipeReader, sink: LineWriter, max_line_bytes: int) -> None:
    splitter = LineSplitter(max_line_bytes)
    while data := await reader.read():
        continuing = splitter.has_partial
        lines = splitter.feed(data)
        if not lines:
            continue
        # PROGRESS lines are rare: look only when the marker is in this chunk or a line continued
        if b"PROGRESS:" in data:
            progress = last_progress(lines)
        elif continuing:
            progress = parse_progress(lines[0])
        else:
            progress = None
        if progress is not None:
            sink.set_progress(progress)
        await sink.write(lines)
    await sink.write(splitter.close())


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class RunningProcess:
    """Handle on a running command, so the node can kill it at once (second Ctrl-C)."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid

    def kill(self) -> None:
        """SIGKILL the whole group now."""
        signal_group(self.pgid, signal.SIGKILL)


RunningCallback = Callable[[RunningProcess], None]


async def run_process(
    *,
    argv: Sequence[str],
    executable: str,
    env: Mapping[str, str],
    cwd: str,
    timeout_s: float | None,
    grace_s: float,
    abort: asyncio.Future[float],
    sink: LineWriter,
    max_line_bytes: int,
    on_start: RunningCallback | None = None,
    run_as: RunAs | None = None,
) -> ProcessResult:
    """Run one command to its end; its output goes to ``sink`` line by line.

    ``abort`` resolves (with a grace period, seconds) when the attempt is aborted. Raises OSError if
    the program cannot be started at all. ``run_as`` switches user and groups before exec.
    """
    loop = asyncio.get_running_loop()
    switch: dict[str, Any] = {}
    if run_as is not None:
        switch = {"user": run_as.uid, "group": run_as.gid, "extra_groups": list(run_as.groups)}
    transport, reader = await loop.subprocess_exec(
        lambda: _PipeReader(loop),
        *argv,
        executable=executable,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        **switch,
    )
    pgid = transport.get_pid()
    if on_start is not None:
        on_start(RunningProcess(pgid))
    pump = asyncio.create_task(_pump(reader, sink, max_line_bytes), name=f"pump-{pgid}")
    try:
        done, _ = await asyncio.wait(
            (reader.exited, abort), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if reader.exited in done:
            ending = Ending.EXITED
        elif abort in done:
            ending = Ending.ABORTED
            await _terminate(pgid, reader, grace_s=abort.result())
        else:
            ending = Ending.TIMED_OUT
            await _terminate(pgid, reader, grace_s=grace_s)
    except BaseException:
        # Cancelled (the node is going down hard): never leave the group or the transport behind.
        signal_group(pgid, signal.SIGKILL)
        pump.cancel()
        transport.close()
        raise
    signal_group(pgid, signal.SIGKILL)  # leftovers of a command that exited on its own
    try:
        await _finish_pump(pump, reader)
    finally:
        transport.close()
    return ProcessResult(ending=ending, returncode=transport.get_returncode())


async def _terminate(pgid: int, reader: _PipeReader, *, grace_s: float) -> None:
    signal_group(pgid, signal.SIGTERM)
    if grace_s > 0:
        try:
            async with asyncio.timeout(grace_s):
                await asyncio.shield(reader.exited)
        except TimeoutError:
            pass
    signal_group(pgid, signal.SIGKILL)
    await asyncio.shield(reader.exited)


async def _finish_pump(pump: asyncio.Task[None], reader: _PipeReader) -> None:
    """Let the pump read what is left; give up on a pipe that stays open with nothing coming."""
    while not pump.done():
        await asyncio.wait((pump,), timeout=1.0)
        if (
            not pump.done()
            and reader.waiting_for_data
            and time.monotonic() - reader.last_data_at > STUCK_PIPE_S
        ):
            log.warning("output pipe still open after the process group ended; not reading it further")
            pump.cancel()
            await asyncio.wait((pump,))
    if not pump.cancelled() and (err := pump.exception()) is not None:
        raise err
