"""Start-up: read the live state from SQLite into the engine.

Archived jobs stay on disk (they are read on demand by `jobqd.store.history`); everything else —
jobs, their materialized tasks, queues, request ids, the blocklist and the event sequence — is
loaded so the engine can answer from memory.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict

import aiosqlite

from jobqd.domain import admission as math
from jobqd.domain.model import Job
from jobqd.domain.states import AdmissionPhase, JobStatus, TaskStatus
from jobqd.engine import Engine
from jobqd.store import codec


async def load_queues(conn: aiosqlite.Connection) -> dict[str, math.QueueDef]:
    out: dict[str, math.QueueDef] = {}
    async with conn.execute("SELECT name, quotas, strategy, preemption, state FROM queues") as cur:
        async for name, quotas, strategy, preemption, state in cur:
            out[name] = math.QueueDef(
                name,
                json.loads(quotas),
                math.Strategy(strategy),
                math.Preemption(preemption),
                math.QueueState(state),
            )
    return out


def job_from_row(row: tuple[object, ...], chunks: list[str]) -> Job:
    (job_id, seq, request_id, owner, _name, _queue, _prio, defn, status, admission, reason, generation,
     submit_ts, admit_ts, start_ts, finish_ts, flavor, rest_status, total, _counts) = row  # fmt: skip
    job = Job(
        job_id=str(job_id),
        seq=int(seq),  # type: ignore[call-overload]
        defn=codec.load_defn(str(defn), chunks),
        owner=str(owner),
        submit_ts=float(submit_ts),  # type: ignore[arg-type]
        status=JobStatus(str(status)),
        request_id=str(request_id),
    )
    job.admission = AdmissionPhase(str(admission))
    job.reason = str(reason)
    job.generation = int(generation)  # type: ignore[call-overload]
    job.admit_ts = float(admit_ts)  # type: ignore[arg-type]
    job.start_ts = float(start_ts)  # type: ignore[arg-type]
    job.finish_ts = float(finish_ts)  # type: ignore[arg-type]
    job.flavor = str(flavor)
    job.total = int(total)  # type: ignore[call-overload]
    job.rest_status = TaskStatus(str(rest_status))
    job.counts[TaskStatus.QUEUED] = 0  # Job() counted every task queued; they are rest_status
    job.counts[job.rest_status] = job.total  # until attach_tasks moves the stored rows out
    return job


def attach_tasks(job: Job, rows: list[tuple[object, ...]]) -> None:
    """Put loaded task rows into `job`, rebuilding counters, the ready heap and dependency links."""
    if job.defn.tasks and any(t.depends_on for t in job.defn.tasks):
        from jobqd.domain.graph import resolve_dependencies

        deps = resolve_dependencies(job.defn.tasks)
        children: dict[int, list[int]] = defaultdict(list)
        for pos, parents in enumerate(deps):
            for p in parents:
                children[p].append(pos)
        job.dep_children = {p: tuple(c) for p, c in children.items()}
    else:
        deps = ()
    for row in rows:
        t = codec.task_from_row(row)
        job.tasks[t.pos] = t
        job.counts[job.rest_status] -= 1
        job.counts[t.status] += 1
    if deps:
        for pos, parents in enumerate(deps):
            t = job.task(pos)
            t.waiting_on = frozenset(p for p in parents if job.status_of(p) is not TaskStatus.COMPLETED)
        job.cursor = job.total
    job.ready = [
        t.pos
        for t in job.tasks.values()
        if t.status in (TaskStatus.QUEUED, TaskStatus.SOFT_FAILED) and not t.waiting_on
    ]
    heapq.heapify(job.ready)


async def load_engine(conn: aiosqlite.Connection, engine: Engine) -> None:
    chunks: dict[str, list[str]] = defaultdict(list)
    async with conn.execute("SELECT job_id, tasks FROM task_chunks ORDER BY job_id, offset") as cur:
        async for job_id, tasks in cur:
            chunks[job_id].append(tasks)
    task_rows: dict[str, list[tuple[object, ...]]] = defaultdict(list)
    async with conn.execute("SELECT * FROM tasks") as cur:
        async for row in cur:
            task_rows[row[0]].append(tuple(row))
    async with conn.execute("SELECT * FROM jobs ORDER BY seq") as cur:
        async for row in cur:
            job = job_from_row(tuple(row), chunks.get(row[0], []))
            attach_tasks(job, task_rows.get(job.id, []))
            engine.jobs[job.id] = job
            for dep in job.defn.depends_on:
                engine.dependents.setdefault(dep.job_id, set()).add(job.id)
    async with conn.execute("SELECT request_id, job_id, digest FROM requests") as cur:
        async for request_id, job_id, digest in cur:
            engine.requests[request_id] = (job_id, digest)
    async with conn.execute("SELECT job_id, task_type, node, failures FROM blocklist") as cur:
        async for job_id, task_type, node, failures in cur:
            engine.blocklist[(job_id, task_type, node)] = failures
    async with conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events") as cur:
        last = await cur.fetchone()
        engine.next_event_seq = int(last[0]) + 1 if last else 1
    async with conn.execute(
        "SELECT MAX(seq) FROM (SELECT MAX(seq) AS seq FROM jobs UNION ALL SELECT MAX(seq) FROM archive_jobs)"
    ) as cur:
        top = await cur.fetchone()
        engine.next_job_seq = int(top[0] or 0) + 1 if top else 1
