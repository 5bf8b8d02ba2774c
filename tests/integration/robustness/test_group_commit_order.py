"""Group commit must not reorder one command's writes before an earlier command's delete.

Found with concurrent clients: a queue deleted and re-created while the writer was busy landed in
one batch; the batch ran all upserts before all deletes, so the re-created queue was deleted on
disk while jobqd kept serving it from memory — after a restart it was gone. Same for a blocklist
entry counted again right after it was cleared. Here the two commands are put into one batch
deterministically (both queued before the writer runs), on a real SQLite file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from jobqd.admission.local import LocalAdmission
from jobqd.domain import admission as amath
from jobqd.engine import Engine
from jobqd.store import statements as sql
from jobqd.store.database import connect_writer, open_db
from jobqd.store.loader import load_queues
from jobqd.store.writer import Writer, WriteSet


async def _one_batch(data: Path, *sets: WriteSet) -> None:
    """Commit `sets` as one group-commit batch (all queued before the writer starts)."""
    conn = await open_db(data)  # creates and migrates the file
    writer = Writer(connect_writer(data), window=0)
    futures = [writer.submit(ws) for ws in sets]
    task = asyncio.create_task(writer.run())
    await asyncio.gather(*futures)
    assert writer.stats.batches == 1
    await writer.close()
    await task
    await writer.release()
    await conn.close()


async def _queues(data: Path) -> set[str]:
    conn = await open_db(data)
    try:
        return set(await load_queues(conn))
    finally:
        await conn.close()


async def _blocklist(data: Path) -> dict[tuple[str, str, str], int]:
    conn = await open_db(data)
    try:
        async with conn.execute("SELECT job_id, task_type, node, failures FROM blocklist") as cur:
            return {(j, t, n): f async for j, t, n, f in cur}
    finally:
        await conn.close()


async def test_queue_deleted_then_recreated_in_one_batch_survives(tmp_path: Path) -> None:
    data = tmp_path / "d"
    conn = await open_db(data)
    admission = LocalAdmission({})
    writer = Writer(connect_writer(data), window=0)
    Engine(writer=writer, admission=admission)
    first = WriteSet()
    admission.ensure_default(first)
    admission.create(first, amath.QueueDef("q1"))
    await writer.release()
    await conn.close()
    await _one_batch(data, first)
    assert await _queues(data) == {"default", "q1"}

    # the same commands as DeleteQueue then CreateQueue, answered from one batch
    delete, create = WriteSet(), WriteSet()
    admission.delete(delete, "q1")
    admission.create(create, amath.QueueDef("q1", {"cpu": 4000}))
    await _one_batch(data, delete, create)
    assert await _queues(data) == {"default", "q1"}  # memory has q1: so must the disk

    # and the other way round: created then deleted in one batch
    create2, delete2 = WriteSet(), WriteSet()
    admission.create(create2, amath.QueueDef("q2"))
    admission.delete(delete2, "q2")
    await _one_batch(data, create2, delete2)
    assert await _queues(data) == {"default", "q1"}


async def test_blocklist_cleared_then_counted_again_in_one_batch_keeps_the_new_count(tmp_path: Path) -> None:
    data = tmp_path / "d"
    key = ("job1", "exec", "n1")
    counted = WriteSet()
    counted.add(sql.UPSERT_BLOCKLIST, (*key, 2))
    await _one_batch(data, counted)
    clear, again = WriteSet(), WriteSet()
    clear.add(sql.DELETE_BLOCKLIST, key)  # ClearBlocklist / requeue
    again.add(sql.UPSERT_BLOCKLIST, (*key, 1))  # the next failure on that node
    await _one_batch(data, clear, again)
    assert await _blocklist(data) == {key: 1}
