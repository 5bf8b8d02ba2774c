"""Opening the database: pragmas, migrations, and the refusal to touch a newer or corrupt file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from jobqd.domain.errors import FailedPrecondition
from jobqd.store.schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "jobq.db"


async def open_db(data_dir: Path, *, synchronous: str = "FULL") -> aiosqlite.Connection:
    """Open (creating if needed) `data_dir/jobq.db`, migrated to the current schema.

    Raises FailedPrecondition for a schema newer than this jobqd or a file that is not a database.
    """
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start-up
    conn = await aiosqlite.connect(data_dir / DB_NAME, isolation_level=None)
    try:
        await _check_version(conn)  # before anything, even journal_mode, changes the file
        await _configure(conn, synchronous)
        await _migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _check_version(conn: aiosqlite.Connection) -> None:
    try:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
    except aiosqlite.DatabaseError as err:
        raise FailedPrecondition(f"the database file is corrupt or not a SQLite database: {err}") from err
    _refuse_newer(int(row[0]) if row else 0)


def _refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise FailedPrecondition(
            f"the database schema is version {version}, "
            f"newer than this jobqd understands ({SCHEMA_VERSION}); "
            "upgrade jobqd or restore a backup made by this version"
        )


def connect_writer(data_dir: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """The store writer's own connection to a database `open_db` has opened and migrated.

    A plain sqlite3 connection: the writer runs small batches on the event loop and commits in a
    thread of its own (jobqd.store.writer explains why), so it may be used from both threads —
    never at the same time, the writer runs one batch after the other.
    """
    db = sqlite3.connect(data_dir / DB_NAME, isolation_level=None, check_same_thread=False)
    try:
        for pragma in _pragmas(synchronous):
            db.execute(pragma)
    except BaseException:
        db.close()
        raise
    return db


def _pragmas(synchronous: str) -> list[str]:
    """Settings of every connection that writes (they are per connection, not per file)."""
    # FULL: COMMIT returns after the WAL is fsynced — what "acknowledged = durable" needs.
    if synchronous.upper() not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    return [
        f"PRAGMA synchronous={synchronous.upper()}",
        "PRAGMA busy_timeout=5000",
        "PRAGMA temp_store=MEMORY",
        "PRAGMA cache_size=-65536",
    ]


async def _configure(conn: aiosqlite.Connection, synchronous: str) -> None:
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
    except aiosqlite.DatabaseError as err:
        raise FailedPrecondition(f"the database file is corrupt or not a SQLite database: {err}") from err
    for pragma in _pragmas(synchronous):
        await conn.execute(pragma)


async def _migrate(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    _refuse_newer(version)
    for number in range(version + 1, SCHEMA_VERSION + 1):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(MIGRATIONS[number - 1]):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version={number}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
