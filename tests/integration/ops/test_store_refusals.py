"""jobqd refuses, with a message that says what to do, to start on a database it must not touch: one
from a newer jobqd, a file that is not a database, and a database with damaged pages. The file is
left exactly as it was."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from jobq.v1 import job_service_pb2 as js

from tests.integration.api.test_api_submit import array_spec, three_task_spec
from tests.support.procs import Jobqd


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(data_dir: Path) -> str:
    d = Jobqd(data_dir)
    with pytest.raises(RuntimeError) as err:
        d.start(timeout=20)
    assert d.proc is not None and d.proc.returncode == 1
    return str(err.value)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    with sqlite3.connect(data / "jobq.db") as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute("PRAGMA user_version=99")
    before = digest(data / "jobq.db")
    message = refused(data)
    assert "schema is version 99, newer than this jobqd understands" in message
    assert "upgrade jobqd or restore a backup" in message
    assert digest(data / "jobq.db") == before


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "jobq.db").write_bytes(b"definitely not SQLite\n" * 500)
    before = digest(data / "jobq.db")
    assert "corrupt or not a SQLite database" in refused(data)
    assert digest(data / "jobq.db") == before


def test_a_database_with_damaged_pages_is_refused(tmp_path: Path) -> None:
    d = Jobqd(tmp_path / "d").start()
    for i in range(40):
        d.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec(f"j{i}", labels={"pad": "x" * 60})))
        d.jobs.SubmitJob(js.SubmitJobRequest(spec=array_spec(100, name=f"a{i}")))
    assert d.stop() == 0  # a clean stop checkpoints the WAL into jobq.db
    db = d.data_dir / "jobq.db"
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 8
    raw = bytearray(db.read_bytes())
    for page in range(pages // 2, pages // 2 + 3):  # scribble over three b-tree pages
        start = page * page_size
        raw[start : start + page_size] = bytes((i * 7 + 13) % 256 for i in range(page_size))
    db.write_bytes(bytes(raw))
    before = digest(db)
    message = refused(d.data_dir)
    assert "is damaged" in message and "Restore the last backup" in message
    assert digest(db) == before
