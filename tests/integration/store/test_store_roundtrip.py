"""The store with a real SQLite file: everything the engine acknowledged loads back identically;
finished jobs move to the archive and stay readable; events are gap-free; newer schemas are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from jobqd.admission.local import LocalAdmission
from jobqd.domain.errors import FailedPrecondition
from jobqd.domain.model import ArrayDef, CommandDef, JobDef, TaskDef
from jobqd.domain.rules import JobAction
from jobqd.domain.states import JobStatus, TaskStatus
from jobqd.engine import Engine, JobFilter, SubmitItem
from jobqd.store.database import connect_writer, open_db
from jobqd.store.history import History
from jobqd.store.loader import load_engine, load_queues
from jobqd.store.schema import SCHEMA_VERSION
from jobqd.store.writer import Writer, WriteSet

ECHO = (CommandDef("exec", {"argv": ["echo", "{index}"]}),)


class Store:
    def __init__(
        self, conn: aiosqlite.Connection, engine: Engine, writer: Writer, task: asyncio.Task[None]
    ) -> None:
        self.conn, self.engine, self.writer, self.task = conn, engine, writer, task
        self.closed = False

    @classmethod
    async def open(cls, data: Path) -> Store:
        conn = await open_db(data)
        writer = Writer(connect_writer(data), window=0)
        admission = LocalAdmission(await load_queues(conn))
        engine = Engine(writer=writer, admission=admission)
        await load_engine(conn, engine)
        task = asyncio.create_task(writer.run())
        ws = WriteSet()
        admission.ensure_default(ws)
        for job in list(engine.jobs.values()):
            admission.job_changed(job)
        await engine.commit_background(ws)
        return cls(conn, engine, writer, task)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self.writer.close()
        await self.task
        await self.writer.release()
        await self.conn.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data")
    yield s
    await s.close()


def snapshot(engine: Engine) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for job in engine.jobs.values():
        tasks = tuple(
            (p, t.status, t.attempt, t.node, t.failed_by, t.interruptions, t.message)
            for p, t in sorted(job.tasks.items())
        )
        out[job.id] = (
            job.defn, job.status, job.admission, job.reason, job.generation, job.total, dict(job.counts),
            job.rest_status, job.owner, job.request_id, job.submit_ts, job.finish_ts, tasks,
        )  # fmt: skip
    return out


async def test_state_loads_back_identically(store: Store, tmp_path: Path) -> None:
    e = store.engine
    arr = JobDef(name="arr", tasks=None, array=ArrayDef(TaskDef("", "exec", ECHO), 1, 1000))
    deps = JobDef(
        name="deps",
        tasks=(
            TaskDef("a", "exec", ECHO),
            TaskDef("b", "exec", ECHO, ("a",)),
            TaskDef("c", "exec", ECHO, ("a", "b")),
        ),
        labels={"team": "x"},
        resources={"cpu": 2000},
        resources_text={"cpu": "2"},
    )
    [(a, _), (b, _)] = await e.submit([SubmitItem(arr, "req-1", "d1"), SubmitItem(deps, "", "")])
    [(draft, _)] = await e.submit([SubmitItem(JobDef(name="draft", tasks=()), "", "", draft=True)])
    await e.add_tasks(draft.id, offset=0, tasks=[TaskDef(str(i), "exec", ECHO) for i in range(5)])
    await e.act(JobAction.PAUSE, job_ids=[a.id])
    await e.cancel_tasks(b, [2], "not needed")
    before = snapshot(e)
    await store.close()
    again = await Store.open(tmp_path / "data")
    try:
        assert snapshot(again.engine) == before
        assert again.engine.requests["req-1"] == (a.id, "d1")
        loaded_b = again.engine.jobs[b.id]
        assert loaded_b.task(1).waiting_on == frozenset({0})
        assert again.engine.jobs[draft.id].status is JobStatus.UNDER_CONSTRUCTION
        assert again.engine.jobs[a.id].counts[TaskStatus.PAUSED] == 1000
    finally:
        await again.close()


async def test_archive_keeps_finished_jobs_listable(store: Store, tmp_path: Path) -> None:
    e = store.engine
    [(j, _)] = await e.submit([SubmitItem(JobDef(name="old", tasks=(TaskDef("t", "exec", ECHO),)), "", "")])
    [(keep, _)] = await e.submit(
        [SubmitItem(JobDef(name="live", tasks=(TaskDef("t", "exec", ECHO),)), "", "")]
    )
    await e.act(JobAction.CANCEL, job_ids=[j.id])
    old = e.archive_candidates(older_than=e.clock.now() + 1)
    assert [x.id for x in old] == [j.id]
    await e.archive(old)
    assert j.id not in e.jobs and keep.id in e.jobs
    history = await History.open(tmp_path / "data")
    try:
        got = await history.archived_job(j.id)
        assert got is not None and got.status is JobStatus.CANCELED and got.defn.name == "old"
        listed = await history.archived_jobs(JobFilter(), after_seq=0, limit=10)
        assert [x.id for x in listed] == [j.id]
        assert (await history.archived_statuses([j.id, keep.id])) == {j.id: JobStatus.CANCELED}
        seqs = [
            ev.seq
            async for ev in history.events(
                after=0, upto=e.next_event_seq - 1, job_ids=frozenset(), types=frozenset()
            )
        ]
        assert seqs == list(range(1, e.next_event_seq))
    finally:
        await history.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    conn = await open_db(data)
    await conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    await conn.close()
    with pytest.raises(FailedPrecondition, match="newer than this jobqd"):
        await open_db(data)


async def test_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "jobq.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(FailedPrecondition, match="corrupt or not a SQLite database"):
        await open_db(data)
