"""The group-commit writer on a real SQLite file: where a batch's statements run (on the event loop
for a small batch, in the writer's thread for a large one or while another connection holds the
write lock) changes nothing about what is stored, a busy database never stalls the loop, and a
failed batch leaves nothing behind on either path."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from jobqd.domain.errors import Unavailable
from jobqd.store import statements as sql
from jobqd.store.database import DB_NAME, connect_writer, open_db
from jobqd.store.writer import Writer, WriteSet


def queue_set(name: str) -> WriteSet:
    ws = WriteSet()
    ws.add(sql.UPSERT_QUEUE, (name, "{}", "BestEffortFIFO", "Never", "active"))
    return ws


def queues(data: Path) -> list[str]:
    with sqlite3.connect(data / DB_NAME) as db:
        return sorted(name for (name,) in db.execute("SELECT name FROM queues"))


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    conn = await open_db(tmp_path)  # creates and migrates the file
    await conn.close()
    return tmp_path


async def run_writer(writer: Writer, *sets: WriteSet) -> list[BaseException | None]:
    """Queue `sets` as one batch, run the writer until it has committed them, stop it."""
    futures = [writer.submit(ws) for ws in sets]
    task = asyncio.create_task(writer.run())
    results = await asyncio.gather(*futures, return_exceptions=True)
    await writer.close()
    await task
    await writer.release()
    return [r if isinstance(r, BaseException) else None for r in results]


@pytest.mark.parametrize("loop_rows", [256, 0], ids=["on-the-loop", "in-the-thread"])
async def test_both_paths_store_the_same_rows(data: Path, loop_rows: int) -> None:
    writer = Writer(connect_writer(data), window=0, loop_rows=loop_rows)
    assert await run_writer(writer, queue_set("a"), queue_set("b"), queue_set("c")) == [None] * 3
    assert writer.stats.batches == 1 and writer.stats.rows == 3
    assert queues(data) == ["a", "b", "c"]


async def test_a_busy_database_does_not_stall_the_loop(data: Path) -> None:
    """Another connection holds the write lock (as a WAL checkpoint or a token write does): the
    batch waits for it in the writer's thread while the loop keeps running, then commits."""
    other = sqlite3.connect(data / DB_NAME, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    writer = Writer(connect_writer(data), window=0)
    fut = writer.submit(queue_set("late"))
    task = asyncio.create_task(writer.run())
    ticks = 0
    while ticks < 200:  # the loop turns while the writer waits for the lock
        await asyncio.sleep(0.001)
        ticks += 1
    assert not fut.done()
    other.execute("COMMIT")
    await fut
    assert queues(data) == ["late"]
    await writer.close()
    await task
    await writer.release()
    other.close()


@pytest.mark.parametrize("loop_rows", [256, 0], ids=["on-the-loop", "in-the-thread"])
async def test_a_failed_batch_leaves_nothing_and_the_writer_refuses_more(data: Path, loop_rows: int) -> None:
    writer = Writer(connect_writer(data), window=0, loop_rows=loop_rows)
    bad = WriteSet()
    bad.add(sql.INSERT_EVENT, (1, 0.0, "job-submitted", "j", "", "", "", "", "", "", 0, "", 0, 0))
    bad.add(sql.INSERT_EVENT, (1, 0.0, "job-submitted", "j", "", "", "", "", "", "", 0, "", 0, 0))  # same seq
    results = await run_writer(writer, queue_set("kept-out"), bad)
    assert all(isinstance(r, Unavailable) for r in results)
    assert "UNIQUE constraint failed" in writer.failed
    assert queues(data) == []  # the good set of the batch was rolled back with the bad one
    with pytest.raises(Unavailable):
        await writer.submit(queue_set("after"))


@pytest.mark.parametrize("loop_rows", [256, 0], ids=["on-the-loop", "in-the-thread"])
async def test_a_full_database_is_reported_as_full(data: Path, loop_rows: int) -> None:
    """SQLite rolls back by itself when the file cannot grow; the error reported must be that one,
    not the failure of a second ROLLBACK."""
    db = connect_writer(data)
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count={pages}")  # the file may not grow by one page more
    writer = Writer(db, window=0, loop_rows=loop_rows)
    big = WriteSet()
    for i in range(50):
        big.add(sql.INSERT_CHUNK, (f"job{i}", 0, "x" * 4000))
    results = await run_writer(writer, queue_set("kept-out"), big)
    assert all(isinstance(r, Unavailable) for r in results)
    assert "full" in writer.failed and "cannot rollback" not in writer.failed
    assert queues(data) == []
