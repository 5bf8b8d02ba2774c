"""Helpers shared by the robustness tests: job lookups, event replay, clean-stop checks (commands: tests.support.commands)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import grpc
from jobq.v1 import job_service_pb2 as js
from jobq.v1 import job_service_pb2_grpc as js_grpc
from jobq.v1 import types_pb2 as pb

from tests.support.commands import sh
from tests.support.invariants import assert_store_consistent
from tests.support.procs import Jobqd, eventually

TERMINAL_JOB = (pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELED)


def one_task_job(name: str, command: pb.Command | None = None, **kw: object) -> pb.JobSpec:
    return pb.JobSpec(name=name, tasks=[pb.TaskSpec(commands=[command or sh("true")])], **kw)  # type: ignore[arg-type]


def submit(d: Jobqd, spec: pb.JobSpec, request_id: str = "") -> pb.Job:
    return d.jobs.SubmitJob(js.SubmitJobRequest(request_id=request_id, spec=spec), timeout=10).job


def get_job(d: Jobqd, job_id: str) -> pb.Job:
    return d.jobs.GetJob(js.GetJobRequest(job_id=job_id), timeout=10).job


def get_task(d: Jobqd, task_id: str) -> pb.Task:
    return d.jobs.GetTask(js.GetTaskRequest(task_id=task_id), timeout=10).task


def wait_job(d: Jobqd, job_id: str, *statuses: int, timeout: float = 30) -> pb.Job:
    want = statuses or TERMINAL_JOB
    return eventually(
        lambda: (j := get_job(d, job_id)).status in want and j,
        timeout=timeout,
        what=f"job {job_id} in {[pb.JobStatus.Name(s) for s in want]}",
    )


def events(
    address: str, *, job_ids: Iterable[str] = (), after: int = 0, idle_s: float = 1.0, limit_s: float = 30
) -> list[pb.Event]:
    """WatchEvents from `after`, until no event came for `idle_s` (the replay is then complete)."""
    out: list[pb.Event] = []
    last = [time.monotonic()]
    with grpc.insecure_channel(address) as ch:
        call = js_grpc.JobServiceStub(ch).WatchEvents(
            js.WatchEventsRequest(after_sequence=after, job_ids=list(job_ids)), timeout=limit_s
        )

        def cancel_when_idle() -> None:
            while not call.done():
                if time.monotonic() - last[0] > idle_s:
                    call.cancel()
                    return
                time.sleep(0.05)

        watchdog = threading.Thread(target=cancel_when_idle, daemon=True)
        watchdog.start()
        try:
            for r in call:
                out.append(r.event)
                last[0] = time.monotonic()
        except grpc.RpcError as err:
            if err.code() is not grpc.StatusCode.CANCELLED:
                raise
        watchdog.join()
    return out


def task_events(evs: Iterable[pb.Event], task_id: str) -> list[pb.Event]:
    return [e for e in evs if e.type == pb.EVENT_TYPE_TASK_STATUS_CHANGED and e.task_id == task_id]


def error_lines(log_path: Path, *, ignore: Iterable[str] = ()) -> list[str]:
    """Log records of level error or worse (JSON logs), minus those containing an `ignore` text."""
    skip = tuple(ignore)
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("level") in ("error", "critical") and not any(s in line for s in skip):
            out.append(line[:600])
    return out


def stop_and_check(d: Jobqd, *, ignore_errors: Iterable[str] = ()) -> dict[str, int]:
    """Stop jobqd cleanly; it must exit 0, have logged no error, and leave a consistent store."""
    assert d.proc is not None and d.proc.poll() is None, f"jobqd is not running:\n{d.log_tail()}"
    assert d.stop() == 0, d.log_tail()
    errors = error_lines(d.log_path, ignore=ignore_errors)
    assert not errors, "jobqd logged errors:\n" + "\n".join(errors[:20])
    return assert_store_consistent(d.data_dir)
