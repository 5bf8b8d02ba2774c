"""`jobqd backup` while jobqd serves a stream of submits; then the documented restore: stop, put the
file in place as data_dir/jobq.db (without the old -wal/-shm), start."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from jobq.v1 import job_service_pb2 as js

from tests.integration.api.test_api_submit import three_task_spec
from tests.integration.security.support import jobqd_cli
from tests.support.invariants import assert_store_consistent
from tests.support.procs import Jobqd, eventually


def all_job_ids(d: Jobqd) -> set[str]:
    ids: set[str] = set()
    token = ""
    while True:
        page = d.jobs.ListJobs(js.ListJobsRequest(page_size=1000, page_token=token))
        ids.update(j.id for j in page.jobs)
        token = page.next_page_token
        if not token:
            return ids


def test_backup_while_serving_then_restore_and_start(jobqd: Jobqd, tmp_path: Path) -> None:
    acked: list[str] = []
    stop = threading.Event()

    def submitter() -> None:
        i = 0
        while not stop.is_set():
            job = jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec(f"j{i}"))).job
            acked.append(job.id)
            i += 1

    thread = threading.Thread(target=submitter, daemon=True)
    thread.start()
    try:
        eventually(lambda: len(acked) >= 50, what="some acknowledged submits")
        before = set(acked)  # acknowledged before the backup began: must all be in it
        backup = tmp_path / "jobq-backup.db"
        out = jobqd_cli("backup", str(backup), "--data-dir", str(jobqd.data_dir))
        during = len(acked)
        eventually(lambda: len(acked) > during + 20, what="submits to go on after the backup")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"backup written to {backup}" in out.stdout
    assert len(acked) > len(before)  # the daemon kept serving writes throughout
    # a backup is never overwritten
    again = jobqd_cli("backup", str(backup), "--data-dir", str(jobqd.data_dir))
    assert again.returncode == 1 and "exists" in again.stderr

    # restore (docs/operations.md): stop, replace the database and drop its old WAL, start
    assert jobqd.stop() == 0
    for f in jobqd.data_dir.glob("jobq.db*"):
        f.unlink()
    shutil.copyfile(backup, jobqd.data_dir / "jobq.db")
    jobqd.start()
    restored = all_job_ids(jobqd)
    assert before <= restored <= set(acked)
    assert len(restored) < len(acked)  # what came after the backup is, rightly, not in it
    # the restored daemon takes writes again
    jobqd.jobs.SubmitJob(js.SubmitJobRequest(spec=three_task_spec("after-restore")))
    assert jobqd.stop() == 0
    counts = assert_store_consistent(jobqd.data_dir)
    print(f"acknowledged={len(acked)} in backup={len(restored)} restored jobs={counts['jobs']}")


def test_backup_refuses_a_missing_database(tmp_path: Path) -> None:
    out = jobqd_cli("backup", str(tmp_path / "b.db"), "--data-dir", str(tmp_path / "nothing-here"))
    assert out.returncode == 1 and "no database" in out.stderr
    assert not (tmp_path / "b.db").exists()
