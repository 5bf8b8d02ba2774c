"""The one bounded queue between everything that reports and the stream to jobqd.

Every TaskUpdate and LogChunk goes through here, in order, to the single sender of the Connect
stream. It outlives streams: what could not be written before a disconnect stays queued (in order)
and goes out after the next Hello.

Memory is bounded:

* Log chunks count against a byte budget. When it is used up, a producer waits (and so stops
  reading the child's pipe, which blocks the child) — that is the backpressure that keeps a task
  printing a gigabyte from exhausting memory on either side. While jobqd is unreachable the
  producer waits at most ``hold_s``, then its lines are dropped (and counted), so tasks keep running
  through a long outage instead of freezing on a full pipe.
* Updates never wait (they are few: a handful per attempt, progress is coalesced upstream), but
  their number is capped; past the cap the oldest non-final ones are dropped.

Terminal updates ("results") are tracked until written, so Hello and heartbeats can list the
attempt as still in flight until jobqd has its result.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from jobq.v1 import node_service_pb2 as pb

log = structlog.get_logger(__name__)

AttemptKey = tuple[str, int]
"""(task_id, attempt): what every update and log chunk is about."""

#: How long a written result is kept for a resend after a broken stream. jobqd commits a result
#: within milliseconds of reading it; seconds leave room for a slow disk.
RESEND_WINDOW_S = 10.0

_TERMINAL = frozenset({pb.UPDATE_KIND_COMPLETED, pb.UPDATE_KIND_FAILED, pb.UPDATE_KIND_ABORTED})


@dataclass(slots=True)
class Outgoing:
    """One queued message and what it holds of the budgets."""

    message: pb.NodeMessage
    cost: int = 0
    """Bytes counted against the log budget (0 for updates)."""
    result: AttemptKey | None = None
    """Set for terminal updates."""


class Outbox:
    """FIFO of NodeMessages with a byte budget for logs; see the module docstring."""

    def __init__(
        self,
        *,
        log_budget_bytes: int,
        max_updates: int,
        hold_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._items: deque[Outgoing] = deque()
        self._budget = log_budget_bytes
        self._log_bytes = 0
        self._max_updates = max_updates
        self._updates = 0
        self._hold_s = hold_s
        self._clock = clock
        self._connected = False
        self._disconnected_at = clock()
        self._results: dict[AttemptKey, int] = {}
        #: results written recently, with when: jobqd may have died before storing them
        self._recent: deque[tuple[float, Outgoing]] = deque()
        self._in_hand = 0
        self._space_waiters: list[asyncio.Future[None]] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.dropped_lines = 0
        """Log lines dropped because jobqd stayed unreachable (for diagnostics)."""

    # -- state ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a stream to jobqd is up (set by the stream)."""
        return self._connected

    def set_connected(self, connected: bool) -> None:
        """Called by the stream; a disconnect starts the clock after which waiting logs drop."""
        if connected == self._connected:
            return
        self._connected = connected
        if not connected:
            self._disconnected_at = self._clock()
        self._wake_space_waiters()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def idle(self) -> bool:
        """Whether everything queued has been written."""
        return self._idle.is_set()

    @property
    def log_bytes(self) -> int:
        """Bytes of log chunks queued or being written."""
        return self._log_bytes

    def undelivered_results(self) -> list[AttemptKey]:
        """Attempts whose terminal update is queued but not yet written."""
        return list(self._results)

    # -- producers -----------------------------------------------------------------------------

    async def put_log(self, message: pb.NodeMessage, cost: int) -> bool:
        """Queue a log chunk; wait while the budget is used up. False if it was dropped instead."""
        while self._log_bytes > 0 and self._log_bytes + cost > self._budget:
            timeout: float | None = None
            if not self._connected:
                waited = self._clock() - self._disconnected_at
                if waited >= self._hold_s:
                    return False
                timeout = self._hold_s - waited
            waiter = asyncio.get_running_loop().create_future()
            self._space_waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                pass
            finally:
                if waiter in self._space_waiters:
                    self._space_waiters.remove(waiter)
        self._log_bytes += cost
        self._append(Outgoing(message, cost=cost))
        return True

    def put_update(
        self,
        *,
        task_id: str,
        attempt: int,
        kind: pb.UpdateKind.ValueType,
        message: str = "",
        exit_code: int | None = None,
        progress: int = 0,
    ) -> None:
        """Queue a TaskUpdate; never waits."""
        outgoing = pb.NodeMessage()
        update = outgoing.update
        update.task_id = task_id
        update.attempt = attempt
        update.kind = kind
        if message:
            update.message = message
        if exit_code is not None:
            update.exit_code = exit_code
        if progress:
            update.progress = progress
        result = (task_id, attempt) if kind in _TERMINAL else None
        if result is not None:
            self._results[result] = self._results.get(result, 0) + 1
        elif self._updates >= self._max_updates:
            self._drop_oldest_update()
        self._updates += 1
        self._append(Outgoing(outgoing, result=result))

    def _append(self, item: Outgoing) -> None:
        self._items.append(item)
        self._idle.clear()
        self._ready.set()

    def _drop_oldest_update(self) -> None:
        for item in self._items:
            if item.cost == 0 and item.result is None:
                self._items.remove(item)
                self._updates -= 1
                log.warning("update dropped: too many buffered", update=str(item.message.update))
                return

    # -- the sender ----------------------------------------------------------------------------

    def take(self) -> Outgoing | None:
        """The next message to write, or None. Give it back with :meth:`sent` or :meth:`unsend`."""
        if not self._items:
            self._ready.clear()
            return None
        self._in_hand += 1
        return self._items.popleft()

    def sent(self, item: Outgoing) -> None:
        """``item`` was written to the stream: release what it held."""
        self._in_hand -= 1
        if item.cost:
            self._log_bytes -= item.cost
            self._wake_space_waiters()
        else:
            self._updates -= 1
        if item.result is not None:
            now = self._clock()
            self._recent.append((now, item))
            while self._recent and self._recent[0][0] < now - RESEND_WINDOW_S:
                self._recent.popleft()
            remaining = self._results.get(item.result, 0) - 1
            if remaining > 0:
                self._results[item.result] = remaining
            else:
                self._results.pop(item.result, None)
        self._check_idle()

    def resend_recent(self) -> int:
        """The stream broke: queue again, first, the results written in the last RESEND_WINDOW_S.

        Written is not stored: if jobqd died between reading a result and committing it, only a
        resend saves the attempt from being rerun. jobqd ignores a result it already has (the lease
        is gone), so a duplicate costs nothing. Returns how many were queued again.
        """
        cutoff = self._clock() - RESEND_WINDOW_S
        again = [item for t, item in self._recent if t >= cutoff]
        self._recent.clear()
        for item in reversed(again):
            assert item.result is not None
            self._results[item.result] = self._results.get(item.result, 0) + 1
            self._updates += 1
            self._items.appendleft(item)
        if again:
            self._idle.clear()
            self._ready.set()
        return len(again)

    def unsend(self, item: Outgoing) -> None:
        """Writing ``item`` failed: put it back at the front, to go first on the next stream."""
        self._in_hand -= 1
        self._items.appendleft(item)
        self._ready.set()

    async def wait_ready(self) -> None:
        """Until something may be queued (spurious wake-ups allowed: :meth:`take` may say None)."""
        await self._ready.wait()

    def wake(self) -> None:
        """Wake the sender (e.g. when a heartbeat falls due earlier)."""
        self._ready.set()

    async def wait_idle(self) -> None:
        """Until everything queued has been written."""
        await self._idle.wait()

    def _check_idle(self) -> None:
        if not self._items and self._in_hand == 0:
            self._idle.set()

    def _wake_space_waiters(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
