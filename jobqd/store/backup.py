"""`jobqd backup PATH`: a consistent copy of the live database, taken while jobqd serves.

SQLite's online backup API, from a connection of its own. In WAL mode a reader never blocks the
daemon's writer, and the copy is made in **one step** (`pages=-1`), inside one read transaction: a
consistent snapshot as of its start. A step-wise backup would restart each time the daemon
commits, which on a busy farm could mean never finishing.

The copy goes to `PATH.partial`, passes `PRAGMA integrity_check`, is fsynced, and only then is
renamed to PATH, so a PATH that exists is a whole, checked backup. Restoring is a file copy with
jobqd stopped (docs/operations.md#backup-and-restore).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from jobqd.domain.errors import FailedPrecondition
from jobqd.store.database import DB_NAME


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    bytes: int
    schema_version: int
    jobs: int
    last_event: int


def backup(data_dir: Path, dest: Path) -> BackupResult:
    source = data_dir / DB_NAME
    if not source.is_file():
        raise FailedPrecondition(f"no database at {source} (is --data-dir right?)")
    if dest.exists():
        raise FailedPrecondition(f"{dest} exists; choose a new file name (backups are never overwritten)")
    if dest.is_dir() or not dest.parent.is_dir():
        raise FailedPrecondition(f"{dest.parent} is not a directory")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            src.execute("PRAGMA busy_timeout=30000")
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst, pages=-1)
                check = dst.execute("PRAGMA integrity_check").fetchall()
                if check != [("ok",)]:
                    raise FailedPrecondition(
                        f"the copy failed its integrity check ({check[0][0]}); "
                        "the live database may be damaged"
                    )
                (version,) = dst.execute("PRAGMA user_version").fetchone()
                jobs = _count(dst, "SELECT (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM archive_jobs)")
                last_event = _count(dst, "SELECT COALESCE(MAX(seq), 0) FROM events")
            finally:
                dst.close()
        finally:
            src.close()
        _fsync(partial)
        os.replace(partial, dest)
        _fsync(dest.parent)
    except sqlite3.Error as err:
        raise FailedPrecondition(f"backup of {source} failed: {err}") from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return BackupResult(dest, dest.stat().st_size, int(version), jobs, last_event)


def _count(conn: sqlite3.Connection, query: str) -> int:
    try:
        row = conn.execute(query).fetchone()
    except sqlite3.OperationalError:  # a database from before the table existed
        return 0
    return int(row[0]) if row else 0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
