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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import aiosqlite

from jobqd.domain.errors import Unavailable
from jobqd.domain.events import Event
from jobqd.store import statements as sql


class WriteSet:
    """The rows one command writes, grouped by statement, plus the events it emits."""

    __slots__ = ("events", "rows", "touched")

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[object, ...]]] = {}
        self.events: list[Event] = []
        #: id → job whose task counters changed; the engine writes each such job row once, when
        #: the command is complete (see `Engine._save_touched`)
        self.touched: dict[str, object] = {}

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


def merge(sets: Iterable[WriteSet]) -> list[dict[str, list[tuple[object, ...]]]]:
    """Rows of consecutive write sets merged per statement (one `executemany` each, in
    `statements.ORDER`), split into segments so that no set's inserts run before an earlier set's
    deletes.

    Within one segment all upserts run before all deletes. That is only right while no set writes
    a row that an earlier set of the same segment deleted — a queue deleted and created again, a
    blocklist entry cleared and counted again: merged, the new row was written and then deleted
    (found by tests/integration/robustness). So a set with upserts that follows a set with deletes
    starts a new segment. Deletes are rare (DeleteQueue, DeleteJob, archiving, blocklist clears),
    so nearly every batch stays one segment. All segments commit in the one transaction.
    """
    segments: list[dict[str, list[tuple[object, ...]]]] = []
    current: dict[str, list[tuple[object, ...]]] = {}
    deleted = False
    for ws in sets:
        if deleted and not sql.UPSERTS.isdisjoint(ws.rows):
            segments.append(current)
            current, deleted = {}, False
        for stmt, rows in ws.rows.items():
            current.setdefault(stmt, []).extend(rows)
        if not sql.DELETES.isdisjoint(ws.rows):
            deleted = True
    if current:
        segments.append(current)
    return segments


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
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._window = window
        self._on_commit = on_commit
        self._on_failure = on_failure
        #: why the writer refuses writes after a failed commit ("" = it does not); see `_commit`
        self.failed = ""
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
        if self.failed:
            fut.set_exception(Unavailable(self.failed))
            fut.add_done_callback(_retrieve)  # background commits nobody awaits: no GC warning
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
        segments = merge(ws for ws, _ in batch)
        events: list[Event] = [ev for ws, _ in batch for ev in ws.events]
        t0 = time.perf_counter()
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                for merged in segments:
                    for stmt in sorted(merged, key=sql.RANK.__getitem__):
                        await self._conn.executemany(stmt, merged[stmt])
                await self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._conn.execute("ROLLBACK")
                raise
        except Exception as err:
            # The engine changed memory before handing in these writes, so memory is now ahead
            # of the disk. Committing anything more could store rows that depend on the lost
            # ones (a task of a job that was never written): from here on every write fails,
            # until jobqd restarts and reloads what is really on disk (jobqd.daemon).
            self.stats.failures += 1
            self.stats.last_error = str(err)
            self.failed = (
                f"the store is read-only after a failed write ({err}); "
                "jobqd refuses changes until it is restarted"
            )
            exc = Unavailable(f"the store could not write: {err}")
            queued, self._queue = self._queue, []
            for _, fut in batch + queued:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.add_done_callback(_retrieve)
            if self._on_failure is not None:
                self._on_failure(err)
            return
        st = self.stats
        st.batches += 1
        st.sets += len(batch)
        st.rows += sum(len(r) for merged in segments for r in merged.values())
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


def _retrieve(fut: asyncio.Future[None]) -> None:
    """Mark a failed future's exception as seen; whoever awaits it still gets it."""
    if not fut.cancelled():
        fut.exception()
