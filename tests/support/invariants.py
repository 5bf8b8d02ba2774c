"""Read-only consistency checks of a jobqd data directory (its SQLite file), for robustness tests.

Open the store after jobqd stopped (or was killed): the file is opened read-only (`mode=ro`), so a
check never changes what it inspects. `check_store` returns a list of human-readable problems
(empty = consistent):

* ``PRAGMA integrity_check`` is ``ok``;
* every job's stored per-status task counters (``jobs.counts``) equal its task rows plus the
  unmaterialized rest (``total - rows``, all in ``rest_status``), and their sum is ``total``;
* task rows belong to an existing job and have a position inside it;
* no task is ``active`` without a node; a finished job has no active task;
* request ids point at existing jobs;
* ``events.seq`` is gap-free from 1.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

#: Order of the comma-separated `jobs.counts` column (jobqd.domain.states.TaskStatus).
TASK_STATUSES = ("queued", "active", "completed", "soft-failed", "failed", "canceled", "paused")
TERMINAL_JOB = frozenset({"completed", "failed", "canceled"})
DB_NAME = "jobq.db"


def connect_ro(data_dir: Path) -> sqlite3.Connection:
    """A read-only connection to the store of `data_dir`."""
    return sqlite3.connect(f"file:{data_dir / DB_NAME}?mode=ro", uri=True)


def check_store(data_dir: Path) -> list[str]:
    conn = connect_ro(data_dir)
    try:
        return _check(conn)
    finally:
        conn.close()


def assert_store_consistent(data_dir: Path) -> dict[str, int]:
    """Raise AssertionError listing every problem; return a few counts for the test's report."""
    problems = check_store(data_dir)
    assert not problems, "store invariants violated:\n  " + "\n  ".join(problems[:50])
    conn = connect_ro(data_dir)
    try:
        return {
            "jobs": conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0],
            "tasks": conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0],
            "events": conn.execute("SELECT COUNT(*) FROM events").fetchone()[0],
        }
    finally:
        conn.close()


def _check(conn: sqlite3.Connection) -> list[str]:
    problems: list[str] = []
    result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    if result != ["ok"]:
        problems.append(f"integrity_check: {result[:5]}")
        return problems

    jobs = {
        row[0]: row[1:] for row in conn.execute("SELECT id, status, rest_status, total, counts FROM jobs")
    }
    per_job: dict[str, Counter[str]] = {}
    rows_per_job: Counter[str] = Counter()
    for job_id, pos, status, node in conn.execute("SELECT job_id, pos, status, node FROM tasks"):
        if job_id not in jobs:
            problems.append(f"task {job_id}/{pos}: its job does not exist")
            continue
        total = jobs[job_id][2]
        if not 0 <= pos < total:
            problems.append(f"task {job_id}/{pos}: position outside the job's {total} tasks")
        if status not in TASK_STATUSES:
            problems.append(f"task {job_id}/{pos}: unknown status {status!r}")
        if status == "active" and not node:
            problems.append(f"task {job_id}/{pos}: active without a node")
        per_job.setdefault(job_id, Counter())[status] += 1
        rows_per_job[job_id] += 1

    for job_id, (status, rest_status, total, counts_text) in jobs.items():
        expected = Counter(per_job.get(job_id, Counter()))
        rest = total - rows_per_job[job_id]
        if rest < 0:
            problems.append(f"job {job_id}: {rows_per_job[job_id]} task rows but total {total}")
        elif rest:
            expected[rest_status] += rest
        try:
            stored = [int(x) for x in counts_text.split(",")]
        except ValueError:
            problems.append(f"job {job_id}: unreadable counts {counts_text!r}")
            continue
        if len(stored) != len(TASK_STATUSES):
            problems.append(f"job {job_id}: counts {counts_text!r} has {len(stored)} fields")
            continue
        stored_by = dict(zip(TASK_STATUSES, stored, strict=True))
        want = {s: expected.get(s, 0) for s in TASK_STATUSES}
        if stored_by != want:
            problems.append(f"job {job_id} ({status}): stored counts {stored_by} != task rows {want}")
        if sum(stored) != total:
            problems.append(f"job {job_id}: counts sum {sum(stored)} != total {total}")
        if status in TERMINAL_JOB and want["active"]:
            problems.append(f"job {job_id} is {status} with {want['active']} active tasks")

    for request_id, job_id in conn.execute("SELECT request_id, job_id FROM requests"):
        if job_id not in jobs:
            problems.append(f"request {request_id!r} points at missing job {job_id}")

    lo, hi, n = conn.execute("SELECT MIN(seq), MAX(seq), COUNT(*) FROM events").fetchone()
    if n and (lo != 1 or hi != n):
        problems.append(f"events: {n} rows with seq {lo}..{hi} (not gap-free from 1)")
    return problems
