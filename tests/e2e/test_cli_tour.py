"""The README's five-minute tour, as a user types it."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable

Run = Callable[..., subprocess.CompletedProcess[str]]


def job_id_of(out: str) -> str:
    m = re.search(r"submitted job ([0-9a-z]{13})", out)
    assert m, out
    return m.group(1)


def test_submit_wait_and_logs(jobqctl: Run) -> None:
    r = jobqctl("submit", "--wait", "--", "echo", "hello")
    assert r.returncode == 0, r.stderr
    job = job_id_of(r.stdout)
    logs = jobqctl("logs", job)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.strip() == "hello"


def test_failed_job_makes_wait_exit_1(jobqctl: Run) -> None:
    r = jobqctl("submit", "--wait", "--max-attempts", "1", "--", "sh", "-c", "exit 4")
    assert r.returncode == 1
    assert "failed" in (r.stdout + r.stderr)


def test_array_listing_and_json_output(jobqctl: Run) -> None:
    job = job_id_of(
        jobqctl("submit", "--array", "1-10000", "--name", "frames", "--", "true", "{index}").stdout
    )
    listed = json.loads(jobqctl("jobs", "-o", "json").stdout)
    assert isinstance(listed, list)
    mine = next(j for j in listed if j["id"] == job)
    assert int(mine["total_tasks"]) == 10000  # int64 is a string in proto JSON
    assert mine["spec"]["name"] == "frames"
    one = json.loads(jobqctl("job", job, "-o", "json").stdout)
    assert one["id"] == job and "admission" in one


def test_illegal_action_is_readable_and_non_zero(jobqctl: Run) -> None:
    job = job_id_of(jobqctl("submit", "--", "sleep", "30").stdout)
    r = jobqctl("requeue", job)  # queued or active: requeue needs an ended job
    assert r.returncode == 1
    assert r.stderr.startswith("error: FAILED_PRECONDITION: cannot requeue job")
    assert "requeue needs completed, failed, canceled" in r.stderr
    assert "Traceback" not in r.stderr
    assert jobqctl("cancel", job).returncode == 0
    for _ in range(100):
        if json.loads(jobqctl("job", job, "-o", "json").stdout)["status"] == "JOB_STATUS_CANCELED":
            break
        time.sleep(0.1)
    r = jobqctl("requeue", job)
    assert r.returncode == 0, r.stderr
    assert jobqctl("cancel", job).returncode == 0


def test_unknown_job_and_unreachable_server(jobqctl: Run) -> None:
    r = jobqctl("job", "0000000000000")
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr
    r = jobqctl("--server", "127.0.0.1:1", "jobs")
    assert r.returncode == 3 and "cannot reach jobqd" in r.stderr
