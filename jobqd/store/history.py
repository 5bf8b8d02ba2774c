"""Reads of what is no longer in memory: archived jobs and the stored event log.

Uses its own read-only connection, so long history scans never queue behind the writer (WAL lets
readers see the last committed state while the writer works).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite

from jobqd.domain.events import Event, EventType
from jobqd.domain.model import Job
from jobqd.domain.states import JobStatus
from jobqd.engine import JobFilter
from jobqd.store.database import DB_NAME
from jobqd.store.loader import attach_tasks, job_from_row

_PAGE = 2000


class History:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, data_dir: Path) -> History:
        conn = await aiosqlite.connect(f"file:{data_dir / DB_NAME}?mode=ro", uri=True, isolation_level=None)
        await conn.execute("PRAGMA busy_timeout=5000")
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def _job(self, row: tuple[object, ...]) -> Job:
        job_id = str(row[0])
        async with self._conn.execute(
            "SELECT tasks FROM archive_task_chunks WHERE job_id = ? ORDER BY offset", (job_id,)
        ) as cur:
            chunks = [str(r[0]) async for r in cur]
        job = job_from_row(row, chunks)
        async with self._conn.execute("SELECT * FROM archive_tasks WHERE job_id = ?", (job_id,)) as cur:
            rows = [tuple(r) async for r in cur]
        attach_tasks(job, rows)
        return job

    async def archived_job(self, job_id: str) -> Job | None:
        async with self._conn.execute("SELECT * FROM archive_jobs WHERE id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return await self._job(tuple(row)) if row else None

    async def archived_statuses(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        for job_id in job_ids:
            async with self._conn.execute("SELECT status FROM archive_jobs WHERE id = ?", (job_id,)) as cur:
                row = await cur.fetchone()
            if row:
                out[job_id] = JobStatus(row[0])
        return out

    async def archived_jobs(self, flt: JobFilter, *, after_seq: int, limit: int) -> list[Job]:
        clauses = ["seq > ?"]
        params: list[object] = [after_seq]
        if flt.statuses:
            clauses.append(f"status IN ({','.join('?' * len(flt.statuses))})")
            params.extend(s.value for s in flt.statuses)
        if flt.queues:
            clauses.append(f"queue IN ({','.join('?' * len(flt.queues))})")
            params.extend(flt.queues)
        if flt.owner:
            clauses.append("owner = ?")
            params.append(flt.owner)
        if flt.name_prefix:
            clauses.append("substr(name, 1, ?) = ?")
            params.extend([len(flt.name_prefix), flt.name_prefix])
        out: list[Job] = []
        last = after_seq
        while len(out) < limit:
            query = f"SELECT * FROM archive_jobs WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT {_PAGE}"
            params[0] = last
            async with self._conn.execute(query, params) as cur:
                rows = [tuple(r) async for r in cur]
            if not rows:
                break
            for row in rows:
                last = int(row[1])
                job = await self._job(row)
                if flt.matches(job):
                    out.append(job)
                    if len(out) == limit:
                        break
        return out

    async def events(
        self, *, after: int, upto: int, job_ids: frozenset[str], types: frozenset[EventType]
    ) -> AsyncIterator[Event]:
        last = after
        while last < upto:
            async with self._conn.execute(
                "SELECT * FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?", (last, upto, _PAGE)
            ) as cur:
                rows = [tuple(r) async for r in cur]
            if not rows:
                return
            for row in rows:
                ev = Event.from_row(row)
                last = ev.seq
                if (job_ids and ev.job_id not in job_ids) or (types and ev.type not in types):
                    continue
                yield ev
