"""Numbered migrations, applied in order and recorded in `PRAGMA user_version`.

A database with a higher version than this code knows is refused: an older jobqd must never write
to a schema it does not understand (a downgrade after an upgrade would silently lose data).
"""

from __future__ import annotations

_LIVE_JOB_COLUMNS = """
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    request_id TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    defn TEXT NOT NULL,
    status TEXT NOT NULL,
    admission TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 1,
    submit_ts REAL NOT NULL,
    admit_ts REAL NOT NULL DEFAULT 0,
    start_ts REAL NOT NULL DEFAULT 0,
    finish_ts REAL NOT NULL DEFAULT 0,
    flavor TEXT NOT NULL DEFAULT '',
    rest_status TEXT NOT NULL,
    total INTEGER NOT NULL,
    counts TEXT NOT NULL DEFAULT ''
"""

_TASK_COLUMNS = """
    job_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    node TEXT NOT NULL,
    failed_by TEXT NOT NULL,
    interruptions INTEGER NOT NULL,
    progress INTEGER NOT NULL,
    exit_code INTEGER,
    message TEXT NOT NULL,
    start_ts REAL NOT NULL,
    finish_ts REAL NOT NULL,
    PRIMARY KEY (job_id, pos)
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    f"""
    CREATE TABLE jobs ({_LIVE_JOB_COLUMNS});
    CREATE INDEX jobs_seq ON jobs(seq);
    CREATE TABLE task_chunks (job_id TEXT NOT NULL, offset INTEGER NOT NULL, tasks TEXT NOT NULL,
                              PRIMARY KEY (job_id, offset)) WITHOUT ROWID;
    CREATE TABLE tasks ({_TASK_COLUMNS}) WITHOUT ROWID;
    CREATE TABLE requests (request_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, digest TEXT NOT NULL)
        WITHOUT ROWID;
    CREATE TABLE queues (name TEXT PRIMARY KEY, quotas TEXT NOT NULL, strategy TEXT NOT NULL,
                         preemption TEXT NOT NULL, state TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE blocklist (job_id TEXT NOT NULL, task_type TEXT NOT NULL, node TEXT NOT NULL,
                            failures INTEGER NOT NULL, PRIMARY KEY (job_id, task_type, node)) WITHOUT ROWID;
    CREATE TABLE events (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, type TEXT NOT NULL,
                         job_id TEXT NOT NULL, task_id TEXT NOT NULL, job_status TEXT NOT NULL,
                         task_status TEXT NOT NULL, admission TEXT NOT NULL, reason TEXT NOT NULL,
                         node TEXT NOT NULL, attempt INTEGER NOT NULL, queue TEXT NOT NULL,
                         priority INTEGER NOT NULL, count INTEGER NOT NULL);
    CREATE TABLE archive_jobs ({_LIVE_JOB_COLUMNS});
    CREATE INDEX archive_jobs_seq ON archive_jobs(seq);
    CREATE TABLE archive_task_chunks (job_id TEXT NOT NULL, offset INTEGER NOT NULL, tasks TEXT NOT NULL,
                                      PRIMARY KEY (job_id, offset)) WITHOUT ROWID;
    CREATE TABLE archive_tasks ({_TASK_COLUMNS}) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    # 2: API tokens (jobqd.auth.tokens): only the SHA-256 of each token is stored
    """
    CREATE TABLE tokens (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
                         created_ts REAL NOT NULL) WITHOUT ROWID;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
