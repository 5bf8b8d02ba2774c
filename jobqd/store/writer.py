"""The one writer: group commit over a single aiosqlite connection.

Commands hand in a `WriteSet` and await it. The writer takes everything queued so far (up to
`max_batch` sets, after waiting at most `window` for more to arrive), applies it in one transaction
and resolves every caller's future only after COMMIT returned — with `synchronous=FULL` that is
after fsync, so an acknowledged request survives kill -9. One fsync then pays for many requests,
which is where the throughput comes from (DESIGN §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiosqlite

from jobqd.domain.errors import Unavailable
from jobqd.domain.events import Event
from jobqd.store import statements as sql


class WriteSet:
    """The rows one command writes, grouped by statement, plus the events it emits."""

    __slots__ = ("events", "rows")

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[object, ...]]] = {}
        self.events: list[Event] = []

    def add(self, stmt: str, row: tuple[object, ...]) -> None:
        rows = self.rows.get(stmt)
        if rows is None:
            self.rows[stmt] = [row]
        else:
            rows.append(row)

    def event(self, ev: Event) -> None:
        self.events.append(ev)
        self.add(sql.INSERT_EVENT, ev.row())

    def __bool__(self) -> bool:
        return bool(self.rows)


@dataclass(slots=True)
class BatchStats:
    """Counters the metrics endpoint and the benchmark read."""

    batches: int = 0
    sets: int = 0
    rows: int = 0
    commit_seconds: float = 0.0
    failures: int = 0
    last_error: str = ""
    sizes: list[int] = field(default_factory=list)


class Writer:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        max_batch: int = 1024,
        window: float = 0.001,
        on_commit: Callable[[Sequence[Event]], None] | None = None,
    ) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._window = window
        self._on_commit = on_commit
        self._queue: list[tuple[WriteSet, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._closed = False
        self.stats = BatchStats()

    def submit(self, ws: WriteSet) -> asyncio.Future[None]:
        """Queue `ws`; the future resolves once it is durable (or fails with Unavailable)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.set_exception(Unavailable("the store is closed (jobqd is shutting down)"))
            return fut
        if not ws:
            fut.set_result(None)
            return fut
        self._queue.append((ws, fut))
        self._wakeup.set()
        return fut

    async def write(self, ws: WriteSet) -> None:
        await self.submit(ws)

    async def run(self) -> None:
        """Commit batches until closed and drained."""
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._window and len(self._queue) < self._max_batch:
                # let concurrent requests that are already on their way join this batch
                await asyncio.sleep(self._window)
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[WriteSet, asyncio.Future[None]]]) -> None:
        merged: dict[str, list[tuple[object, ...]]] = {}
        events: list[Event] = []
        for ws, _ in batch:
            for stmt, rows in ws.rows.items():
                merged.setdefault(stmt, []).extend(rows)
            events.extend(ws.events)
        t0 = time.perf_counter()
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in sorted(merged, key=sql.RANK.__getitem__):
                    await self._conn.executemany(stmt, merged[stmt])
                await self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._conn.execute("ROLLBACK")
                raise
        except Exception as err:
            self.stats.failures += 1
            self.stats.last_error = str(err)
            exc = Unavailable(f"the store could not write: {err}")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        st = self.stats
        st.batches += 1
        st.sets += len(batch)
        st.rows += sum(len(r) for r in merged.values())
        st.commit_seconds += time.perf_counter() - t0
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)
        if events and self._on_commit is not None:
            self._on_commit(events)

    async def close(self) -> None:
        """Stop taking writes; `run` returns once everything queued is committed."""
        self._closed = True
        self._wakeup.set()
