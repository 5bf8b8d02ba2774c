"""Every SQL write the engine makes, in the order a batch applies them.

A batch merges the write sets of many commands and runs one `executemany` per statement. Upserts
come first and deletes last. A deleted or archived job is gone from memory, so nothing upserts its
rows again; but a queue can be deleted and created again, and a blocklist entry cleared and
counted again — so the writer starts a new merge segment when a write set with `UPSERTS` follows
one with `DELETES` (`jobqd.store.writer.merge`). Within a segment this order gives the same result
as applying the write sets one by one.
"""

from __future__ import annotations

UPSERT_JOB = """
INSERT INTO jobs (id, seq, request_id, owner, name, queue, priority, defn, status, admission, reason,
                  generation, submit_ts, admit_ts, start_ts, finish_ts, flavor, rest_status, total, counts)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT(id) DO UPDATE SET
  queue=excluded.queue, priority=excluded.priority, status=excluded.status,
  admission=excluded.admission, reason=excluded.reason, generation=excluded.generation,
  admit_ts=excluded.admit_ts, start_ts=excluded.start_ts, finish_ts=excluded.finish_ts,
  flavor=excluded.flavor, rest_status=excluded.rest_status, total=excluded.total, counts=excluded.counts,
  defn=CASE WHEN excluded.defn = '' THEN jobs.defn ELSE excluded.defn END
"""
INSERT_CHUNK = "INSERT OR REPLACE INTO task_chunks (job_id, offset, tasks) VALUES (?,?,?)"
UPSERT_TASK = "INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
INSERT_REQUEST = "INSERT OR REPLACE INTO requests (request_id, job_id, digest) VALUES (?,?,?)"
UPSERT_QUEUE = "INSERT OR REPLACE INTO queues (name, quotas, strategy, preemption, state) VALUES (?,?,?,?,?)"
UPSERT_BLOCKLIST = "INSERT OR REPLACE INTO blocklist (job_id, task_type, node, failures) VALUES (?,?,?,?)"
INSERT_EVENT = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
ARCHIVE_JOB = "INSERT OR REPLACE INTO archive_jobs SELECT * FROM jobs WHERE id = ?"
ARCHIVE_CHUNKS = "INSERT OR REPLACE INTO archive_task_chunks SELECT * FROM task_chunks WHERE job_id = ?"
ARCHIVE_TASKS = "INSERT OR REPLACE INTO archive_tasks SELECT * FROM tasks WHERE job_id = ?"
DELETE_TASKS_OF_JOB = "DELETE FROM tasks WHERE job_id = ?"
DELETE_CHUNKS_OF_JOB = "DELETE FROM task_chunks WHERE job_id = ?"
DELETE_BLOCKLIST_OF_JOB = "DELETE FROM blocklist WHERE job_id = ?"
DELETE_BLOCKLIST = "DELETE FROM blocklist WHERE job_id = ? AND task_type = ? AND node = ?"
DELETE_REQUESTS_OF_JOB = "DELETE FROM requests WHERE job_id = ?"
DELETE_JOB = "DELETE FROM jobs WHERE id = ?"
DELETE_QUEUE = "DELETE FROM queues WHERE name = ?"
DELETE_ARCHIVED_JOB = "DELETE FROM archive_jobs WHERE id = ?"
DELETE_ARCHIVED_TASKS = "DELETE FROM archive_tasks WHERE job_id = ?"
DELETE_ARCHIVED_CHUNKS = "DELETE FROM archive_task_chunks WHERE job_id = ?"

ORDER: tuple[str, ...] = (
    UPSERT_QUEUE,
    UPSERT_JOB,
    INSERT_CHUNK,
    UPSERT_TASK,
    INSERT_REQUEST,
    UPSERT_BLOCKLIST,
    INSERT_EVENT,
    ARCHIVE_JOB,
    ARCHIVE_CHUNKS,
    ARCHIVE_TASKS,
    DELETE_BLOCKLIST,
    DELETE_TASKS_OF_JOB,
    DELETE_CHUNKS_OF_JOB,
    DELETE_BLOCKLIST_OF_JOB,
    DELETE_REQUESTS_OF_JOB,
    DELETE_JOB,
    DELETE_QUEUE,
    DELETE_ARCHIVED_TASKS,
    DELETE_ARCHIVED_CHUNKS,
    DELETE_ARCHIVED_JOB,
)
RANK = {stmt: i for i, stmt in enumerate(ORDER)}

#: Statements that write rows some statement in DELETES may remove.
UPSERTS = frozenset(
    {
        UPSERT_QUEUE,
        UPSERT_JOB,
        INSERT_CHUNK,
        UPSERT_TASK,
        INSERT_REQUEST,
        UPSERT_BLOCKLIST,
        ARCHIVE_JOB,
        ARCHIVE_CHUNKS,
        ARCHIVE_TASKS,
    }
)
DELETES = frozenset(stmt for stmt in ORDER if stmt.lstrip().startswith("DELETE"))
