"""Log lines of one attempt, batched into LogChunk messages.

Sending one message per line would cost a stream write per line; instead lines collect per attempt
and go out as one LogChunk when ``max_lines`` / ``max_bytes`` is reached or after ``interval_s``
(one node-wide flusher, so idle attempts cost no timers). Progress from ``PROGRESS:`` lines is
coalesced the same way: only the latest value goes out, right after the lines before it.

Order is kept per attempt (a lock around take-and-queue), so the terminal update queued after the
final :meth:`AttemptLog.flush` always follows the attempt's last lines.
"""

from __future__ import annotations

import asyncio

import structlog

from jobq.node.outbox import Outbox
from jobq.v1 import node_service_pb2 as pb

log = structlog.get_logger(__name__)

LINE_OVERHEAD = 64
"""Bytes charged per line on top of its length: a Python str and its protobuf framing cost about
this much, so a flood of empty lines is bounded as well as a flood of long ones."""


class AttemptLog:
    """The log and progress of one attempt on their way to the outbox."""

    def __init__(
        self,
        *,
        task_id: str,
        attempt: int,
        outbox: Outbox,
        flusher: Flusher,
        max_lines: int,
        max_bytes: int,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self._outbox = outbox
        self._flusher = flusher
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._lines: list[str] = []
        self._cost = 0
        self._lock = asyncio.Lock()
        self._scheduled = False
        self._progress: int | None = None
        self._sent_progress: int | None = None
        self._dropped = 0
        self.lines_written = 0
        """Lines accepted so far (for diagnostics and tests)."""

    async def write(self, lines: list[str]) -> None:
        """Add lines; waits (backpressure) when a full batch cannot be queued yet."""
        if not lines:
            return
        self._lines.extend(lines)
        self._cost += sum(map(len, lines)) + LINE_OVERHEAD * len(lines)
        self.lines_written += len(lines)
        if len(self._lines) >= self._max_lines or self._cost >= self._max_bytes:
            await self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._flusher.schedule(self)

    def set_progress(self, value: int) -> None:
        """Record the latest progress; it goes out with the next flush."""
        self._progress = value
        if not self._scheduled:
            self._scheduled = True
            self._flusher.schedule(self)

    async def flush(self) -> None:
        """Queue everything pending now (waits for budget, or drops while jobqd stays away)."""
        async with self._lock:
            self._scheduled = False
            if self._lines:
                lines, cost = self._lines, self._cost
                self._lines, self._cost = [], 0
                if self._dropped:
                    lines.insert(0, f"[jobq-node] {self._dropped} log lines dropped: jobqd was unreachable")
                chunk = pb.LogChunk(task_id=self.task_id, attempt=self.attempt, lines=lines)
                if await self._outbox.put_log(pb.NodeMessage(log=chunk), cost):
                    self._dropped = 0
                else:
                    dropped = len(lines) - (1 if self._dropped else 0)
                    self._dropped += dropped
                    self._outbox.dropped_lines += dropped
            if self._progress is not None and self._progress != self._sent_progress:
                self._sent_progress = self._progress
                self._outbox.put_update(
                    task_id=self.task_id,
                    attempt=self.attempt,
                    kind=pb.UPDATE_KIND_PROGRESS,
                    progress=self._progress,
                )


class Flusher:
    """Flushes attempt logs that have pending lines ``interval_s`` after they got their first one."""

    def __init__(self, *, interval_s: float) -> None:
        self._interval_s = interval_s
        self._pending: dict[AttemptLog, None] = {}
        self._due = asyncio.Event()

    def schedule(self, attempt_log: AttemptLog) -> None:
        """Flush ``attempt_log`` at the next tick."""
        self._pending[attempt_log] = None
        self._due.set()

    async def run(self) -> None:
        """Forever: wait for work, let a batch collect for ``interval_s``, flush it."""
        while True:
            await self._due.wait()
            # The batching window itself, not a wait for some condition.
            await asyncio.sleep(self._interval_s)
            self._due.clear()
            batch, self._pending = list(self._pending), {}
            for attempt_log in batch:
                await attempt_log.flush()
