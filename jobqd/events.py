"""Fan-out of committed events to WatchEvents streams.

The writer publishes a batch only after it is durable, so a watcher never sees an event that a
crash could take back. Each subscriber has a bounded queue; one that falls too far behind is cut
off (it gets None and the stream ends with RESOURCE_EXHAUSTED) instead of growing memory without
bound — it resumes from the last sequence it saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from jobqd.domain.events import Event


class EventHub:
    def __init__(self, *, last_seq: int = 0, max_backlog: int = 100_000) -> None:
        self._subs: set[asyncio.Queue[Event | None]] = set()
        self._last_seq = last_seq
        self._max_backlog = max_backlog
        self.closed = False

    @property
    def last_seq(self) -> int:
        """Sequence of the last committed event."""
        return self._last_seq

    def start_at(self, last_seq: int) -> None:
        """Set the sequence already committed before this process started (after loading)."""
        self._last_seq = last_seq

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        self._last_seq = events[-1].seq
        for q in list(self._subs):
            if q.qsize() + len(events) > self._max_backlog:
                self._subs.discard(q)
                q.put_nowait(None)
                continue
            for ev in events:
                q.put_nowait(ev)

    def subscribe(self) -> asyncio.Queue[Event | None]:
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subs.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event | None]) -> None:
        self._subs.discard(q)

    def close(self) -> None:
        """End every stream (shutdown)."""
        self.closed = True
        for q in list(self._subs):
            q.put_nowait(None)
        self._subs.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subs)
