"""The one writer: group commit over a connection of its own.

Commands hand in a `WriteSet` and await it. The writer takes everything queued so far (up to
`max_batch` sets, after waiting at most `window` for more to arrive), applies it in one transaction
and resolves every caller's future only after COMMIT returned — with `synchronous=FULL` that is
after fsync, so an acknowledged request survives kill -9. One fsync then pays for many requests,
which is where the throughput comes from (DESIGN §7).

Where the statements run. Python's sqlite3 releases the GIL around every row it steps, so a
thread that inserts a batch row by row must win the GIL back from the busy event loop once per
row. Measured under 32 concurrent submitters, that made a batch of ~16 submits (~100 rows, 0.1 ms
of SQLite work) take 7 ms in the thread, and the commit cycle (10 ms) bounded the throughput while
the loop sat idle waiting for it. So a small batch's statements run on the loop itself (tens of
microseconds, nothing to wait for) and only COMMIT, the fsync, goes to the writer's thread: one
GIL round trip per batch. A large batch (an archive sweep, a bulk action over thousands of jobs)
runs entirely in the thread so that it cannot stall the loop. The connection never blocks the loop
on a lock either: its busy timeout is zero on the loop, and a busy database (a checkpoint or a
token write on another connection) sends the batch to the thread, which waits there.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobqd.domain.errors import Unavailable
from jobqd.domain.events import Event
from jobqd.store import statements as sql

#: Rows of a batch per statement, in segments (see `merge`).
Segments = list[dict[str, list[tuple[object, ...]]]]


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


def merge(sets: Iterable[WriteSet]) -> Segments:
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
    segments: Segments = []
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


#: Batches of at most this many rows run their statements on the event loop (~3 µs a row).
LOOP_ROWS = 256

#: How long a batch in the writer's thread waits for a lock another connection holds.
BUSY_TIMEOUT_MS = 5000


class Writer:
    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        max_batch: int = 1024,
        window: float = 0.001,
        loop_rows: int = LOOP_ROWS,
        on_commit: Callable[[Sequence[Event]], None] | None = None,
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        """`db`: a connection only this writer uses, opened with `database.connect_writer`."""
        self._db = db
        self._db.execute("PRAGMA busy_timeout=0")
        self._thread = _Thread()
        self._loop_rows = loop_rows
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
        rows = sum(len(r) for merged in segments for r in merged.values())
        t0 = time.perf_counter()
        try:
            if rows <= self._loop_rows and self._begin_on_loop(segments):
                await self._thread.call(self._commit_now)
            else:
                await self._thread.call(self._transaction, segments)
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
        st.rows += rows
        st.commit_seconds += time.perf_counter() - t0
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)
        if events and self._on_commit is not None:
            self._on_commit(events)

    def _begin_on_loop(self, segments: Segments) -> bool:
        """Run a small batch's statements here, on the loop; False (nothing done) if another
        connection holds the write lock, so the batch must wait for it in the thread."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            if err.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:  # and its extended codes
                return False
            raise
        self._apply(segments)
        return True

    def _transaction(self, segments: Segments) -> None:
        """The whole transaction, in the writer's thread, waiting for locks if it must."""
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._apply(segments)
            self._commit_now()
        finally:
            with contextlib.suppress(sqlite3.Error):  # never instead of the error being raised
                self._db.execute("PRAGMA busy_timeout=0")

    def _apply(self, segments: Segments) -> None:
        """The batch's statements, inside the transaction just begun; rolled back if one fails."""
        try:
            for merged in segments:
                for stmt in sorted(merged, key=sql.RANK.__getitem__):
                    self._db.executemany(stmt, merged[stmt])
        except BaseException:
            self._rollback()
            raise

    def _commit_now(self) -> None:
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()  # a failed COMMIT (disk full, I/O error) can leave the transaction open
            raise

    def _rollback(self) -> None:
        """End the failed transaction, unless SQLite already has (it rolls back by itself on a
        full disk or an I/O error): the error that failed the batch is the one to report, not
        "cannot rollback - no transaction is active"."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    async def close(self) -> None:
        """Stop taking writes; `run` returns once everything queued is committed."""
        self._closed = True
        self._wakeup.set()

    async def release(self) -> None:
        """Close the connection, after whatever is still running in the writer's thread."""
        await self._thread.call(self._db.close)
        self._thread.stop()


class _Thread:
    """The writer's thread: runs calls one after the other, each answered through a future.

    What `run_in_executor` on a one-thread pool does, without its bookkeeping (a pool future, a
    lock, a work item, a second future chained to the first): this thread is handed two calls
    per batch, hundreds of batches a second under load.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="jobqd-store", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._calls.put((loop, fut, fn, args))
        return fut

    def stop(self) -> None:
        self._calls.put(None)

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            loop, fut, fn, args = item
            try:
                result = fn(*args)
            except BaseException as err:  # handed to the awaiting coroutine
                _answer(loop, fut.set_exception, fut, err)
            else:
                _answer(loop, fut.set_result, fut, result)


def _answer(
    loop: asyncio.AbstractEventLoop, setter: Callable[[Any], None], fut: asyncio.Future[Any], value: Any
) -> None:
    def deliver() -> None:
        if not fut.done():  # the awaiting coroutine may have been cancelled meanwhile
            setter(value)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(deliver)


def _retrieve(fut: asyncio.Future[None]) -> None:
    """Mark a failed future's exception as seen; whoever awaits it still gets it."""
    if not fut.cancelled():
        fut.exception()
